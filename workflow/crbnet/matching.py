"""Dictionary matching (the reference estimator of docs/model.md section 5): maximum normalized inner product in a
low-rank subspace, chunked to bounded memory, with M0 in closed form.

Two searches give the same atom (up to float32 rounding of the scores): brute force over all atoms, and a
coarse-to-fine search over phase-invariant spherical k-means clusters of the unit atoms. The clustered search scores
a voxel against the cluster centres, then searches clusters in decreasing centre score and skips every cluster whose
angular radius rules out a better atom than the best found (triangle inequality of the angle arccos |<u, v>|
between unit vectors up to phase), so it is exact; ``probe`` caps the clusters searched for speed at low SNR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import h5py
import numba
import numpy as np
import torch

from crbnet.basis import Basis
from crbnet.devices import check_options
from crbnet.io.atomic import atomic_hdf5
from crbnet.parameters import ParameterSpace, parameter
from crbnet.simulation import project_signals

FORMAT = "crbnet-dictionary/1"

# Inner products held at once (chunk x atoms) on the complex path; 2^24 complex64 values are 128 MB.
MAX_PRODUCTS = 2**24
# Voxels per chunk on the real path: the (2 x chunk, atoms) products stay in cache (measured fastest on 2 cores).
REAL_CHUNK = 128
# Voxels per chunk of the clustered search (a few MB of float32 copies).
CLUSTERED_CHUNK = 2**16
# method="auto" takes the clustered search from this many atoms on (measured 7x faster than brute force there, on 2
# busy cores); smaller dictionaries skip the index build and the kernel's load (about 0.6 s per process).
CLUSTERED_MIN_ATOMS = 2000
# The bound skips a cluster only when it lies below the best squared cosine by more than this relative slack,
# far above float32 rounding of the scores.
BOUND_SLACK = 1e-5


@dataclass(frozen=True)
class MatchResult:
    """Matched atom index (n,), complex M0 = <d, y> / ||d||^2 (n,), and the atom's parameters (n, P)."""

    index: np.ndarray
    M0: np.ndarray
    parameters: np.ndarray


