"""Pulse sequences from YAML: schema validation, pattern files, the parametric pattern, content hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import h5py
import jsonschema
import numpy as np
import pandas as pd
import yaml
from scipy.interpolate import PchipInterpolator

from crbnet.io import yamlfile

# Hard limits of the simulator (the R2sl table covers TRF/T2s in [0.5, 1000] for T2s in [1, 100] us).
TRF_RANGE = (50e-6, 1e-3)  # s
ALPHA_MAX = np.pi  # rad


class SequenceError(ValueError):
    """A sequence file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, eq=False)
class Pattern:
    """One periodic pulse train: flip angles alpha (rad), pulse durations TRF (s), crushed-pulse mask."""

    alpha: np.ndarray
    TRF: np.ndarray
    crushed: np.ndarray

    @property
    def n_pulses(self) -> int:
        return int(self.alpha.size)


@dataclass(frozen=True, eq=False)
class QMTSequence:
    """Hybrid-state qMT sequence: fixed TR (s) and one or more patterns whose signals are concatenated."""

    TR: float
    patterns: tuple[Pattern, ...]
    source: str = ""
    kind: str = "hybrid_state_qmt"

    @property
    def n_samples(self) -> int:
        return sum(p.n_pulses for p in self.patterns)

    @property
    def sha256(self) -> str:
        """Content hash of what is simulated (TR, alpha, TRF, crushed mask), independent of file names."""
        h = hashlib.sha256(f"{self.kind}:{self.TR!r}".encode())
        for p in self.patterns:
            for a in (p.alpha, p.TRF, p.crushed.astype(np.float64)):
                h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        return h.hexdigest()


@dataclass(frozen=True, eq=False)
class FISPSequence:
    """MRF-FISP train (docs/model.md, section 5): flip angles (rad) and repetition times (s) per excitation, echo time
    TE and inversion time TI (s), inversion efficiency eta, and the number of EPG dephasing states simulated."""

    flip_angle: np.ndarray
    TR: np.ndarray
    TE: float
    TI: float = 0.02
    inversion_efficiency: float = 0.95
    epg_states: int = 50
    source: str = ""
    kind: str = "mrf_fisp"

    @property
    def n_samples(self) -> int:
        return int(self.flip_angle.size)

    @property
    def sha256(self) -> str:
        """Content hash of what is simulated (not of the number of EPG states, a numerical setting)."""
        h = hashlib.sha256(f"{self.kind}:{self.TE!r}:{self.TI!r}:{self.inversion_efficiency!r}".encode())
        for a in (self.flip_angle, self.TR):
            h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
        return h.hexdigest()


@lru_cache(maxsize=1)
def _schema() -> dict:
    return yaml.safe_load(resources.files("crbnet").joinpath("schemas/sequence.schema.yaml").read_text())


