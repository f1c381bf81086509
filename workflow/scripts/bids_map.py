"""Adapter: one parameter map, or its sqrt(CRB) map, into the BIDS derivatives tree (logic in crbnet.io; no torch)."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet.io.bids import sidecar  # noqa: E402
from crbnet.io.maps import read_maps  # noqa: E402
from crbnet.io.nifti import write_nifti_map  # noqa: E402
from crbnet.io.voxels import DataError  # noqa: E402

sm = snakemake  # noqa: F821
entry = sm.params.map
name, kind = entry["parameter"], entry["kind"]
dataset = "truth" if entry["source"] == "truth" else ("sqrt_crb" if kind == "sqrtcrb" else "estimates")
maps, units, affine = read_maps(sm.input.maps, dataset)
if name not in maps:
    raise DataError(f"{sm.input.maps} has no {name} map (it has {', '.join(maps)})")
source = Path(os.path.relpath(sm.input.maps, Path(sm.output[0]).parents[2])).as_posix()  # from the tree's root
write_nifti_map(sm.output[0], maps[name], affine, sidecar(name, units[name], sm.params.algorithm, [source], kind))
Path(sm.log[0]).write_text(f"wrote {sm.output[0]}\n")
