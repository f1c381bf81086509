"""Tissue/system parameters: names, units, hard ranges, parameterizations, priors and seeded sampling.

Canonical parameters of the hybrid-state qMT model (docs/model.md, section 1): ``m0s, R1f, R2f, Rx, R1s, T2s,
omega0, B1`` plus the complex scale ``M0`` (handled by the CRB, never simulated). The CRB paper's apparent-T1
parameterization replaces ``R1f, R1s`` by one ``T1`` (R1f = R1s = 1/T1) and ``R2f`` by ``T2f = 1/R2f``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats

if TYPE_CHECKING:  # the maps work on any array type; torch is not needed to name parameters (plotting)
    import torch


class ParameterError(ValueError):
    """Unknown parameter name, bad value, or inconsistent parameter specification."""


@dataclass(frozen=True)
class Parameter:
    """One scalar parameter with its unit and the hard range (inclusive unless ``open_lower``) the model accepts."""

    name: str
    unit: str
    description: str
    lower: float
    upper: float
    open_lower: bool = False


_ALL = {
    p.name: p
    for p in [
        Parameter("m0s", "1", "semi-solid pool fraction m0s/(m0s + m0f)", 0.0, 0.99),
        Parameter("R1f", "1/s", "longitudinal relaxation rate of the free pool", 0.0, 100.0, open_lower=True),
        Parameter("R2f", "1/s", "transverse relaxation rate of the free pool", 0.0, 1e4, open_lower=True),
        Parameter("Rx", "1/s", "exchange rate between the pools (kf = Rx m0s, kr = Rx m0f)", 0.0, 1e3),
        Parameter("R1s", "1/s", "longitudinal relaxation rate of the semi-solid pool", 0.0, 100.0, open_lower=True),
        Parameter("T2s", "s", "transverse relaxation time of the semi-solid pool", 1e-6, 1e-4),
        Parameter("omega0", "rad/s", "off-resonance frequency of the free pool (B0)", -1e5, 1e5),
        Parameter("B1", "1", "relative transmit field (1 = nominal)", 0.0, 3.0, open_lower=True),
        Parameter("T1", "s", "apparent longitudinal relaxation time of both pools", 0.0, 100.0, open_lower=True),
        Parameter("T2f", "s", "transverse relaxation time of the free pool", 1e-4, 10.0),
        Parameter("T2", "s", "transverse relaxation time (single-pool MRF-FISP model)", 1e-4, 10.0),
    ]
}

CANONICAL = ("m0s", "R1f", "R2f", "Rx", "R1s", "T2s", "omega0", "B1")

# Typical white matter (Mao's canonical values, docs/model.md section 2) and cortical grey matter, canonical form.
WHITE_MATTER = {"m0s": 0.2, "R1f": 1 / 1.92, "R2f": 1 / 77.6e-3, "Rx": 16.5, "R1s": 1 / 0.337, "T2s": 12.4e-6,
                "omega0": 0.0, "B1": 1.0}
GREY_MATTER = {"m0s": 0.098, "R1f": 1 / 2.46, "R2f": 1 / 83e-3, "Rx": 14.0, "R1s": 1 / 0.42, "T2s": 14.4e-6,
               "omega0": 0.0, "B1": 1.0}


def parameter(name: str) -> Parameter:
    """The Parameter called ``name``; ParameterError naming the known ones otherwise."""
    try:
        return _ALL[name]
    except KeyError:
        raise ParameterError(f"unknown parameter '{name}' (known: {', '.join(_ALL)})") from None


@dataclass(frozen=True)
class Parameterization:
    """A set of named parameters and their map to the canonical ones (differentiable torch ops)."""

    name: str
    names: tuple[str, ...]
    defaults: Mapping[str, float] = field(hash=False)

    def units(self) -> list[str]:
        return [parameter(n).unit for n in self.names]

    def to_canonical(self, values: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Canonical parameters from values given in this parameterization."""
        if self.name == "canonical":
            return {n: values[n] for n in CANONICAL}
        out = {n: values[n] for n in ("m0s", "Rx", "T2s", "omega0", "B1")}
        out["R1f"] = out["R1s"] = 1.0 / values["T1"]
        out["R2f"] = 1.0 / values["T2f"]
        return {n: out[n] for n in CANONICAL}

    def complete(self, given: Mapping[str, float]) -> dict[str, float]:
        """Fill unset parameters with the documented defaults; reject names of other parameterizations."""
        for name in given:
            parameter(name)
            if name not in self.names:
                raise ParameterError(f"parameter '{name}' is not part of the {self.name} parameterization "
                                     f"({', '.join(self.names)})")
        values = {**self.defaults, **given}
        validate(values)
        return {n: float(values[n]) for n in self.names}


