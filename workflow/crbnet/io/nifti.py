"""NIfTI images with a JSON sidecar (crbnet.io.bids names them in a BIDS derivatives tree). nibabel is imported only where a file is written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from crbnet.io.atomic import atomic_path

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | Path) -> bool:
    return str(path).endswith(NIFTI_SUFFIXES)


def write_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray, sidecar: Mapping[str, object]) -> None:
    """``data`` as NIfTI (dtype as given; spatial units mm, time s) with ``affine`` (voxel -> mm), and
    ``<path without .nii/.nii.gz>.json`` holding the ``sidecar`` fields; both files appear only once both are
    written. The one sidecar writer of the package."""
    import nibabel as nib

    json_path = Path(str(path).removesuffix(".gz").removesuffix(".nii") + ".json")
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm", "sec")
    with atomic_path(path) as tmp_nii, atomic_path(json_path) as tmp_json:
        nib.save(image, tmp_nii)
        tmp_json.write_text(json.dumps(dict(sidecar), indent=2))


def write_nifti_map(path: str | Path, image: np.ndarray, affine: np.ndarray, sidecar: Mapping[str, object]) -> None:
    """One map as NIfTI (float32; NaN, where there is no estimate, stays NaN) with its JSON sidecar
    (crbnet.io.bids.sidecar)."""
    write_nifti(path, image.astype(np.float32), affine, sidecar)
