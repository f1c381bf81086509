"""Adapter: dictionary-matching estimator on the configured grid (logic in crbnet.matching)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.basis import Basis  # noqa: E402
from crbnet.matching import MatchingEstimator  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402
from crbnet.simulation import grid_axes  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    space = ParameterSpace.from_config(json.loads(sm.params.space))
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))  # CUDA only with a GPU reserved
    signal_model = signal_model_for(load_sequence(sm.input.sequence), space.parameterization, device)
    estimator = MatchingEstimator.from_grid(signal_model, Basis.load(sm.input.basis), space,
                                            grid_axes(*json.loads(sm.params.axes)), tuple(sm.params.estimate),
                                            progress=True)
    print(f"{len(estimator.dictionary)} atoms over {', '.join(estimator.dictionary.names)}")
    estimator.save(sm.output.estimator)