PARAMETERIZATIONS = {
    "canonical": Parameterization("canonical", CANONICAL, WHITE_MATTER),
    "apparent_t1": Parameterization(
        "apparent_t1",
        ("m0s", "T1", "T2f", "Rx", "T2s", "omega0", "B1"),
        # Zhang 2022 training-prior means, with T2s in the middle of its range
        {"m0s": 0.12, "T1": 1.6, "T2f": 0.1, "Rx": 44.0, "T2s": 12e-6, "omega0": 0.0, "B1": 1.0},
    ),
    # single-pool MRF-FISP (docs/model.md, section 5); defaults: white matter at 3 T
    "fisp": Parameterization("fisp", ("T1", "T2", "B1"), {"T1": 0.85, "T2": 0.05, "B1": 1.0}),
}


def get_parameterization(name: str) -> Parameterization:
    try:
        return PARAMETERIZATIONS[name]
    except KeyError:
        raise ParameterError(f"unknown parameterization '{name}' (known: {', '.join(PARAMETERIZATIONS)})") from None


def infer_parameterization(names: list[str]) -> Parameterization:
    """The parameterization that holds all ``names``: apparent_t1 if T1 or T2f appear, else canonical."""
    for name in names:
        parameter(name)
    if any(n in ("T1", "T2f") for n in names):
        clash = [n for n in names if n in ("R1f", "R1s", "R2f")]
        if clash:
            raise ParameterError(f"'{clash[0]}' cannot be combined with T1/T2f (apparent_t1 parameterization)")
        return PARAMETERIZATIONS["apparent_t1"]
    return PARAMETERIZATIONS["canonical"]


def _outside(p: Parameter, v: np.ndarray) -> np.ndarray:
    """Where ``v`` is non-finite or outside ``p``'s hard range (elementwise)."""
    with np.errstate(invalid="ignore"):
        low = v <= p.lower if p.open_lower else v < p.lower
        return ~np.isfinite(v) | low | (v > p.upper)


def validate(values: Mapping[str, float | np.ndarray]) -> None:
    """Raise ParameterError if any value is non-finite or outside its parameter's hard range."""
    for name, value in values.items():
        p = parameter(name)
        v = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ParameterError(f"{name} must be finite")
        bad = _outside(p, v)
        if np.any(bad):
            bound = "(" if p.open_lower else "["
            raise ParameterError(f"{name}={v[bad].flat[0]:g} {p.unit} is outside {bound}{p.lower:g}, {p.upper:g}]")


def in_range(values: Mapping[str, np.ndarray]) -> np.ndarray:
    """Rows (n,) whose values are all finite and inside their parameters' hard ranges, where the signal model and
    its CRB are defined.

    This is the project's one rule for estimates: they are reported as the estimator returned them, never clipped
    (an unconstrained network may return a negative m0s); a row outside this set has no bound (NaN sqrt(CRB)), is
    counted as ``n_out_of_range`` in logs and tables, and NLLS starts such a voxel from the prior means."""
    rows = [~_outside(parameter(k), np.atleast_1d(np.asarray(v, dtype=np.float64))) for k, v in values.items()]
    return np.logical_and.reduce(rows)


def out_of_range_count(estimates: np.ndarray, names: Sequence[str]) -> int:
    """Rows of ``estimates`` (..., Pe) with a NaN or a value outside its parameter's range (``in_range``)."""
    flat = np.asarray(estimates, dtype=np.float64).reshape(-1, len(names))
    return int((~in_range({k: flat[:, i] for i, k in enumerate(names)})).sum())


# ---------------------------------------------------------------------------------------------- priors
@dataclass(frozen=True)
class Prior:
    """Truncated-normal or uniform marginal of one parameter."""

    dist: str  # "truncnorm" | "uniform"
    lower: float
    upper: float
    mean: float = math.nan
    std: float = math.nan

    @property
    def scale(self) -> float:
        """The prior's width, in the parameter's unit: ``std`` of a truncated normal (before truncation), the
        standard deviation (upper - lower) / sqrt(12) of a uniform."""
        return self.std if self.dist == "truncnorm" else (self.upper - self.lower) / math.sqrt(12)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.dist == "uniform":
            return rng.uniform(self.lower, self.upper, n)
        a, b = (self.lower - self.mean) / self.std, (self.upper - self.mean) / self.std
        return stats.truncnorm.rvs(a, b, loc=self.mean, scale=self.std, size=n, random_state=rng)


_CONSTRAINT = re.compile(r"^\s*(\w+)\s*(<=|<|>=|>)\s*(\w+)\s*$")


