"""Adapter: maps (and optional sqrt(CRB) maps) of a phantom by one estimator (logic in crbnet.maps)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.estimator import load_estimator  # noqa: E402
from crbnet.io import save_maps  # noqa: E402
from crbnet.maps import crb_image, estimate_image  # noqa: E402
from crbnet.models import model_for  # noqa: E402
from crbnet.parameters import ParameterSpace  # noqa: E402
from crbnet.phantoms import load_phantom  # noqa: E402
from crbnet.runtime import logged, pick_device  # noqa: E402
from crbnet.sequences import load_sequence  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    estimator = load_estimator(sm.input.model)
    phantom, coefficients = load_phantom(sm.input.phantom)
    estimates = estimate_image(estimator, coefficients, phantom.mask)
    sqrt_crb = None
    if sm.params.crb:
        space = ParameterSpace.from_config(json.loads(sm.params.space))
        model = model_for(load_sequence(sm.input.sequence), space.parameterization, pick_device(sm.params.device))
        sqrt_crb = crb_image(model, estimator.basis, estimates, estimator.names, phantom.mask, space.centre(),
                             1.0 / sm.params.snr, progress=True)
    save_maps(sm.output.maps, estimates, estimator.names, estimator.units, phantom.affine, sqrt_crb,
              {"estimator": sm.wildcards.estimator, "model": str(sm.input.model)})
