"""Adapter: maps (and optional sqrt(CRB) maps) of a phantom or of a scan's coefficient image by one estimator (logic
in crbnet.maps)."""
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.basis import Basis  # noqa: E402
from crbnet.estimator import load_estimator  # noqa: E402
from crbnet.fitting import NLLSEstimator, refined_from_config  # noqa: E402
from crbnet.io.maps import save_maps  # noqa: E402
from crbnet.maps import crb_image, estimate_voxels, image_voxels, sample_voxels  # noqa: E402
from crbnet.parameters import ParameterSpace, out_of_range_count  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402
from crbnet.signals import signal_model_for  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    data, labels = image_voxels(sm.input.data, sm.input.get("mask"), sm.params.phantom)
    space = ParameterSpace.from_config(json.loads(sm.params.space))
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))  # CUDA only with a GPU reserved
    signal_model = signal_model_for(load_sequence(sm.input.sequence), space.parameterization, device)
    if sm.wildcards.estimator == "nlls":  # NLLS on a sample of interior voxels, from the prior means or a network
        cfg = sm.params.nlls
        start = None if cfg["init"] == "prior" else load_estimator(sm.input.model)
        basis = Basis.load(sm.input.model) if start is None else start.basis
        data = data.within(sample_voxels(labels, cfg["voxels_per_tissue"], cfg["seed"]))
        estimator = NLLSEstimator(signal_model, basis, space, start.names if start else tuple(sm.params.estimate),
                                  init=start, iterations=cfg["iterations"])
    else:
        estimator = load_estimator(sm.input.model)
    if sm.params.refined:  # refined on a sample of interior voxels
        cfg = sm.params.refined
        data = data.within(sample_voxels(labels, cfg["voxels_per_tissue"], cfg["seed"]))
        estimator = refined_from_config(estimator, sm.input.sequence, space, cfg, device)
    print(f"{int(data.mask.sum())} voxels")
    estimates = data.scatter(estimate_voxels(estimator, data, device=device), np.nan)
    sqrt_crb = None
    if sm.params.crb:
        sqrt_crb = crb_image(signal_model, estimator.basis, estimates, estimator.names, data.mask, space.centre(),
                             1.0 / sm.params.snr, progress=True)
    save_maps(sm.output.maps, estimates, estimator.names, estimator.units, data.affine, sqrt_crb,
              {"estimator": sm.wildcards.estimator, "model": str(sm.input.model),
               "n_out_of_range": out_of_range_count(estimates[data.mask], estimator.names)})
