"""Adapter: coefficient images of a phantom's k-space, saved as a phantom file, and their errors against the
noiseless projection (logic in crbnet.recon, crbnet.phantoms and crbnet.tables)."""
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.basis import Basis  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.io.kspace import load_kspace  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.phantoms import load_phantom, noiseless_coefficients, save_phantom  # noqa: E402
from crbnet.recon import object_phase, reconstruct_kspace  # noqa: E402
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
    start = time.perf_counter()
    coefficients, maps = reconstruct_kspace(kspace, basis, cfg["coil_maps"], cfg["calibration_radius"],
                                            recon["engine"], recon["lambda"], recon["iterations"],
                                            recon["cg_iterations"], recon["block"], recon["seed"], device, True)
    seconds = time.perf_counter() - start
    print(f"reconstructed in {seconds:.1f} s ({recon['engine']}, lambda {recon['lambda']}, {cfg['coil_maps']} coil maps)")
    save_phantom(sm.output.recon, phantom, coefficients, basis,
                 {"acquisition": json.dumps(cfg, sort_keys=True), "recon_seconds": seconds})
    pz = ParameterSpace.from_config(json.loads(sm.params.space)).parameterization
    signal_model = signal_model_for(load_sequence(sm.input.sequence), pz, device)
    reference = noiseless_coefficients(phantom, signal_model, basis, sm.params.seed)
    aligned = coefficients * np.exp(1j * object_phase(maps, kspace.coil_maps))[..., None, None]  # the maps' phase
    errors = coefficient_errors({"gaussian": gaussian, "recon": aligned}, reference, phantom.labels, phantom.tissues)
    print(errors[errors.coefficient == "all"].to_string(index=False))
    write_csv(errors, sm.output.error)
