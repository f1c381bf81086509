"""Parameter-map files: HDF5 with the estimates (and optionally their sqrt(CRB)) of every parameter, and the affine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np

from crbnet.io.atomic import atomic_hdf5
from crbnet.io.voxels import DataError


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
