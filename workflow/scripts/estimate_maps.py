"""Adapter: maps (and optional sqrt(CRB) maps) of a phantom or of a scan's coefficient image by one estimator (logic
in crbnet.maps)."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.estimator import load_estimator  # noqa: E402
from crbnet.io import DataError, read_voxels, save_maps  # noqa: E402
from crbnet.fitting import NLLSEstimator  # noqa: E402
from crbnet.maps import crb_image, estimate_voxels, sample_voxels  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.phantoms import load_phantom  # noqa: E402
from crbnet.runtime import logged, pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    estimator = load_estimator(sm.input.model)
    if sm.params.phantom:
        phantom, coefficients, attrs = load_phantom(sm.input.data)
        mask, affine, values = phantom.mask, phantom.affine, coefficients[phantom.mask]
        estimator.basis.check(attrs["basis_sha256"], attrs["sequence_sha256"])
    else:  # a scan: NIfTI (no hashes to check) or HDF5 with the basis and sequence hashes
        data = read_voxels(sm.input.data, sm.input.get("mask"))
        if data.mask.ndim != 3:
            raise DataError(f"{sm.input.data}: expected coefficients (X, Y, Z, K), got {data.mask.ndim} spatial axes")
        estimator.basis.check(data.attrs.get("basis_sha256"), data.attrs.get("sequence_sha256"))
        mask, values = data.mask, data.values
        affine = data.image.affine if data.image is not None else np.asarray(data.attrs.get("affine", np.eye(4)))
    space = ParameterSpace.from_config(json.loads(sm.params.space))
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))  # CUDA only with a GPU reserved
    signal_model = signal_model_for(load_sequence(sm.input.sequence), space.parameterization, device)
    if sm.wildcards.estimator == "nlls":  # NLLS from the network's estimates, on a sample of interior voxels
        cfg = sm.params.nlls
        subset = sample_voxels(np.where(mask, phantom.labels if sm.params.phantom else 1, 0),
                               cfg.get("voxels_per_tissue", 10), cfg.get("seed", 0))
        values = values[subset[mask]]
        mask = subset
        estimator = NLLSEstimator(signal_model, estimator.basis, space, estimator.names, init=estimator,
                                  iterations=cfg.get("iterations", 20))
    print(f"{int(mask.sum())} voxels")
    estimates = np.full((*mask.shape, len(estimator.names)), np.nan)
    estimates[mask] = estimate_voxels(estimator, estimator.basis.as_coefficients(values))
    sqrt_crb = None
    if sm.params.crb:
        sqrt_crb = crb_image(signal_model, estimator.basis, estimates, estimator.names, mask, space.centre(),
                             1.0 / sm.params.snr, progress=True)
    save_maps(sm.output.maps, estimates, estimator.names, estimator.units, affine, sqrt_crb,
              {"estimator": sm.wildcards.estimator, "model": str(sm.input.model)})
