"""Chunked simulation of fingerprint datasets (signals, SVD coefficients, unit CRBs), written to HDF5 with bounded
memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from crbnet.basis import Basis, BasisError
from crbnet.crb import unit_crb
from crbnet.io.atomic import atomic_hdf5
from crbnet.parameters import ParameterSpace, validate
from crbnet.runtime import progress as progress_bar
from crbnet.signals.fisp import FISPSignalModel
from crbnet.signals.qmt import QMTSignalModel


def chunks(signal_model: QMTSignalModel | FISPSignalModel, values: Mapping[str, np.ndarray], wrt: tuple[str, ...], chunk: int | None = None,
           progress: bool = False) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield (rows, signal (b, Ns), Jacobian (b, Ns, len(wrt))) over chunks of the rows of ``values``."""
    validate(values)
    n = len(next(iter(values.values())))
    size = chunk or max(1, signal_model.chunk_entries // (1 + len(wrt)))
    bar = progress_bar(total=n, unit="fp", desc="simulate", disable=not progress)
    for start in range(0, n, size):
        rows = slice(start, min(n, start + size))
        signal, jac = signal_model.simulate({k: v[rows] for k, v in values.items()}, wrt)
        yield rows, signal, jac
        bar.update(rows.stop - rows.start)
    bar.close()


def distinct_rows(values: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The distinct rows of parameter values (each (n,)) and, for every row, the index of its distinct row: repeated
    rows (the tissues of a phantom, dictionary estimates) are then simulated once."""
    names = list(values)
    rows, inverse = np.unique(np.stack([np.asarray(values[k], dtype=np.float64) for k in names], axis=1), axis=0,
                              return_inverse=True)
    return {k: rows[:, i] for i, k in enumerate(names)}, inverse.ravel()


def project_signals(signal_model: QMTSignalModel | FISPSignalModel, values: Mapping[str, np.ndarray], basis: Basis,
                    progress: bool = False) -> np.ndarray:
    """Coefficients (n, r) at M0 = 1 of the fingerprints of every row of ``values`` (signals only, no Jacobian)."""
    return np.concatenate([basis.project(signal).cpu().numpy()
                           for _, signal, _ in chunks(signal_model, values, (), progress=progress)])


def simulate_signals(signal_model: QMTSignalModel | FISPSignalModel, values: Mapping[str, np.ndarray],
                     progress: bool = False) -> np.ndarray:
    """Fingerprints (n, Ns) complex128 at M0 = 1 of every row of ``values`` (signals only, no Jacobian)."""
    return np.concatenate([signal.cpu().numpy().astype(np.complex128)
                           for _, signal, _ in chunks(signal_model, values, (), progress=progress)])


def grid_axes(*axes: Mapping) -> dict[str, np.ndarray]:
    """Configured axes ``{name, lower, upper, n[, scale]}`` as evenly (``scale: linear``, the default) or
    logarithmically (``scale: log``) spaced values."""
    space = {"linear": np.linspace, "log": np.geomspace}
    return {a["name"]: space[a.get("scale", "linear")](a["lower"], a["upper"], a["n"]) for a in axes}


def dataset_values(space: ParameterSpace, spec: Mapping) -> dict[str, np.ndarray]:
    """Parameter values of one configured split: a seeded draw ``{n, seed}``, a 1-D or 2-D grid
    ``{grid: {x[, y]}}`` or a single ``{point: {name: value}}``, the other parameters at the prior means."""
    if "grid" in spec:
        return space.grid(grid_axes(*(spec["grid"][k] for k in ("x", "y") if k in spec["grid"])))
    if "point" in spec:
        return space.point(spec["point"])
    return space.sample(spec["n"], spec["seed"])


def write_dataset(path: str | Path, signal_model: QMTSignalModel | FISPSignalModel, values: Mapping[str, np.ndarray], progress: bool = False,
                  store_signals: bool = True, crb: bool = True, basis: Basis | None = None,
                  attrs: Mapping[str, object] | None = None) -> None:
    """Simulate every row of ``values`` (all parameters of the model's parameterization) and write
    ``parameters`` (n, P) and, as configured, ``signals`` (n, Ns, complex64) and unit CRBs (n, P, float64) of
    the full fingerprint (``crb``). With a ``basis`` also ``coefficients`` (n, r, complex64) and the unit CRBs of
    the coefficients (``crb_coefficients``): the bound for an estimator that only sees the coefficients.
    Without CRBs no Jacobian is computed (about 15 times faster; enough for a basis)."""
    pz = signal_model.parameterization
    n = len(values[pz.names[0]])
    if basis is not None and basis.sequence_sha256 != signal_model.sequence.sha256:
        raise BasisError("the basis was built for another sequence than the one simulated")
    with atomic_hdf5(path) as f:
        f.attrs.update({"parameterization": pz.name, "sequence_sha256": signal_model.sequence.sha256, **(attrs or {})})
        out = {"parameters": f.create_dataset("parameters", data=np.stack([values[k] for k in pz.names], axis=1))}
        out["parameters"].attrs.update({"names": list(pz.names), "units": pz.units()})
        if store_signals:
            out["signals"] = f.create_dataset("signals", shape=(n, signal_model.n_samples), dtype="c8")
        if basis is not None:
            f.attrs["basis_sha256"] = basis.sha256
            out["coefficients"] = f.create_dataset("coefficients", shape=(n, basis.rank), dtype="c8")
        domains = {"crb": "fingerprint"} if crb else {}
        if crb and basis is not None:
            domains["crb_coefficients"] = "coefficients"
        for name, domain in domains.items():
            out[name] = f.create_dataset(name, shape=(n, len(pz.names)), dtype="f8")
            out[name].attrs.update({"names": list(pz.names), "units": pz.units(), "domain": domain, "M0": 1.0,
                                    "sigma": 1.0})
        U = None if basis is None else torch.as_tensor(basis.U, device=signal_model.device)
        for rows, signal, jac in chunks(signal_model, values, pz.names if crb else (), progress=progress):
            if "signals" in out:
                out["signals"][rows] = signal.cpu().numpy().astype(np.complex64)
            if U is not None:
                out["coefficients"][rows] = basis.project(signal).cpu().numpy().astype(np.complex64)
            if "crb" in out:
                out["crb"][rows] = unit_crb(signal, jac).cpu().numpy()
            if "crb_coefficients" in out:
                out["crb_coefficients"][rows] = unit_crb(signal, jac, U).cpu().numpy()


def crb_grid(signal_model: QMTSignalModel | FISPSignalModel, values: Mapping[str, np.ndarray], estimate: tuple[str, ...], sigma: float,
             progress: bool = False) -> pd.DataFrame:
    """Parameter values with CRB and sqrt(CRB) of ``estimate`` at noise ``sigma`` (|M0| = 1), one row per sample.

    All parameters of the model's parameterization that are not estimated are taken as known."""
    crb = np.concatenate([unit_crb(s, j).cpu().numpy() for _, s, j in chunks(signal_model, values, estimate, progress=progress)])
    crb = crb * sigma**2
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
    def pct(q: float) -> list[float]:
        return [np.percentile(r[m], q) if m.any() else np.nan for r, m in zip(root.T, finite.T)]

    return pd.DataFrame({"parameter": names, "unit": units, "n": len(crb), "finite_fraction": finite.mean(0),
                         "sqrt_crb_p05": pct(5), "sqrt_crb_median": pct(50), "sqrt_crb_p95": pct(95)})
