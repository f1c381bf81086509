"""Voxel data: one vector per voxel read from NPY, HDF5 or NIfTI inside a mask, and estimates written back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from crbnet.io.atomic import atomic_hdf5, atomic_path
from crbnet.io.nifti import is_nifti, write_nifti


class DataError(ValueError):
    """A data or mask file that cannot be read or does not fit."""


@dataclass
class VoxelData:
    """Voxel values (n, K) taken from an array of shape (*spatial, K) inside ``mask`` (all voxels without one).

    ``attrs`` carries HDF5 attributes (basis and sequence hashes); ``image`` the NIfTI the data came from."""

    values: np.ndarray
    mask: np.ndarray
    attrs: dict
    image: object | None = None

    @property
    def affine(self) -> np.ndarray:
        """Voxel -> mm: the NIfTI's, an HDF5 file's ``affine`` attribute, else the identity."""
        return self.image.affine if self.image is not None else np.asarray(self.attrs.get("affine", np.eye(4)))

    def within(self, keep: np.ndarray) -> VoxelData:
        """The voxels inside both the mask and ``keep`` (a boolean array over the same voxel grid)."""
        return VoxelData(self.values[keep[self.mask]], self.mask & keep, self.attrs, self.image)

    def scatter(self, estimates: np.ndarray, fill: float) -> np.ndarray:
        """Estimates (n, P) placed back into an array (*spatial, P) filled with ``fill`` outside the mask."""
        out = np.full((*self.mask.shape, estimates.shape[1]), fill, dtype=estimates.dtype)
        out[self.mask] = estimates
        return out


def _read_array(path: str | Path) -> tuple[np.ndarray, dict, object | None]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    try:
        if is_nifti(path):
            import nibabel as nib

            image = nib.load(path)
            return np.asarray(image.dataobj), {}, image
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False), {}, None
        if path.suffix in (".h5", ".hdf5"):
            with h5py.File(path, "r") as f:
                name = next((d for d in ("coefficients", "signals", "mask") if d in f), None)
                if name is None:
                    raise DataError(f"{path} holds no 'coefficients', 'signals' or 'mask' dataset")
                return f[name][()], dict(f.attrs) | dict(f[name].attrs), None
    except DataError:
        raise
    except Exception as err:
        raise DataError(f"cannot read {path}: {err}") from None
    raise DataError(f"unsupported data file {path}: use .npy, .h5/.hdf5, .nii or .nii.gz")


def read_voxels(path: str | Path, mask_path: str | Path | None = None) -> VoxelData:
    """Values (*spatial, K) of a NPY, HDF5 (``coefficients`` or ``signals``) or NIfTI file, inside a mask."""
    data, attrs, image = _read_array(path)
    if data.ndim < 2:
        raise DataError(f"{path}: expected an array (..., K) with one vector per voxel, got shape {data.shape}")
    if mask_path is None:
        mask = np.ones(data.shape[:-1], dtype=bool)
    else:
        mask = _read_array(mask_path)[0]
        if mask.shape != data.shape[:-1]:
            raise DataError(f"mask {mask_path} has shape {mask.shape}, the data's voxel grid is {data.shape[:-1]}")
        mask = mask != 0
    return VoxelData(data[mask], mask, attrs, image)


def write_coefficients(path: str | Path, coefficients: np.ndarray, attrs: dict | None = None) -> None:
    """Coefficient images (*spatial, r) as HDF5 dataset ``coefficients`` (what ``read_voxels`` and ``crbnet fit``
    read), written atomically."""
    if Path(path).suffix not in (".h5", ".hdf5"):
        raise DataError(f"unsupported output {path}: coefficient images are written as .h5/.hdf5")
    with atomic_hdf5(path) as f:
        f.create_dataset("coefficients", data=coefficients).attrs.update(attrs or {})


def write_estimates(path: str | Path, estimates: np.ndarray, names: list[str], units: list[str], source: VoxelData,
                    attrs: dict | None = None) -> None:
    """Parameter maps (*spatial, P), NaN outside the mask: NPY, HDF5, or NIfTI (same affine as a NIfTI input) with a
    JSON sidecar naming the volumes and their units."""
    meta = {"names": list(names), "units": list(units), **(attrs or {})}
    if is_nifti(path):
        write_nifti(path, source.scatter(estimates.astype(np.float32), np.nan), source.affine, meta)
        return
    maps = source.scatter(estimates, np.nan)
    if Path(path).suffix == ".npy":
        with atomic_path(path) as tmp:
            np.save(tmp, maps)
    elif Path(path).suffix in (".h5", ".hdf5"):
        with atomic_hdf5(path) as f:
            f.create_dataset("estimates", data=maps).attrs.update(meta)
    else:
        raise DataError(f"unsupported output {path}: use .npy, .h5/.hdf5, .nii or .nii.gz")
