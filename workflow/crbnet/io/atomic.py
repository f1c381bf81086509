"""Atomic writes: a temporary sibling file that replaces the target only once it is complete, with the mode that
the process's umask gives a new file (mkstemp's own 0600 would hide outputs and the shared cache from other
users)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import pandas as pd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; it replaces ``path`` only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix="".join(path.suffixes))
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
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
