"""Adapter: coefficient images of an imported scan (logic in crbnet.recon)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.basis import Basis  # noqa: E402
from crbnet.devices import pick_device  # noqa: E402
from crbnet.io.kspace import load_kspace  # noqa: E402
from crbnet.io.voxels import write_coefficients  # noqa: E402
from crbnet.recon import reconstruct_kspace, recon_options  # noqa: E402
from crbnet.runtime import logged  # noqa: E402

sm = snakemake  # noqa: F821
with logged(sm.log[0], sm.threads):
    recon = json.loads(sm.params.recon)
    device = pick_device(sm.params.device, sm.resources.get("gpu", 0))  # CUDA only with a GPU reserved
    coefficients, _ = reconstruct_kspace(load_kspace(sm.input.kspace), Basis.load(sm.input.basis), "given",
                                         **recon_options(recon), device=device, show_progress=True)
    write_coefficients(sm.output.coefficients, coefficients, {"kspace": sm.input.kspace, "basis": sm.input.basis})
