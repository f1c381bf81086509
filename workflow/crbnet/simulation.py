"""Chunked simulation of fingerprint datasets with unit CRBs, written to HDF5 with bounded memory."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from crbnet.crb import unit_crb
from crbnet.io import atomic_hdf5
from crbnet.models.qmt import QMTModel
from crbnet.parameters import validate

# Dual-stack entries (fingerprints x (1 + P)) simulated at once; about 2.5 MB per entry and temporary at 1142 pulses.
CHUNK_ENTRIES = 128


def chunks(model: QMTModel, values: Mapping[str, np.ndarray], wrt: tuple[str, ...], chunk: int | None = None,
           progress: bool = False) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield (rows, signal (b, Ns), unit CRB (b, P)) over chunks of the rows of ``values``."""
    validate(values)
    n = len(next(iter(values.values())))
    size = chunk or max(1, CHUNK_ENTRIES // (1 + len(wrt)))
    bar = tqdm(total=n, unit="fp", desc="simulate", disable=not progress, file=sys.stderr)
    for start in range(0, n, size):
        rows = slice(start, min(n, start + size))
        signal, jac = model.simulate({k: v[rows] for k, v in values.items()}, wrt)
        yield rows, signal, unit_crb(signal, jac)
        bar.update(rows.stop - rows.start)
    bar.close()


def write_dataset(path: str | Path, model: QMTModel, values: Mapping[str, np.ndarray], progress: bool = False,
                  store_signals: bool = True, attrs: Mapping[str, object] | None = None) -> None:
    """Simulate every row of ``values`` (all parameters of the model's parameterization) and write
    ``parameters`` (n, P), unit ``crb`` (n, P, float64, full fingerprint) and ``signals`` (n, Ns, complex64)."""
    names = model.parameterization.names
    n = len(values[names[0]])
    with atomic_hdf5(path) as f:
        f.attrs.update({"parameterization": model.parameterization.name, "sequence_sha256": model.sequence.sha256,
                        **(attrs or {})})
        params = f.create_dataset("parameters", data=np.stack([values[k] for k in names], axis=1))
        crb = f.create_dataset("crb", shape=(n, len(names)), dtype="f8")
        for ds in (params, crb):
            ds.attrs["names"] = list(names)
            ds.attrs["units"] = model.parameterization.units()
        crb.attrs.update({"domain": "fingerprint", "M0": 1.0, "sigma": 1.0})
        sig = f.create_dataset("signals", shape=(n, model.n_samples), dtype="c8") if store_signals else None
        for rows, signal, c in chunks(model, values, names, progress=progress):
            crb[rows] = c.cpu().numpy()
            if sig is not None:
                sig[rows] = signal.cpu().numpy().astype(np.complex64)


def crb_grid(model: QMTModel, values: Mapping[str, np.ndarray], estimate: tuple[str, ...], sigma: float,
             progress: bool = False) -> pd.DataFrame:
    """Parameter values with CRB and sqrt(CRB) of ``estimate`` at noise ``sigma`` (|M0| = 1), one row per sample.

    All parameters of the model's parameterization that are not estimated are taken as known."""
    crb = np.concatenate([c.cpu().numpy() for _, _, c in chunks(model, values, estimate, progress=progress)]) * sigma**2
    table = pd.DataFrame({k: np.asarray(v) for k, v in values.items()})
    for k, name in enumerate(estimate):
        table[f"crb_{name}"] = crb[:, k]
        table[f"sqrt_crb_{name}"] = np.sqrt(crb[:, k])
    return table


def crb_summary(path: str | Path) -> pd.DataFrame:
    """Per-parameter summary of the unit CRBs in a dataset file: percentiles of sqrt(CRB) and finite fraction."""
    import h5py

    with h5py.File(path, "r") as f:
        crb, names, units = f["crb"][()], list(f["crb"].attrs["names"]), list(f["crb"].attrs["units"])
    root = np.sqrt(crb)
    finite = np.isfinite(root)
    pct = lambda q: [np.percentile(r[m], q) if m.any() else np.nan for r, m in zip(root.T, finite.T)]
    return pd.DataFrame({"parameter": names, "unit": units, "n": len(crb), "finite_fraction": finite.mean(0),
                         "sqrt_crb_p05": pct(5), "sqrt_crb_median": pct(50), "sqrt_crb_p95": pct(95)})
