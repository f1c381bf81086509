"""Adapter: build a numerical phantom and its noisy coefficient image (logic in crbnet.phantoms)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.basis import Basis  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.phantoms import brain_phantom, coefficient_image, save_phantom, tube_phantom  # noqa: E402
from crbnet.runtime import logged, pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    pz = ParameterSpace.from_config(json.loads(sm.params.space)).parameterization
    cfg = json.loads(sm.params.phantom)
    if cfg["kind"] == "tubes":
        phantom = tube_phantom(cfg["tissues"], pz, cfg.get("size", 64), cfg.get("B1_edge", 0.85),
                               cfg.get("omega0_edge", 0.0))
    else:
        phantom = brain_phantom(cfg["tissues"], pz, cfg.get("axial_slice", 72))
    print(f"{sm.wildcards.phantom}: {int(phantom.mask.sum())} voxels, tissues {', '.join(phantom.tissues.values())}")
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))  # CUDA only with a GPU reserved
    signal_model = signal_model_for(load_sequence(sm.input.sequence), pz, device)
    basis = Basis.load(sm.input.basis)
    noise = {"snr": cfg.get("snr", 50), "seed": cfg.get("seed", 0)}
    image = coefficient_image(phantom, signal_model, basis, progress=True, **noise)
    save_phantom(sm.output.phantom, phantom, image, basis, noise)
