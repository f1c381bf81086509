"""Dictionary matching (the reference estimator of physics.md section 5): maximum normalized inner product in a
low-rank subspace, chunked to bounded memory, with M0 in closed form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from crbnet.basis import Basis
from crbnet.io import atomic_hdf5
from crbnet.parameters import ParameterSpace, parameter
from crbnet.simulation import project_signals

FORMAT = "crbnet-dictionary/1"

# Inner products held at once (chunk x atoms) on the complex path; 2^24 complex64 values are 128 MB.
MAX_PRODUCTS = 2**24
# Voxels per chunk on the real path: the (2 x chunk, atoms) products stay in cache (measured fastest on 2 cores).
REAL_CHUNK = 128


@dataclass(frozen=True)
class MatchResult:
    """Matched atom index (n,), complex M0 = <d, y> / ||d||^2 (n,), and the atom's parameters (n, P)."""

    index: np.ndarray
    M0: np.ndarray
    parameters: np.ndarray


class Dictionary:
    """Atoms (m, r): fingerprints or their SVD coefficients at M0 = 1, with their parameters (m, P).

    When all atoms share one global phase (MRF-FISP atoms are purely imaginary), matching runs on real atoms
    with two real products per voxel chunk instead of a complex one."""

    def __init__(self, atoms: np.ndarray | torch.Tensor, parameters: np.ndarray, names: tuple[str, ...]) -> None:
        atoms = torch.as_tensor(atoms).to(torch.complex64)
        if atoms.ndim != 2 or len(parameters) != atoms.shape[0]:
            raise ValueError(f"atoms (m, r) and parameters (m, P) must have the same m; got {tuple(atoms.shape)} and "
                             f"{np.shape(parameters)}")
        self.norms = torch.linalg.vector_norm(atoms, dim=1)
        if not torch.all(self.norms > 0):
            raise ValueError("a dictionary atom is zero")
        unit = atoms / self.norms[:, None]
        pivot = unit.flatten()[unit.abs().argmax()]
        rotated = unit * (pivot.abs() / pivot)  # remove a global phase
        self.real = bool(rotated.imag.abs().max() <= 1e-6 * rotated.real.abs().max())
        self.phase = (pivot / pivot.abs()).to(torch.complex64)
        self.unit = rotated.real.contiguous() if self.real else unit
        self.parameters = np.asarray(parameters, dtype=np.float64)
        self.names = tuple(names)

    def __len__(self) -> int:
        return self.parameters.shape[0]

    def match(self, data: np.ndarray | torch.Tensor, chunk: int | None = None) -> MatchResult:
        """Best atom per voxel of ``data`` (n, r) complex: argmax |<d/||d||, y>|, then M0 = <d, y> / ||d||^2."""
        y_all = torch.as_tensor(data).to(torch.complex64)
        if y_all.ndim != 2 or y_all.shape[1] != self.unit.shape[1]:
            raise ValueError(f"data must be (n, {self.unit.shape[1]}), got {tuple(y_all.shape)}")
        step = chunk or (REAL_CHUNK if self.real else max(1, MAX_PRODUCTS // len(self)))
        index = torch.empty(y_all.shape[0], dtype=torch.long)
        inner = torch.empty(y_all.shape[0], dtype=torch.complex64)
        with torch.inference_mode():
            if self.real:
                y_all = y_all * self.phase.conj()  # <u e^{i phi}, y> = u . (y e^{-i phi}) for a real unit atom u
                unit_t = self.unit.T.contiguous()
                buffer = torch.empty(2 * step, len(self))
            for start in range(0, y_all.shape[0], step):
                y = y_all[start: start + step]
                if self.real:
                    products = torch.mm(torch.cat([y.real, y.imag]), unit_t, out=buffer[: 2 * len(y)])
                    re, im = products[: len(y)], products[len(y):]
                    best = re.square_().addcmul_(im, im).argmax(dim=1)
                    ip = (y * self.unit[best]).sum(dim=1)  # recomputed for the best atoms only
                else:
                    products = y @ self.unit.conj().T
                    best = products.abs().argmax(dim=1)
                    ip = products[torch.arange(len(y)), best]
                index[start: start + len(y)], inner[start: start + len(y)] = best, ip
        M0 = inner / self.norms[index]
        return MatchResult(index.numpy(), M0.numpy(), self.parameters[index.numpy()])


class MatchingEstimator:
    """Dictionary matching with the interface of a trained network (``names``, ``units``, ``basis``, ``predict``),
    so the Monte-Carlo evaluation and ``crbnet fit`` treat both alike (the reference estimator of Mao's second
    application). Saved as one HDF5 file with its atoms, their parameters and the basis."""

    def __init__(self, dictionary: Dictionary, basis: Basis, names: tuple[str, ...]) -> None:
        missing = [n for n in names if n not in dictionary.names]
        if missing:
            raise ValueError(f"the dictionary has no {', '.join(missing)} (it spans {', '.join(dictionary.names)})")
        self.dictionary, self.basis, self.names = dictionary, basis, tuple(names)
        self.units = tuple(parameter(n).unit for n in self.names)
        self._columns = [dictionary.names.index(n) for n in names]

    @classmethod
    def from_grid(cls, model, basis: Basis, space: ParameterSpace, axes: Mapping[str, np.ndarray],
                  names: tuple[str, ...], progress: bool = False) -> MatchingEstimator:
        """Atoms simulated with ``model`` on the regular grid ``axes`` (the other parameters at the prior means of
        ``space``, grid points that break its constraints left out), projected on ``basis``."""
        basis.check(None, model.sequence.sha256)
        values = space.grid(axes)
        keep = space.satisfied(values)
        values = {k: v[keep] for k, v in values.items()}
        atoms = project_signals(model, values, basis, progress)
        names_all = model.parameterization.names
        return cls(Dictionary(atoms, np.stack([values[k] for k in names_all], axis=1), names_all), basis, names)

    def predict(self, data: np.ndarray, **_: object) -> np.ndarray:
        """Matched parameters (n, len(names)) from complex coefficients (n, r) or fingerprints (n, Ns)."""
        return self.dictionary.match(self.basis.as_coefficients(np.asarray(data))).parameters[:, self._columns]

    def save(self, path: str | Path) -> None:
        d = self.dictionary
        with atomic_hdf5(path) as f:
            f.attrs.update({"format": FORMAT, "names": list(self.names)})
            f.create_dataset("atoms", data=(d.unit * d.phase if d.real else d.unit).numpy() * d.norms[:, None].numpy())
            f.create_dataset("parameters", data=d.parameters).attrs["names"] = list(d.names)
            self.basis.to_hdf5(f.create_group("basis"))

    @classmethod
    def load(cls, path: str | Path) -> MatchingEstimator:
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != FORMAT:
                    raise ValueError(f"{path} is not a crbnet dictionary file (format {FORMAT} expected)")
                dictionary = Dictionary(f["atoms"][()], f["parameters"][()], tuple(f["parameters"].attrs["names"]))
                return cls(dictionary, Basis.from_hdf5(f["basis"]), tuple(f.attrs["names"]))
        except FileNotFoundError:
            raise ValueError(f"dictionary file {path} does not exist") from None
        except OSError as err:
            raise ValueError(f"{path} is not a crbnet dictionary file ({err})") from None
