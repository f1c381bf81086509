"""File input/output: atomic writes (temporary sibling, then rename) and voxel data in NPY, HDF5 or NIfTI."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix="".join(path.suffixes))
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.10g")


@contextlib.contextmanager
def atomic_hdf5(path: str | Path) -> Iterator[h5py.File]:
    """An HDF5 file opened for writing that appears at ``path`` only when complete."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        yield f



# ------------------------------------------------------------------------------------------ voxel data
NIFTI_SUFFIXES = (".nii", ".nii.gz")


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

    def scatter(self, estimates: np.ndarray, fill: float) -> np.ndarray:
        """Estimates (n, P) placed back into an array (*spatial, P) filled with ``fill`` outside the mask."""
        out = np.full((*self.mask.shape, estimates.shape[1]), fill, dtype=estimates.dtype)
        out[self.mask] = estimates
        return out


def _is_nifti(path: str | Path) -> bool:
    return str(path).endswith(NIFTI_SUFFIXES)


def _read_array(path: str | Path) -> tuple[np.ndarray, dict, object | None]:
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    try:
        if _is_nifti(path):
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


def write_estimates(path: str | Path, estimates: np.ndarray, names: list[str], units: list[str], source: VoxelData,
                    attrs: dict | None = None) -> None:
    """Parameter maps (*spatial, P): NPY or HDF5 (NaN outside the mask), or NIfTI (0 outside the mask, same
    affine as a NIfTI input) with a JSON sidecar naming the volumes and their units."""
    meta = {"names": list(names), "units": list(units), **(attrs or {})}
    if _is_nifti(path):
        import json

        import nibabel as nib

        maps = source.scatter(estimates.astype(np.float32), 0.0)
        affine = source.image.affine if source.image is not None else np.eye(4)
        sidecar = Path(str(path).removesuffix(".gz").removesuffix(".nii") + ".json")
        with atomic_path(path) as tmp_nii, atomic_path(sidecar) as tmp_json:
            nib.save(nib.Nifti1Image(maps, affine), tmp_nii)
            tmp_json.write_text(json.dumps(meta, indent=2))
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


# ------------------------------------------------------------------------------------------ parameter maps
def save_maps(path: str | Path, estimates: np.ndarray, names: Sequence[str], units: Sequence[str], affine: np.ndarray,
              sqrt_crb: np.ndarray | None = None, attrs: Mapping[str, object] | None = None) -> None:
    """HDF5 with ``estimates`` (X, Y, Z, Pe; names and units as attributes), optionally ``sqrt_crb``, the affine."""
    with atomic_hdf5(path) as f:
        f.attrs.update({"affine": affine, **(attrs or {})})
        meta = {"names": list(names), "units": list(units)}
        f.create_dataset("estimates", data=estimates, compression="gzip").attrs.update(meta)
        if sqrt_crb is not None:
            f.create_dataset("sqrt_crb", data=sqrt_crb, compression="gzip").attrs.update(meta)


def read_maps(path: str | Path, dataset: str = "estimates"
              ) -> tuple[dict[str, np.ndarray], dict[str, str], np.ndarray]:
    """{parameter: (X, Y, Z) map} of ``dataset`` (``estimates``, ``sqrt_crb`` or a phantom's ``truth``), {parameter:
    unit}, affine."""
    with h5py.File(path, "r") as f:
        if dataset not in f:
            raise DataError(f"{path} has no '{dataset}' maps (it has {', '.join(f)})")
        data, attrs = f[dataset][()], f[dataset].attrs
        maps = {k: data[..., i] for i, k in enumerate(attrs["names"])}
        return maps, dict(zip(attrs["names"], attrs["units"])), np.asarray(f.attrs["affine"])


def write_nifti_map(path: str | Path, image: np.ndarray, affine: np.ndarray, sidecar: Mapping[str, object]) -> None:
    """One map as NIfTI (float32, 0 where NaN) and ``<path without .nii.gz>.json`` with the sidecar fields (BIDS:
    Units, EstimationAlgorithm, Sources, ...)."""
    import json

    import nibabel as nib

    data = np.nan_to_num(image.astype(np.float32), nan=0.0)
    json_path = Path(str(path).removesuffix(".gz").removesuffix(".nii") + ".json")
    with atomic_path(path) as tmp_nii, atomic_path(json_path) as tmp_json:
        nib.save(nib.Nifti1Image(data, affine), tmp_nii)
        tmp_json.write_text(json.dumps(dict(sidecar), indent=2))


def write_cfl(base: str | Path, array: np.ndarray) -> None:
    """BART's format: ``base.hdr`` (text, "# Dimensions" then the dimensions) and ``base.cfl`` (complex64,
    little-endian, column-major), with the array's dimensions padded to BART's 16."""
    if array.ndim > 16:
        raise DataError(f"BART arrays have at most 16 dimensions, got {array.ndim}")
    dims = list(array.shape) + [1] * (16 - array.ndim)
    with atomic_path(f"{base}.cfl") as tmp_cfl, atomic_path(f"{base}.hdr") as tmp_hdr:
        np.asarray(array, dtype="<c8").ravel(order="F").tofile(tmp_cfl)
        tmp_hdr.write_text("# Dimensions\n" + " ".join(map(str, dims)) + "\n")
