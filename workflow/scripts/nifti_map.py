"""Adapter: one parameter map, or its sqrt(CRB) map, as NIfTI + JSON sidecar (logic in crbnet.io; no torch)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.maps import read_maps  # noqa: E402
from crbnet.io.nifti import write_nifti_map  # noqa: E402
from crbnet.io.voxels import DataError  # noqa: E402

sm = snakemake  # noqa: F821
name = sm.wildcards.parameter
maps, units, affine = read_maps(sm.input.maps, sm.params.dataset)
if name not in maps:
    raise DataError(f"{sm.input.maps} has no {name} map (it has {', '.join(maps)})")
sidecar = {"Units": units[name], "Parameter": name, "EstimationAlgorithm": sm.params.algorithm,
           "Sources": [str(sm.input.maps)]}
if sm.wildcards.kind == "sqrtcrb":
    sidecar["Description"] = f"sqrt(CRB) of {name} at the estimates: the standard deviation of an efficient estimator"
write_nifti_map(sm.output.nii, maps[name], affine, sidecar)
Path(sm.log[0]).write_text(f"wrote {sm.output.nii}\n")
