"""Adapter: coefficient images of a phantom's k-space, saved as a phantom file, and their errors against the
noiseless projection (logic in crbnet.recon, crbnet.phantoms and crbnet.tables)."""
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.acquisition import acquisition_noise  # noqa: E402
from crbnet.basis import Basis  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.io.kspace import load_kspace  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.phantoms import load_phantom, noiseless_coefficients, save_phantom  # noqa: E402
from crbnet.recon import object_phase, reconstruct_kspace, recon_options  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402
from crbnet.tables import coefficient_errors  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    cfg = json.loads(sm.params.acquisition)
    recon = cfg["recon"]
    kspace, basis = load_kspace(sm.input.kspace), Basis.load(sm.input.basis)
    phantom, gaussian, _ = load_phantom(sm.input.phantom)
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))  # CUDA only with a GPU reserved
    settings = {"calibration_radius": cfg["calibration_radius"], **recon_options(recon), "device": device,
                "show_progress": True}
    start = time.perf_counter()
    coefficients, maps = reconstruct_kspace(kspace, basis, cfg["coil_maps"], **settings)
    seconds = time.perf_counter() - start
    print(f"reconstructed in {seconds:.1f} s ({recon['engine']}, lambda {recon['lambda']}, {cfg['coil_maps']} coil maps)")
    save_phantom(sm.output.recon, phantom, coefficients, basis,
                 {"acquisition": json.dumps(cfg, sort_keys=True), "recon_seconds": seconds})
    # the error budget: the same reconstruction (same coil maps) of the noiseless k-space and of its noise alone
    noise = acquisition_noise(kspace.data.shape, kspace.sigma, cfg["seed"]).astype(np.complex64)
    parts = {name: reconstruct_kspace(replace(kspace, data=data), basis, maps, **settings)[0]
             for name, data in (("noiseless", kspace.data - noise), ("noise_only", noise))}
    pz = ParameterSpace.from_config(json.loads(sm.params.space)).parameterization
    signal_model = signal_model_for(load_sequence(sm.input.sequence), pz, device)
    reference = noiseless_coefficients(phantom, signal_model, basis, sm.params.seed)
    phase = np.exp(1j * object_phase(maps, kspace.coil_maps))[..., None, None]  # the estimated maps' phase
    errors = {"gaussian": gaussian - reference, "recon": coefficients * phase - reference,
              "recon_noiseless": parts["noiseless"] * phase - reference, "recon_noise_only": parts["noise_only"] * phase}
    table = coefficient_errors(errors, reference, phantom.labels, phantom.tissues, cfg["snr"])
    print(table[table.region == "all"].to_string(index=False))
    write_csv(table, sm.output.error)
