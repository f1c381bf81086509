"""NIfTI images with a JSON sidecar (BIDS derivatives style). nibabel is imported only where a file is written."""

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
    """``data`` as NIfTI (dtype as given) with ``affine`` (voxel -> mm), and ``<path without .nii/.nii.gz>.json``
    holding the ``sidecar`` fields; both files appear only once both are written."""
    import nibabel as nib

    json_path = Path(str(path).removesuffix(".gz").removesuffix(".nii") + ".json")
    with atomic_path(path) as tmp_nii, atomic_path(json_path) as tmp_json:
        nib.save(nib.Nifti1Image(data, affine), tmp_nii)
        tmp_json.write_text(json.dumps(dict(sidecar), indent=2))


def write_nifti_map(path: str | Path, image: np.ndarray, affine: np.ndarray, sidecar: Mapping[str, object]) -> None:
    """One map as NIfTI (float32, 0 where NaN) with its JSON sidecar (BIDS: Units, EstimationAlgorithm, Sources,
    ...)."""
    write_nifti(path, np.nan_to_num(image.astype(np.float32), nan=0.0), affine, sidecar)
