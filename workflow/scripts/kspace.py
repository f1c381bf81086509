"""Adapter: a phantom's multi-coil radial k-space, also as ISMRMRD raw data with noise scans (logic in
crbnet.phantoms, crbnet.acquisition and crbnet.io.mrd)."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.acquisition import acquire_slice, acquisition_noise  # noqa: E402
from crbnet.io.kspace import save_kspace  # noqa: E402
from crbnet.io.mrd import write_mrd  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.phantoms import load_phantom, time_series_components  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    cfg = json.loads(sm.params.acquisition)
    phantom, _, _ = load_phantom(sm.input.phantom)
    sequence = load_sequence(sm.input.sequence)
    pz = ParameterSpace.from_config(json.loads(sm.params.space)).parameterization
    signal_model = signal_model_for(sequence, pz, pick_device(sm.params.device, sm.resources.get("gpu", 0)))
    images, temporal = time_series_components(phantom, signal_model, sm.params.seed, progress=True)
    print(f"{len(images)} time-series components; {temporal.shape[1]} frames x {cfg['spokes']} spokes, "
          f"{cfg['coils']} coils, SNR {cfg['snr']}, simulated on a {cfg['upsample']}x finer grid")
    kspace = acquire_slice(images, temporal, sequence.sha256, cfg["spokes"], cfg["coils"], cfg["readout_oversampling"],
                           cfg["snr"], cfg["seed"], cfg["upsample"])
    save_kspace(sm.output.kspace, kspace)
    voxel_mm = np.linalg.norm(phantom.affine[:3, :2], axis=0)
    write_mrd(sm.output.mrd, kspace, tuple(voxel_mm * kspace.coil_maps.shape[1:]),
              noise=acquisition_noise((cfg["coils"], 4096), kspace.sigma, cfg["seed"] + 1))