def spherical_kmeans(unit: torch.Tensor, k: int, seed: int = 0,
                     iterations: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Phase-invariant spherical k-means of unit vectors (m, d), real or complex: at most k unit centres (K, d)
    that maximize the sum of |<c, a>| over the vectors a of each cluster, and each vector's cluster (m,).

    Seeding is k-means++ on 1 - |<c, a>|^2 with a fixed seed (fewer centres when fewer distinct directions); each
    update sums the vectors of a cluster rotated into phase with its centre. Empty clusters are dropped."""
    rng = np.random.default_rng(seed)
    m = unit.shape[0]
    chosen = [int(rng.integers(m))]
    distance = 1 - (unit @ unit[chosen[0]].conj()).abs().square()
    for _ in range(1, min(k, m)):
        p = distance.clamp_min(0).double().numpy()
        if p.sum() <= 0:
            break
        chosen.append(int(rng.choice(m, p=p / p.sum())))
        distance = torch.minimum(distance, 1 - (unit @ unit[chosen[-1]].conj()).abs().square())
    centres, labels = unit[chosen], None
    for _ in range(iterations):
        similarity = unit @ centres.conj().T  # <c, a>
        previous, labels = labels, similarity.abs().argmax(dim=1)
        if previous is not None and torch.equal(labels, previous):
            break
        aligned = unit * torch.sgn(similarity.gather(1, labels[:, None])).conj()
        sums = torch.zeros_like(centres).index_add_(0, labels, aligned)
        norms = torch.linalg.vector_norm(sums, dim=1, keepdim=True)
        centres = torch.where(norms > 0, sums / norms.clamp_min(torch.finfo(norms.dtype).tiny), centres)
    labels = (unit @ centres.conj().T).abs().argmax(dim=1)
    used, labels = torch.unique(labels, return_inverse=True)
    return centres[used], labels


def real_form(x: torch.Tensor) -> torch.Tensor:
    """Vectors (..., d) as the clustered search takes them: real ones as they are, complex ones as [Re, Im]."""
    return torch.cat([x.real, x.imag], dim=-1) if x.is_complex() else x


@dataclass(frozen=True)
class ClusterIndex:
    """The unit atoms grouped by cluster in real form (``real_form``): cluster k holds rows
    ``offsets[k]:offsets[k + 1]`` of ``atoms`` (dictionary indices ``atom_index``), with unit ``centres`` (K, d)
    and angular radius theta_k (cos, sin: the largest angle arccos |<c_k, a>| of its atoms, float64)."""

    centres: np.ndarray
    cos_radius: np.ndarray
    sin_radius: np.ndarray
    atoms: np.ndarray
    atom_index: np.ndarray
    offsets: np.ndarray

    @classmethod
    def build(cls, unit: torch.Tensor, clusters: int) -> ClusterIndex:
        """Index of unit atoms (m, d), real or complex, in at most ``clusters`` clusters."""
        centres, labels = spherical_kmeans(unit, clusters)
        order = torch.argsort(labels, stable=True)
        cos = (unit.to(torch.complex128) * centres[labels].to(torch.complex128).conj()).sum(dim=1).abs()
        cos_radius = torch.ones(len(centres), dtype=torch.float64).scatter_reduce(0, labels, cos.clamp(max=1),
                                                                                  "amin")
        counts = torch.bincount(labels, minlength=len(centres))
        to_f32 = lambda x: np.ascontiguousarray(real_form(x).numpy(), dtype=np.float32)  # noqa: E731
        return cls(to_f32(centres), cos_radius.numpy(), torch.sqrt(1 - cos_radius.square()).numpy(),
                   to_f32(unit[order]), order.numpy(), np.concatenate([[0], np.cumsum(counts.numpy())]))


@numba.njit(nogil=True, cache=True, inline="always")  # inlined: takes the caller's fastmath flags
def _inner(atoms: np.ndarray, j: int, y1: np.ndarray, y2: np.ndarray) -> tuple[float, float]:
    """Real and imaginary parts of <a, y> for the real-form atom a = atoms[j] and the voxel's real-form y1, y2."""
    re = np.float32(0.0)
    im = np.float32(0.0)
    for t in range(atoms.shape[1]):
        re += atoms[j, t] * y1[t]
        im += atoms[j, t] * y2[t]
    return re, im


@numba.njit(nogil=True, cache=True, inline="always")
def _argmax(x: np.ndarray) -> int:
    """First index of the largest entry (several times faster than numba's np.argmax on short arrays)."""
    arg, top = 0, x[0]
    for k in range(1, x.size):
        if x[k] > top:
            arg, top = k, x[k]
    return arg


@numba.njit(nogil=True, cache=True)
def _excluded(cos_angle: float, cos_radius: float, sin_radius: float, best_cos2: float) -> bool:
    """Whether no atom within the angular radius of a centre at this angle from y beats the best squared cosine
    so far: cos(angle - radius)^2 below ``best_cos2`` by more than the slack."""
    if cos_angle >= cos_radius:
        return False
    bound = cos_angle * cos_radius + math.sqrt(max(1.0 - cos_angle * cos_angle, 0.0)) * sin_radius
    return bound * bound < best_cos2 * (1.0 - BOUND_SLACK)


@numba.njit(parallel=True, fastmath={"reassoc", "contract"}, nogil=True, cache=True)
def _clustered_search(y1: np.ndarray, y2: np.ndarray, real: bool, centres: np.ndarray, cos_radius: np.ndarray,
                      sin_radius: np.ndarray, atoms: np.ndarray, atom_index: np.ndarray, offsets: np.ndarray,
                      probe: int, best_atom: np.ndarray, inner: np.ndarray) -> None:
    """Fill ``best_atom`` (n,) with the dictionary index of argmax |<a, y>| per voxel (ties: the lowest index) and
    ``inner`` (n,) with its <a, y>, searching at most ``probe`` clusters. Voxels y (n, d) in real form: y1 and y2
    such that <a, y> = a.y1 + i a.y2 for every real-form atom a, so ||y||^2 = |y1|^2 + |y2|^2 for ``real`` atoms
    (y1 = Re y, y2 = Im y) and |y1|^2 for complex ones (y1 = [Re y, Im y])."""
    n_clusters = centres.shape[0]
    widest = np.argmin(cos_radius)
    first = np.argmin(atom_index)  # the row of atom 0, which a voxel with NaNs keeps, as in brute force
    for i in numba.prange(y1.shape[0]):
        a, b = y1[i], y2[i]
        norm2 = 0.0
        for t in range(a.size):
            norm2 += a[t] * a[t] + (b[t] * b[t] if real else 0.0)
        inv = 1.0 / norm2 if norm2 > 0 else 0.0
        scores = np.empty(n_clusters, dtype=np.float32)
        for k in range(n_clusters):
            re, im = _inner(centres, k, a, b)
            scores[k] = re * re + im * im
        best, row, searched = np.float32(-1.0), first, 0
        for _ in range(n_clusters):
            k = _argmax(scores)
            cos_angle = math.sqrt(min(scores[k] * inv, 1.0))
            scores[k] = -1.0
            if _excluded(cos_angle, cos_radius[widest], sin_radius[widest], best * inv):
                break  # the remaining centres are farther from y, and no cluster is wider
            if _excluded(cos_angle, cos_radius[k], sin_radius[k], best * inv):
                continue
            for j in range(offsets[k], offsets[k + 1]):
                re, im = _inner(atoms, j, a, b)
                score = re * re + im * im
                if score > best or (score == best and atom_index[j] < atom_index[row]):
                    best, row = score, j
            searched += 1
            if searched == probe:
                break
        re, im = _inner(atoms, row, a, b)
        best_atom[i], inner[i] = atom_index[row], complex(re, im)


class Dictionary:
    """Atoms (m, r): fingerprints or their SVD coefficients at M0 = 1, with their parameters (m, P).

    When all atoms share one global phase (MRF-FISP atoms are purely imaginary), matching runs on real atoms
    with two real products per voxel chunk instead of a complex one. ``clusters``: the number of clusters of the
    clustered search (default about sqrt(m)); its index is built on the first clustered match."""

    def __init__(self, atoms: np.ndarray | torch.Tensor, parameters: np.ndarray, names: tuple[str, ...],
                 clusters: int | None = None) -> None:
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
        self.clusters = clusters or math.ceil(math.sqrt(len(self)))

    def __len__(self) -> int:
        return self.parameters.shape[0]

    @cached_property
    def cluster_index(self) -> ClusterIndex:
        """The cluster index of the unit atoms (built once, on first use)."""
        return ClusterIndex.build(self.unit, self.clusters)

    def match(self, data: np.ndarray | torch.Tensor, chunk: int | None = None,
              method: Literal["auto", "brute", "clustered"] = "auto", probe: int | None = None) -> MatchResult:
        """Best atom per voxel of ``data`` (n, r) complex: argmax |<d/||d||, y>|, then M0 = <d, y> / ||d||^2.

        method: ``brute`` scores every atom; ``clustered`` searches the clusters of ``cluster_index``, at most
        ``probe`` of them per voxel (None: as many as the bound requires, the same atoms as brute force); ``auto``
        takes ``clustered`` from CLUSTERED_MIN_ATOMS atoms on."""
        y_all = torch.as_tensor(data).to(torch.complex64)
        if y_all.ndim != 2 or y_all.shape[1] != self.unit.shape[1]:
            raise ValueError(f"data must be (n, {self.unit.shape[1]}), got {tuple(y_all.shape)}")
        if method == "auto":
            method = "clustered" if len(self) >= CLUSTERED_MIN_ATOMS else "brute"
        if method not in ("brute", "clustered"):
            raise ValueError(f"method must be auto, brute or clustered, got {method!r}")
        if probe is not None and probe < 1:
            raise ValueError(f"probe must be at least 1, got {probe}")
        clustered = method == "clustered"
        step = chunk or (CLUSTERED_CHUNK if clustered else REAL_CHUNK if self.real else
                         max(1, MAX_PRODUCTS // len(self)))
        index = torch.empty(y_all.shape[0], dtype=torch.long)
        inner = torch.empty(y_all.shape[0], dtype=torch.complex64)
        with torch.inference_mode():
            if self.real:
                y_all = y_all * self.phase.conj()  # <u e^{i phi}, y> = u . (y e^{-i phi}) for a real unit atom u
                if not clustered:
                    unit_t = self.unit.T.contiguous()
                    buffer = torch.empty(2 * step, len(self))
            for start in range(0, y_all.shape[0], step):
                y = y_all[start: start + step]
                if clustered:
                    best, ip = self._clustered(y, probe)
                else:
                    if self.real:
                        products = torch.mm(torch.cat([y.real, y.imag]), unit_t, out=buffer[: 2 * len(y)])
                        re, im = products[: len(y)], products[len(y):]
                        best = re.square_().addcmul_(im, im).argmax(dim=1)
                    else:
                        best = (y @ self.unit.conj().T).abs().argmax(dim=1)
                    atoms = self.unit[best]  # inner products recomputed for the best atoms only
                    ip = (y * atoms).sum(dim=1) if self.real else (atoms.conj() * y).sum(dim=1)
                index[start: start + len(y)], inner[start: start + len(y)] = best, ip
        M0 = inner / self.norms[index]
        return MatchResult(index.numpy(), M0.numpy(), self.parameters[index.numpy()])

    def _clustered(self, y: torch.Tensor, probe: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Best atoms (n,) of voxels y (n, r) (phase-rotated on the real path) by the clustered search, and their
        inner products <u, y> (n,) with the unit atoms."""
        index = self.cluster_index
        if self.real:
            y1, y2 = y.real, y.imag
        else:  # <u, y> = (Re u . Re y + Im u . Im y) + i (Re u . Im y - Im u . Re y)
            y1, y2 = real_form(y), torch.cat([y.imag, -y.real], dim=1)
        best, inner = np.empty(len(y), dtype=np.int64), np.empty(len(y), dtype=np.complex64)
        numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
        _clustered_search(np.ascontiguousarray(y1.numpy()), np.ascontiguousarray(y2.numpy()), self.real,
                          index.centres, index.cos_radius, index.sin_radius, index.atoms, index.atom_index,
                          index.offsets, probe or len(index.centres), best, inner)
        return torch.from_numpy(best), torch.from_numpy(inner)


class MatchingEstimator:
    """Dictionary matching, a ``crbnet.estimator.Estimator`` like the trained network, so the Monte-Carlo evaluation
    and ``crbnet fit`` treat both alike (the reference estimator of Mao's second
    application). Saved as one HDF5 file with its atoms, their parameters and the basis."""

    def __init__(self, dictionary: Dictionary, basis: Basis, names: tuple[str, ...]) -> None:
        missing = [n for n in names if n not in dictionary.names]
        if missing:
            raise ValueError(f"the dictionary has no {', '.join(missing)} (it spans {', '.join(dictionary.names)})")
        self.dictionary, self.basis, self.names = dictionary, basis, tuple(names)
        self.units = tuple(parameter(n).unit for n in self.names)
        self._columns = [dictionary.names.index(n) for n in names]

    @classmethod
    def from_grid(cls, signal_model, basis: Basis, space: ParameterSpace, axes: Mapping[str, np.ndarray],
                  names: tuple[str, ...], progress: bool = False) -> MatchingEstimator:
        """Atoms simulated with ``signal_model`` on the regular grid ``axes`` (the other parameters at the prior means of
        ``space``, grid points that break its constraints left out), projected on ``basis``."""
        basis.check(None, signal_model.sequence.sha256)
        values = space.grid(axes)
        keep = space.satisfied(values)
        values = {k: v[keep] for k, v in values.items()}
        atoms = project_signals(signal_model, values, basis, progress)
        names_all = signal_model.parameterization.names
        return cls(Dictionary(atoms, np.stack([values[k] for k in names_all], axis=1), names_all), basis, names)

    def predict(self, data: np.ndarray, *, batch: int | None = None, precision: str = "fp32",
                device: torch.device | str = "cpu") -> np.ndarray:
        """Matched parameters (n, len(names)) from complex coefficients (n, r) or fingerprints (n, Ns) (NaN for rows
        with NaN or inf values), ``batch`` voxels at a time (default: Dictionary.match's). Matching runs on the CPU in float32 whatever ``device`` and
        ``precision`` say (both are checked as every estimator checks them)."""
        check_options(precision, device)
        coefficients = self.basis.as_coefficients(np.asarray(data))
        finite = np.isfinite(coefficients).all(axis=1)
        out = np.full((len(coefficients), len(self.names)), np.nan)  # rows with NaN or inf data: NaN
        if finite.any():
            out[finite] = self.dictionary.match(coefficients[finite], chunk=batch).parameters[:, self._columns]
        return out

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
