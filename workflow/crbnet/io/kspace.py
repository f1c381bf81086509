"""HDF5 files of simulated k-space (``crbnet.acquisition.KSpace``)."""

from __future__ import annotations

from pathlib import Path

import h5py

from crbnet.acquisition import KSpace
from crbnet.io.atomic import atomic_hdf5
from crbnet.io.voxels import DataError

FIELDS = ("data", "trajectory", "coil_maps")


def save_kspace(path: str | Path, kspace: KSpace) -> None:
    """``data``, ``trajectory`` and ``coil_maps`` datasets; ``sigma`` and ``sequence_sha256`` as attributes."""
    with atomic_hdf5(path) as f:
        f.attrs.update({"sigma": kspace.sigma, "sequence_sha256": kspace.sequence_sha256})
        for name in FIELDS:
            f.create_dataset(name, data=getattr(kspace, name))


def load_kspace(path: str | Path) -> KSpace:
    """The k-space written by ``save_kspace``; a DataError names a missing file or dataset."""
    if not Path(path).exists():
        raise DataError(f"k-space file {path} does not exist")
    with h5py.File(path, "r") as f:
        missing = [name for name in FIELDS if name not in f]
        if missing:
            raise DataError(f"{path} is not a k-space file: no {', '.join(missing)}")
        return KSpace(*(f[name][()] for name in FIELDS), float(f.attrs["sigma"]), str(f.attrs["sequence_sha256"]))
