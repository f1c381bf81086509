"""BART's CFL format."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crbnet.io.atomic import atomic_path
from crbnet.io.voxels import DataError


def write_cfl(base: str | Path, array: np.ndarray) -> None:
    """BART's format: ``base.hdr`` (text, "# Dimensions" then the dimensions) and ``base.cfl`` (complex64,
    little-endian, column-major), with the array's dimensions padded to BART's 16."""
    if array.ndim > 16:
        raise DataError(f"BART arrays have at most 16 dimensions, got {array.ndim}")
    dims = list(array.shape) + [1] * (16 - array.ndim)
    with atomic_path(f"{base}.cfl") as tmp_cfl, atomic_path(f"{base}.hdr") as tmp_hdr:
        np.asarray(array, dtype="<c8").ravel(order="F").tofile(tmp_cfl)
        tmp_hdr.write_text("# Dimensions\n" + " ".join(map(str, dims)) + "\n")


def read_cfl(base: str | Path) -> np.ndarray:
    """An array written in BART's format (``base.hdr`` and ``base.cfl``), trailing singleton dimensions dropped."""
    try:
        dims = [int(v) for v in Path(f"{base}.hdr").read_text().splitlines()[1].split()]
        data = np.fromfile(f"{base}.cfl", dtype="<c8")
    except (OSError, IndexError, ValueError) as err:
        raise DataError(f"cannot read BART array {base}: {err}") from None
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    if data.size != np.prod(dims):
        raise DataError(f"BART array {base}: {data.size} values for dimensions {dims}")
    return data.reshape(dims, order="F")