def load_sequence(path: str | Path) -> QMTSequence | FISPSequence:
    """Read, validate and build the sequence in ``path``; file paths inside resolve relative to it."""
    path = Path(path)
    if not path.is_file():
        raise SequenceError(f"{path}: sequence file not found")
    try:
        spec = yamlfile.load(path.read_text())
    except yaml.YAMLError as err:
        raise SequenceError(f"{path}: malformed YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise SequenceError(f"{path}: expected a mapping with 'kind' and the keys of that kind")
    return sequence_from_dict(spec, base=path.parent, source=str(path))


def sequence_from_dict(spec: dict, base: Path, source: str = "<dict>") -> QMTSequence | FISPSequence:
    """Build a sequence from an already parsed mapping (see the schema for the keys)."""
    bad = [f"{'/'.join(map(str, where))}: {value} is not a finite number"
           for where, value in yamlfile.non_finite(spec)]
    validator = jsonschema.Draft202012Validator(_schema())
    errors = bad or [yamlfile.schema_message(e) for e in sorted(validator.iter_errors(spec),
                                                                 key=lambda e: list(map(str, e.absolute_path)))]
    if errors:
        raise SequenceError(f"{source}: " + "; ".join(errors))
    if spec["kind"] == "mrf_fisp":
        return _fisp(spec, base, source)
    crushed = spec.get("crushed", "auto")
    trains: list[tuple[np.ndarray, np.ndarray]] = []
    for i, entry in enumerate(spec["patterns"]):
        where = f"{source}: patterns/{i}"
        if "file" in entry:
            trains += _read_pattern_file(base / entry["file"], entry.get("rows"), where)
        else:
            try:
                trains.append(parametric_pattern(**entry["parametric"], TR=spec["TR"]))
            except SequenceError as err:
                raise SequenceError(f"{where}: {err}") from None
    patterns = tuple(_pattern(a, t, crushed, spec["TR"], f"{source}: pattern {k}") for k, (a, t) in enumerate(trains))
    return QMTSequence(TR=float(spec["TR"]), patterns=patterns, source=source)


def _pattern(alpha: np.ndarray, TRF: np.ndarray, crushed, TR: float, where: str) -> Pattern:
    if alpha.shape != TRF.shape or alpha.ndim != 1 or alpha.size < 2:
        raise SequenceError(f"{where}: alpha and TRF must be 1-D of equal length >= 2, got {alpha.shape} and {TRF.shape}")
    if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(TRF))):
        raise SequenceError(f"{where}: alpha and TRF must be finite")
    if np.any(alpha < 0) or np.any(alpha > ALPHA_MAX + 1e-9):
        raise SequenceError(f"{where}: alpha must lie in [0, pi] rad (max found {alpha.max():.4g}); degrees given as radians?")
    lo, hi = TRF_RANGE
    if np.any(TRF < lo) or np.any(TRF > hi):
        raise SequenceError(f"{where}: TRF must lie in [{lo:g}, {hi:g}] s (found {TRF.min():.4g} to {TRF.max():.4g}); "
                            "microseconds given as seconds?")
    if np.any(TRF >= TR):
        raise SequenceError(f"{where}: every TRF must be shorter than TR = {TR:g} s")
    mask = np.zeros(alpha.size, dtype=bool)
    if crushed == "auto":
        mask[0] = np.isclose(alpha[0], np.pi, rtol=0, atol=1e-6)
    else:
        idx = np.asarray(crushed, dtype=int) - 1
        if np.any(idx >= alpha.size):
            raise SequenceError(f"{where}: crushed pulse {idx.max() + 1} beyond the {alpha.size} pulses")
        mask[idx] = True
    return Pattern(alpha=alpha.astype(np.float64), TRF=TRF.astype(np.float64), crushed=mask)


