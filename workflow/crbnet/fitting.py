"""Non-linear least squares (NLLS): batched Levenberg-Marquardt on the full signal model in the SVD subspace.

Every voxel is fitted at once in a batch: the residual of coefficients y (r complex) against M0 U^H s(theta) is
minimized over the real and imaginary part of M0 and the parameters theta, with exact Jacobians from the signal_model, a
damping factor per voxel (divided by 10 after a step that lowers the cost, multiplied by 10 otherwise), box bounds
(the prior's range) and M0 re-solved in closed form, M0 = <c, y> / ||c||^2, after every step (variable projection).
"""

from __future__ import annotations

import logging
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from crbnet.basis import Basis
from crbnet.devices import check_options
from crbnet.parameters import ParameterSpace, in_range, parameter
from crbnet.sequences import load_sequence
from crbnet.signals import signal_model_for

logger = logging.getLogger(__name__)



class NLLSEstimator:
    """NLLS, a ``crbnet.estimator.Estimator``.

    ``free`` are the parameters varied (default: all of the model's parameterization), the others stay at the prior
    means of ``space``; ``names`` those reported. Starting values come from ``init`` (an estimator whose outputs
    seed the parameters it names, e.g. a trained network) or the prior means; ``candidates`` {name: values} are
    tried for parameters that ``init`` does not give, every combination, and each voxel starts from the one whose
    model fits its data best (signals only, M0 in closed form). At most ``iterations`` steps; a voxel stops early
    once a step lowers its cost by less than the fraction ``ftol``."""

    def __init__(self, signal_model, basis: Basis, space: ParameterSpace, names: Sequence[str],
                 free: Sequence[str] | None = None, init=None, iterations: int = 20, batch: int | None = None,
                 ftol: float = 1e-8, candidates: Mapping[str, Sequence[float]] | None = None) -> None:
        self.signal_model, self.basis, self.space, self.init = signal_model, basis, space, init
        self.names = tuple(names)
        self.units = tuple(parameter(n).unit for n in self.names)
        self.free = tuple(free or signal_model.parameterization.names)
        missing = [n for n in self.names if n not in signal_model.parameterization.names]
        if missing:
            raise ValueError(f"cannot report {', '.join(missing)}: not in {signal_model.parameterization.name}")
        self.iterations, self.ftol = iterations, ftol
        self.candidates = {k: np.asarray(v, dtype=np.float64) for k, v in (candidates or {}).items()}
        unknown = sorted(set(self.candidates) - set(signal_model.parameterization.names))
        if unknown:
            raise ValueError(f"candidates for {', '.join(unknown)}: not in {signal_model.parameterization.name}")
        self.batch = batch or max(1, signal_model.chunk_entries // (1 + len(self.free)))  # voxels fitted together
        bounds = space.ranges
        self.lower, self.upper = (torch.tensor([bounds.get(k, (-np.inf, np.inf))[i] for k in self.free],
                                               dtype=torch.float64, device=signal_model.device) for i in (0, 1))
        self._U_conj = torch.as_tensor(basis.U, dtype=torch.complex128, device=signal_model.device).conj().resolve_conj()

    def start(self, data: np.ndarray, **options: object) -> dict[str, np.ndarray]:
        """Starting values of every parameter for voxel data (n, r): ``init``'s estimates (``predict`` with
        ``options``) where it has them, else
        the prior means, which also start every voxel whose ``init`` estimate is NaN or outside its range
        (``crbnet.parameters.in_range``); clipped into the bounds."""
        centre = self.space.centre()
        values = {k: np.full(len(data), centre[k]) for k in self.signal_model.parameterization.names}
        if self.init is not None:
            estimates = self.init.predict(data, **options)
            given = {k: estimates[:, i] for i, k in enumerate(self.init.names) if k in values}
            ok = in_range(given)
            if not ok.all():
                logger.warning("NLLS: %d of %d starting estimates outside their range or NaN: those voxels start "
                               "from the prior means", (~ok).sum(), len(ok))
            values |= {k: np.where(ok, v, values[k]) for k, v in given.items()}
        for i, k in enumerate(self.free):
            values[k] = np.clip(values[k], self.lower[i].item(), self.upper[i].item())
        searched = [k for k in self.candidates if self.init is None or k not in self.init.names]
        return self._best_candidates(data, values, searched) if searched else values

    def _best_candidates(self, data: np.ndarray, values: dict[str, np.ndarray], searched: list[str]
                         ) -> dict[str, np.ndarray]:
        """``values`` with the ``searched`` parameters set, per voxel, to the combination of candidates whose
        coefficients fit the data with the least cost."""
        device = self.signal_model.device
        y_all = torch.as_tensor(self.basis.as_coefficients(np.asarray(data)), dtype=torch.complex128, device=device)
        out = {k: v.copy() for k, v in values.items()}
        combos = list(itertools.product(*(self.candidates[k] for k in searched)))
        for i in range(0, len(y_all), self.batch):
            rows = slice(i, i + self.batch)
            y = y_all[rows]
            base = {k: torch.as_tensor(v[rows], dtype=torch.float64, device=device) for k, v in values.items()}
            best = torch.full((len(y),), torch.inf, dtype=torch.float64, device=device)
            pick = torch.zeros(len(y), dtype=torch.long, device=device)
            for j, combo in enumerate(combos):
                trial = base | {k: torch.full_like(best, c) for k, c in zip(searched, combo)}
                c, _ = self._coefficients(trial, torch.stack([trial[k] for k in self.free], dim=1), False)
                cost = ((y - self._m0(c, y)[:, None] * c).abs() ** 2).sum(1)
                better = cost < best
                best, pick = torch.where(better, cost, best), torch.where(better, j, pick)
            chosen = np.asarray(combos)[pick.cpu().numpy()]
            for m, k in enumerate(searched):
                out[k][rows] = chosen[:, m]
        return out

    def _coefficients(self, values: dict[str, torch.Tensor], theta: torch.Tensor, jacobian: bool
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Model coefficients c (b, r) at M0 = 1 and their derivatives (b, r, P) w.r.t. the fitted parameters."""
        v = values | {k: theta[:, i] for i, k in enumerate(self.free)}
        s, j = self.signal_model.simulate(v, self.free if jacobian else ())
        c = s.to(torch.complex128) @ self._U_conj
        d = (j.to(torch.complex128).mT @ self._U_conj).mT if jacobian else None
        return c, d

    @staticmethod
    def _m0(c: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (c.conj() * y).sum(1) / (c.abs() ** 2).sum(1).clamp_min(1e-300)

    @staticmethod
    def _step(y: torch.Tensor, c: torch.Tensor, d: torch.Tensor, M0: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
        """Damped Gauss-Newton step in (Re M0, Im M0, theta), (b, 2 + P)."""
        A = torch.cat([c[..., None], 1j * c[..., None], M0[:, None, None] * d], dim=2)  # (b, r, 2 + P)
        J = torch.cat([A.real, A.imag], dim=1)
        res = y - M0[:, None] * c
        g = torch.einsum("bkp,bk->bp", J, torch.cat([res.real, res.imag], dim=1))
        H = J.transpose(1, 2) @ J
        diag = H.diagonal(dim1=1, dim2=2).clamp_min(1e-300)
        return torch.linalg.solve(H + torch.diag_embed(lam[:, None] * diag), g[..., None])[..., 0]

    def _fit_batch(self, y: torch.Tensor, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fitted parameters (b, P). Only voxels still converging are computed: a voxel stops once a step lowers its
        cost by less than ``ftol`` relative, and the Jacobian is recomputed only where a step was taken and another
        step follows (``iterations`` steps cost at most ``iterations`` Jacobians per voxel)."""
        theta = torch.stack([values[k] for k in self.free], dim=1)
        if not self.iterations:
            return theta
        lam = torch.full((len(y),), 1e-3, dtype=torch.float64, device=y.device)
        c, d = self._coefficients(values, theta, True)
        M0 = self._m0(c, y)
        cost = ((y - M0[:, None] * c).abs() ** 2).sum(1)
        active = torch.arange(len(y), device=y.device)
        for iteration in range(self.iterations):
            if not len(active):
                break
            a = active
            step = self._step(y[a], c[a], d[a], M0[a], lam[a])
            trial = torch.minimum(torch.maximum(theta[a] + step[:, 2:], self.lower), self.upper)
            c_trial, _ = self._coefficients({k: v[a] for k, v in values.items()}, trial, False)
            cost_trial = ((y[a] - self._m0(c_trial, y[a])[:, None] * c_trial).abs() ** 2).sum(1)
            better = cost_trial < cost[a]
            done = better & (cost[a] - cost_trial <= self.ftol * cost[a])
            lam[a] = torch.where(better, (lam[a] / 10).clamp_min(1e-9), (lam[a] * 10).clamp_max(1e9))
            moved = a[better]
            theta[moved], cost[moved] = trial[better], cost_trial[better]
            if len(moved) and iteration + 1 < self.iterations:
                c[moved], d[moved] = self._coefficients({k: v[moved] for k, v in values.items()}, theta[moved], True)
                M0[moved] = self._m0(c[moved], y[moved])
            active = a[~done]
        return theta

    def predict(self, data: np.ndarray, *, batch: int | None = None, precision: str = "fp32",
                device: torch.device | str = "cpu") -> np.ndarray:
        """Fitted parameters (n, len(names)) from complex coefficients (n, r) or fingerprints (n, Ns) (NaN for rows
        with NaN or inf values). The fit runs
        on the signal model's device, ``batch`` voxels at a time (default: the constructor's); ``precision`` and
        ``device`` are the ``init`` estimator's (checked here, as every estimator checks them)."""
        check_options(precision, device)
        device_fit = self.signal_model.device
        batch = batch or self.batch
        coefficients = self.basis.as_coefficients(np.asarray(data))
        finite = np.isfinite(coefficients).all(axis=1)
        out = np.full((len(coefficients), len(self.names)), np.nan)  # rows with NaN or inf data: NaN
        if not finite.all():
            out[finite] = self.predict(coefficients[finite], batch=batch, precision=precision, device=device)
            return out
        y_all = torch.as_tensor(coefficients, dtype=torch.complex128, device=device_fit)
        start = self.start(coefficients, precision=precision, device=device)
        for i in range(0, len(y_all), batch):
            rows = slice(i, i + batch)
            values = {k: torch.as_tensor(v[rows], dtype=torch.float64, device=device_fit) for k, v in start.items()}
            theta = self._fit_batch(y_all[rows], values)
            fitted = values | {k: theta[:, j] for j, k in enumerate(self.free)}
            out[rows] = torch.stack([fitted[k] for k in self.names], dim=1).cpu().numpy()
        return out


def spread_candidates(space: ParameterSpace, counts: Mapping[str, int]) -> dict[str, np.ndarray]:
    """{name: the centres of ``counts[name]`` equal bins of the prior's range}: starting candidates that leave no
    value further than half a bin from one (omega0 over +-2 pi/TR: 8 bins put every value within pi/(4 TR))."""
    unknown = sorted(set(counts) - set(space.priors))
    if unknown:
        raise ValueError(f"candidates for {', '.join(unknown)}: no prior with a range in the parameter space")
    out = {}
    for name, n in counts.items():
        if n < 1:
            raise ValueError(f"candidates for {name}: need at least 1, got {n}")
        lo, hi = space.ranges[name]
        out[name] = lo + (np.arange(n) + 0.5) * (hi - lo) / n
    return out


class RefinedEstimator(NLLSEstimator):
    """Any estimator's estimates refined by at most ``steps`` damped Gauss-Newton (Levenberg-Marquardt) steps of the
    full model on the coefficients the start saw: every parameter of the parameterization free within the prior's
    range, complex M0 in closed form. The start gives the parameters it names; the others start from the best of
    their ``candidates`` (e.g. omega0 over its range) or the prior means. Reports the start's parameters; costs
    at most ``steps`` Jacobians per voxel (one at the start, one after each accepted step but the last) and a signal
    per trial step and candidate."""

    def __init__(self, start, signal_model, space: ParameterSpace, steps: int = 2,
                 candidates: Mapping[str, Sequence[float]] | None = None, batch: int | None = None) -> None:
        super().__init__(signal_model, start.basis, space, start.names, init=start, iterations=steps, batch=batch,
                         candidates=candidates)

    @property
    def steps(self) -> int:
        """At most this many Gauss-Newton steps (the NLLS iterations)."""
        return self.iterations


def refined_from_config(start, sequence_path: str | Path, space: ParameterSpace, config: Mapping,
                        device: torch.device) -> RefinedEstimator:
    """The workflow's refined estimator: ``config`` is an experiment's ``refined`` mapping (steps, candidates)."""
    sequence = load_sequence(sequence_path)
    return RefinedEstimator(start, signal_model_for(sequence, space.parameterization, device), space,
                            config["steps"], spread_candidates(space, config["candidates"]))
