"""Adapter: coefficient images of a phantom's k-space, saved as a phantom file, their error budget against the
noiseless projection and its curve over CG steps (logic in crbnet.recon, crbnet.phantoms and crbnet.tables)."""
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.acquisition import acquisition_noise  # noqa: E402
from crbnet.basis import Basis  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.io.atomic import write_csv  # noqa: E402
from crbnet.io.kspace import load_kspace  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.phantoms import load_phantom, noiseless_coefficients, save_phantom  # noqa: E402
from crbnet.recon import error_budget, recon_options  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
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
    pz = ParameterSpace.from_config(json.loads(sm.params.space)).parameterization
    reference = noiseless_coefficients(phantom, signal_model_for(load_sequence(sm.input.sequence), pz, device), basis,
                                       sm.params.seed)
    noise = acquisition_noise(kspace.data.shape, kspace.sigma, cfg["seed"]).astype(np.complex64)
    options = {"calibration_radius": cfg["calibration_radius"], **recon_options(recon), "device": device,
               "show_progress": True}
    start = time.perf_counter()
    coefficients, errors, curve = error_budget(kspace, basis, noise, reference, phantom.labels, phantom.tissues,
                                               cfg["snr"], options, cfg["error_curve"], cfg["coil_maps"])
    print(f"reconstructed three times with the error curve in {time.perf_counter() - start:.1f} s ({recon['engine']}, "
          f"lambda {recon['lambda']}, {cfg['coil_maps']} coil maps)")
    save_phantom(sm.output.recon, phantom, coefficients, basis, {"acquisition": json.dumps(cfg, sort_keys=True)})
    table = pd.concat([coefficient_errors({"gaussian": gaussian - reference}, reference, phantom.labels,
                                          phantom.tissues, cfg["snr"]), errors], ignore_index=True)
    print(table[table.region == "all"].to_string(index=False))
    write_csv(table, sm.output.error)
    write_csv(curve, sm.output.curve)
