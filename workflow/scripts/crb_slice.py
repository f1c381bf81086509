"""Adapter: CRBs over a regular 2-D parameter slice (logic in crbnet.parameters and crbnet.simulation)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402
from crbnet.simulation import crb_grid, grid_axes  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    space = ParameterSpace.from_config(json.loads(sm.params.space))
    cfg = json.loads(sm.params.slice)
    axes = grid_axes(cfg["x"], cfg["y"])
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))  # CUDA only with a GPU reserved
    signal_model = signal_model_for(load_sequence(sm.input.sequence), space.parameterization, device)
    table = crb_grid(signal_model, space.grid(axes), tuple(cfg["estimate"]), cfg["sigma"], progress=True)
    write_csv(table, sm.output.table)
