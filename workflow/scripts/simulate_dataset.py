"""Adapter: simulate one split with coefficients and unit CRBs (logic in crbnet.simulation)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821  (import crbnet without installing it)

from crbnet.basis import Basis  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402
from crbnet.simulation import dataset_values, write_dataset  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    space = ParameterSpace.from_config(json.loads(sm.params.space))
    split = json.loads(sm.params.split)
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))  # CUDA only with a GPU reserved
    signal_model = signal_model_for(load_sequence(sm.input.sequence), space.parameterization, device)
    basis = Basis.load(sm.input.basis) if "basis" in sm.input.keys() else None
    write_dataset(sm.output.dataset, signal_model, dataset_values(space, split), progress=True,
                  store_signals=split["store_signals"], crb=split["crb"], basis=basis,
                  attrs={"split": sm.wildcards.split})
