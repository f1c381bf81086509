"""Adapter: build a numerical phantom and its noisy coefficient image (logic in crbnet.phantoms)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.basis import Basis  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.phantoms import build_phantom, coefficient_image, save_phantom  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    pz = ParameterSpace.from_config(json.loads(sm.params.space)).parameterization
    cfg = json.loads(sm.params.phantom)
    phantom = build_phantom(cfg, pz)
    print(f"{sm.wildcards.image}: {int(phantom.mask.sum())} voxels, tissues {', '.join(phantom.tissues.values())}")
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))  # CUDA only with a GPU reserved
    signal_model = signal_model_for(load_sequence(sm.input.sequence), pz, device)
    noise = {"snr": cfg["snr"], "seed": cfg["seed"]}
    basis = Basis.load(sm.input.basis)
    save_phantom(sm.output.phantom, phantom, coefficient_image(phantom, signal_model, basis, progress=True, **noise),
                 basis, noise)