@dataclass(frozen=True)
class ParameterSpace:
    """Independent marginals per parameter, fixed values, and pairwise constraints such as ``T2f <= T1``."""

    parameterization: Parameterization
    priors: Mapping[str, Prior] = field(hash=False)
    fixed: Mapping[str, float] = field(hash=False)
    constraints: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, cfg: Mapping) -> ParameterSpace:
        """Build from a config mapping ``{parameterization, parameters: {name: number | {dist, ...}}, constraints}``."""
        pz = get_parameterization(cfg.get("parameterization", "canonical"))
        priors, fixed = {}, {}
        for name, spec in cfg["parameters"].items():
            if name not in pz.names:
                parameter(name)
                raise ParameterError(f"prior for '{name}', which is not in the {pz.name} parameterization")
            if isinstance(spec, int | float):
                fixed[name] = float(spec)
                continue
            prior = Prior(**spec)
            if prior.dist not in ("uniform", "truncnorm") or not prior.lower < prior.upper:
                raise ParameterError(f"prior of {name}: need dist uniform|truncnorm and lower < upper")
            if prior.dist == "truncnorm" and not prior.std > 0:
                raise ParameterError(f"prior of {name}: truncnorm needs mean and std > 0")
            validate({name: np.array([prior.lower, prior.upper])})
            priors[name] = prior
        validate(fixed)
        missing = set(pz.names) - set(priors) - set(fixed)
        if missing:
            raise ParameterError(f"parameter space lacks {', '.join(sorted(missing))}")
        space = cls(pz, priors, fixed, tuple(cfg.get("constraints", ())))
        for c in space.constraints:
            space._parse(c)
        return space

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """{name: (lower, upper)} of every parameter with a prior: where NLLS and the refined estimator stop."""
        return {k: (p.lower, p.upper) for k, p in self.priors.items()}

    def _parse(self, constraint: str) -> tuple[str, str, str]:
        m = _CONSTRAINT.match(constraint)
        if not m or m[1] not in self.parameterization.names or m[3] not in self.parameterization.names:
            raise ParameterError(f"constraint '{constraint}' must read 'NAME <=|<|>=|> NAME' with names of "
                                 f"{self.parameterization.name}")
        return m[1], m[2], m[3]

    def satisfied(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """Boolean mask of the rows of ``values`` that meet every constraint."""
        ok = np.ones(len(next(iter(values.values()))), dtype=bool)
        ops = {"<=": np.less_equal, "<": np.less, ">=": np.greater_equal, ">": np.greater}
        for c in self.constraints:
            a, op, b = self._parse(c)
            ok &= ops[op](values[a], values[b])
        return ok

    def sample(self, n: int, seed: int) -> dict[str, np.ndarray]:
        """n samples (float64) by rejection on the constraints; deterministic for a given seed, whatever the order of
        the priors in the config (they draw in alphabetical order of their names)."""
        rng = np.random.default_rng(seed)
        out: dict[str, list[np.ndarray]] = {k: [] for k in self.parameterization.names}
        have = 0
        for _ in range(1000):
            draw = {k: self.priors[k].sample(rng, n) for k in sorted(self.priors)}
            draw |= {k: np.full(n, v) for k, v in self.fixed.items()}
            keep = self.satisfied(draw)
            for k in out:
                out[k].append(draw[k][keep])
            have += int(keep.sum())
            if have >= n:
                return {k: np.concatenate(v)[:n] for k, v in out.items()}
        raise ParameterError("constraints reject almost every sample of the prior")

    def centre(self) -> dict[str, float]:
        """Prior means (uniform priors: the centre of their range) and the fixed values."""
        centre = {k: (p.mean if p.dist == "truncnorm" else 0.5 * (p.lower + p.upper)) for k, p in self.priors.items()}
        return centre | dict(self.fixed)

    def point(self, values: Mapping[str, float]) -> dict[str, np.ndarray]:
        """One fingerprint: ``values`` (any parameters of the parameterization), the others at the prior means."""
        unknown = [k for k in values if k not in self.parameterization.names]
        if unknown:
            raise ParameterError(f"'{unknown[0]}' is not in the {self.parameterization.name} parameterization")
        out = {k: np.array([float(values.get(k, v))]) for k, v in self.centre().items()}
        validate(out)
        return {k: out[k] for k in self.parameterization.names}

    def grid(self, axes: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A regular grid over ``axes`` (meshgrid, 'ij' order, flattened) with the others at their prior means."""
        centre = self.centre()
        mesh = np.meshgrid(*[np.asarray(a, dtype=np.float64) for a in axes.values()], indexing="ij")
        out = {k: np.full(mesh[0].size, v) for k, v in centre.items()}
        out |= {k: m.ravel() for k, m in zip(axes, mesh)}
        validate(out)
        return {k: out[k] for k in self.parameterization.names}