def _read_pattern_file(path: Path, rows: list[int] | None, where: str) -> list[tuple[np.ndarray, np.ndarray]]:
    if not path.is_file():
        raise SequenceError(f"{where}: pattern file {path} not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".mat", ".h5", ".hdf5"):
            with h5py.File(path, "r") as f:
                arrays = {k: np.array(f[k], dtype=np.float64) for k in ("alpha", "TRF") if k in f}
        elif suffix == ".npz":
            with np.load(path) as f:
                arrays = {k: np.array(f[k], dtype=np.float64) for k in ("alpha", "TRF") if k in f}
        elif suffix == ".csv":
            table = pd.read_csv(path)
            arrays = {k: table[k].to_numpy(np.float64) for k in ("alpha", "TRF") if k in table}
        else:
            raise SequenceError(f"{where}: unsupported pattern file type '{suffix}' (.mat, .h5, .hdf5, .npz, .csv)")
    except (OSError, ValueError) as err:
        if isinstance(err, SequenceError):
            raise
        raise SequenceError(f"{where}: cannot read {path} ({err})") from None
    missing = {"alpha", "TRF"} - set(arrays)
    if missing:
        raise SequenceError(f"{where}: {path.name} lacks {' and '.join(sorted(missing))}")
    alpha, TRF = np.atleast_2d(arrays["alpha"].squeeze()), np.atleast_2d(arrays["TRF"].squeeze())
    if alpha.shape != TRF.shape:
        raise SequenceError(f"{where}: alpha {alpha.shape} and TRF {TRF.shape} differ in shape")
    if alpha.ndim != 2:
        raise SequenceError(f"{where}: alpha must be (N,) or (k, N), got {alpha.shape}")
    if rows is not None:
        if max(rows) >= alpha.shape[0]:
            raise SequenceError(f"{where}: rows {rows} but the file holds {alpha.shape[0]} pattern(s)")
        alpha, TRF = alpha[rows], TRF[rows]
    return [(a, t) for a, t in zip(alpha, TRF)]


def parametric_pattern(n_pulses: int, alpha_deg: list, TRF_us: list, TR: float, inversion: bool = True,
                       ramp_deg: list | None = None, TRF_raster_us: float = 2.8) -> tuple[np.ndarray, np.ndarray]:
    """The project's pattern definition: PCHIP through (time, value) knots, an optional 180 deg 500 us inversion
    as pulse 1 and a flip-angle ramp after it that is mirrored at the end of the pattern. Returns (alpha, TRF)."""
    t = np.arange(n_pulses) * TR
    knots_a, knots_t = np.asarray(alpha_deg, float), np.asarray(TRF_us, float)
    for name, k in (("alpha_deg", knots_a), ("TRF_us", knots_t)):
        if np.any(np.diff(k[:, 0]) <= 0):
            raise SequenceError(f"parametric {name}: knot times must increase strictly")
    alpha = PchipInterpolator(knots_a[:, 0], knots_a[:, 1], extrapolate=True)(t)
    TRF = PchipInterpolator(knots_t[:, 0], knots_t[:, 1], extrapolate=True)(t)
    TRF = np.round(TRF / TRF_raster_us) * TRF_raster_us * 1e-6
    ramp = np.asarray(ramp_deg or [], float)
    first = 1 if inversion else 0
    if first + 2 * ramp.size > n_pulses:
        raise SequenceError("parametric: the ramp does not fit into n_pulses")
    alpha[first : first + ramp.size] = ramp
    if ramp.size:
        alpha[n_pulses - ramp.size :] = ramp[::-1]
    if inversion:
        alpha[0], TRF[0] = 180.0, 500e-6
    return np.deg2rad(alpha), TRF


_UNITS = {"rad": 1.0, "deg": np.pi / 180, "s": 1.0, "ms": 1e-3}


def _series(entry, base: Path, where: str) -> np.ndarray | None:
    """A list, a number or a text file (``{file, unit}``) as a float array; None for a parametric entry."""
    if isinstance(entry, int | float):
        return np.asarray([float(entry)])
    if isinstance(entry, list):
        return np.asarray(entry, dtype=np.float64)
    if "file" not in entry:
        return None
    path = base / entry["file"]
    if not path.is_file():
        raise SequenceError(f"{where}: file {path} not found")
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except ValueError as err:
        raise SequenceError(f"{where}: cannot read {path} ({err})") from None
    return values * _UNITS[entry.get("unit", "rad" if where.endswith("flip_angle") else "s")]


def fisp_lobes(amplitudes_deg: list, base_deg: float = 5.0, length: int = 190, gap: int = 10) -> np.ndarray:
    """The project's MRF-FISP flip angles (rad): half-sine lobes ``base + (A - base) sin(pi n / (length + 1))``,
    each followed by ``gap`` pulses of 0 deg (after Jiang et al. 2015, facts only)."""
    n = np.arange(1, length + 1)
    lobes = [np.r_[base_deg + (a - base_deg) * np.sin(np.pi * n / (length + 1)), np.zeros(gap)] for a in amplitudes_deg]
    return np.deg2rad(np.concatenate(lobes))


def fisp_smooth_tr(n: int, lower: float, upper: float) -> np.ndarray:
    """A smooth, deterministic, noise-like TR series (s) spanning [lower, upper]."""
    k = np.arange(n)
    wave = np.sin(2 * np.pi * k / 223.0) * np.cos(2 * np.pi * k / 97.0 + 0.7) + 0.35 * np.sin(2 * np.pi * k / 61.0)
    wave = (wave - wave.min()) / (wave.max() - wave.min())
    return lower + (upper - lower) * wave


def _fisp(spec: dict, base: Path, source: str) -> FISPSequence:
    alpha = _series(spec["flip_angle"], base, f"{source}: flip_angle")
    if alpha is None:
        alpha = fisp_lobes(**spec["flip_angle"]["lobes"])
    TR = _series(spec["TR"], base, f"{source}: TR")
    if TR is None:
        TR = fisp_smooth_tr(alpha.size, **spec["TR"]["smooth"])
    elif TR.size == 1:
        TR = np.full(alpha.size, TR[0])
    TE = float(spec["TE"])
    if TR.size != alpha.size:
        raise SequenceError(f"{source}: {alpha.size} flip angles but {TR.size} repetition times")
    if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(TR))):
        raise SequenceError(f"{source}: flip angles and TRs must be finite")
    if np.any(alpha < 0) or np.any(alpha > ALPHA_MAX + 1e-9):
        raise SequenceError(f"{source}: flip angles must lie in [0, pi] rad (max {alpha.max():.4g}); degrees without "
                            "'unit: deg'?")
    if np.any(TR <= TE) or TR.max() > 1.0:
        raise SequenceError(f"{source}: every TR must exceed TE = {TE:g} s and stay below 1 s (found {TR.min():.4g} to "
                            f"{TR.max():.4g}); milliseconds without 'unit: ms'?")
    return FISPSequence(alpha, TR, TE, float(spec.get("TI", 0.02)), float(spec.get("inversion_efficiency", 0.95)),
                        int(spec.get("epg_states", 50)), source)
