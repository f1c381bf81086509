"""CRB-optimal design of hybrid-state qMT patterns (``crbnet design``).

The flip angles alpha (rad) and pulse durations TRF (s) of every non-crushed pulse are optimized by gradient descent
(Adam) on the sum over tissues of the CRBs of the estimated parameters relative to their values squared, every
parameter of the parameterization and the complex M0 unknown (noise sigma = 1; the argmin does not depend on it).
Over draws from a training prior the cost is the mean over the draws of the summed log CRBs (``DesignProblem.cost``):
finite where a value is near 0 (m0s of CSF-like draws), and not decided by a few barely identifiable corners of the
prior as a sum would be. The CRBs are reported relative to the prior's scale squared (``scales``), which shifts the log
cost by a constant and leaves the optimum alone. With ``rank``, the CRBs are those of the rank-r SVD coefficients the
networks see, the basis computed from the signals of ``basis_values`` under the current pattern (differentiable
through the SVD): a pattern whose fingerprints do not compress is penalized by its own bound.
Gradients come from autograd through the exact Jacobian of the torch signal model (crbnet.signals.qmt.pattern_signal).

Constraints, by construction: alpha = pi * sigmoid(u) lies in (0, pi); TRF = lo + (hi - lo) * sigmoid(v) lies inside
the hardware window (default: the published control's, 217.4 to 500 us); u and v are piecewise linear between knots
every ``knot_spacing`` pulses (smooth patterns, few unknowns); TR and the crushed pulses (the inversion) stay as in the
start. The RF energy sum(alpha^2 / TRF) is kept at or below a limit (default: the start's) by a quadratic penalty and,
at the end, an exact rescaling of the free flip angles.
"""

from __future__ import annotations

import logging
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from crbnet.crb import unit_crb
from crbnet.io.atomic import atomic_hdf5, atomic_path
from crbnet.parameters import ParameterError, Parameterization, parameter
from crbnet.runtime import progress as progress_bar
from crbnet.sequences import Pattern, QMTSequence
from crbnet.signals.qmt import pattern_signal

logger = logging.getLogger(__name__)

TRF_WINDOW = (217.4e-6, 500e-6)  # s: the published control's shortest and longest pulse (Zhang 2022)
# White and grey matter of the CRB paper (config/config.yaml, brain phantom); the others at the parameterization's
# defaults.
TISSUES = {
    "white_matter": {"m0s": 0.212, "T1": 0.95, "T2f": 0.0769, "Rx": 13.6, "T2s": 12.5e-6},
    "grey_matter": {"m0s": 0.098, "T1": 1.55, "T2f": 0.083, "Rx": 14.0, "T2s": 14.4e-6},
}


class DesignError(ValueError):
    """A design problem that cannot be posed (a FISP sequence, impossible constraints)."""


def hat_basis(n: int, spacing: int) -> torch.Tensor:
    """Linear interpolation (n, K) from knots every ``spacing`` samples (the last sample is a knot too)."""
    knots = np.unique(np.append(np.arange(0, n, spacing), n - 1))
    basis = np.zeros((n, len(knots)))
    for k, (a, b) in enumerate(zip(knots[:-1], knots[1:])):
        t = (np.arange(a, b + 1) - a) / (b - a)
        basis[a: b + 1, k] = np.maximum(basis[a: b + 1, k], 1 - t)
        basis[a: b + 1, k + 1] = np.maximum(basis[a: b + 1, k + 1], t)
    return torch.as_tensor(basis)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


def rf_energy(alpha: torch.Tensor, TRF: torch.Tensor) -> torch.Tensor:
    """sum(alpha^2 / TRF) (rad^2/s), proportional to the RF energy of rectangular pulses."""
    return (alpha**2 / TRF).sum()


class _PhaseFree(torch.autograd.Function):
    """Identity on complex singular vectors U whose use does not depend on their phases (the coefficient CRB sees
    the basis only through U U^H). Its backward drops the component of the incoming gradient along those phases,
    Im diag(U^H g), which is zero for such a use but for round-off. torch's SVD backward refuses a gradient whose
    phase component exceeds 1e-2 in absolute terms, which the cost's round-off reaches once the cost is large
    (0.025 at a cost of 9e7: tests/test_design.py)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(u)
        return u.view_as(u)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (u,) = ctx.saved_tensors
        return grad - 1j * u * (u.conj() * grad).sum(0).imag


@dataclass
class DesignProblem:
    """What to optimize: the start sequence, the tissues (name -> every parameter of ``parameterization``, SI
    units), the estimated parameters whose relative CRBs are summed, the knot spacing (pulses), the TRF window (s)
    and the RF energy limit (None: the start's); the physics runs on ``device``. ``scales`` (estimated parameter ->
    SI value, e.g. a prior's ``Prior.scale``): the tissues are prior draws, ``cost`` averages their log CRBs and the
    CRBs are reported relative to scale^2 instead of value^2. ``rank`` with ``basis_values`` (parameter rows, SI
    units): the CRBs of the rank-r coefficients in the basis of those rows' signals."""

    start: QMTSequence
    parameterization: Parameterization
    tissues: Mapping[str, Mapping[str, float]]
    estimate: tuple[str, ...]
    knot_spacing: int = 8
    trf_window: tuple[float, float] = TRF_WINDOW
    energy_limit: float | None = None
    device: torch.device = torch.device("cpu")
    scales: Mapping[str, float] | None = None
    rank: int | None = None
    basis_values: Mapping[str, np.ndarray] | None = None
    _bases: list[torch.Tensor] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.start, QMTSequence):
            raise DesignError("sequence design needs a hybrid-state qMT sequence (kind: hybrid_state_qmt)")
        unknown = [n for n in self.estimate if n not in self.parameterization.names]
        if unknown or not self.estimate:
            raise ParameterError(f"--estimate must name parameters of {self.parameterization.name} "
                                 f"({', '.join(self.parameterization.names)}); got {', '.join(unknown) or 'none'}")
        if not self.tissues:
            raise DesignError("at least one tissue is needed")
        if self.rank is not None:
            rows = len(next(iter(self.basis_values.values()))) if self.basis_values else 0
            missing = set(self.parameterization.names) - set(self.basis_values or {})
            if missing:
                raise DesignError(f"the basis draws lack {', '.join(sorted(missing))}")
            if not 1 <= self.rank <= rows:
                raise DesignError(f"a rank-{self.rank} basis needs at least {self.rank} basis draws, got {rows}")
        if self.scales is not None and not all(self.scales.get(k, 0) > 0 for k in self.estimate):
            raise DesignError(f"every estimated parameter needs a positive scale; got {dict(self.scales)}")
        lo, hi = self.trf_window
        if not (0 < lo < hi < self.start.TR):
            raise DesignError(f"TRF window [{lo:g}, {hi:g}] s must satisfy 0 < lo < hi < TR = {self.start.TR:g} s")
        if self.knot_spacing < 1:
            raise DesignError(f"knot spacing must be >= 1 pulse, got {self.knot_spacing}")
        if self.energy_limit is None:
            self.energy_limit = self.start_energy
        fixed = sum(float((p.alpha[p.crushed] ** 2 / p.TRF[p.crushed]).sum()) for p in self.start.patterns)
        if self.energy_limit <= fixed:
            raise DesignError(f"RF energy limit {self.energy_limit:.4g} rad^2/s is not above that of the fixed "
                              f"crushed pulses ({fixed:.4g})")
        self._bases = [hat_basis(int((~p.crushed).sum()), self.knot_spacing).to(self.device)
                       for p in self.start.patterns]

    @property
    def start_energy(self) -> float:
        return sum(float(rf_energy(torch.as_tensor(p.alpha), torch.as_tensor(p.TRF))) for p in self.start.patterns)

    def digest(self) -> str:
        """Hash of the problem, so a checkpoint resumes only the same design."""
        text = json.dumps([self.start.sha256, self.parameterization.name, {k: dict(v) for k, v in
                           self.tissues.items()}, self.estimate, self.knot_spacing, self.trf_window,
                           self.energy_limit, dict(self.scales or {}), self.rank,
                           {k: np.asarray(v).tolist() for k, v in (self.basis_values or {}).items()}], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def initial(self) -> torch.Tensor:
        """Knot values (u, v of every pattern, concatenated) that reproduce the start within the constraints (least
        squares in the logit domain)."""
        lo, hi = self.trf_window
        out = []
        for p, basis in zip(self.start.patterns, self._bases):
            free = ~p.crushed
            for target in (_logit(p.alpha[free] / np.pi), _logit((np.clip(p.TRF[free], lo, hi) - lo) / (hi - lo))):
                target = torch.as_tensor(target, device=self.device)[:, None]
                out.append(torch.linalg.lstsq(basis, target).solution[:, 0])
        return torch.cat(out)

    def patterns(self, theta: torch.Tensor, scale: float | torch.Tensor = 1.0) -> list[tuple[torch.Tensor, ...]]:
        """(alpha, TRF, crushed) tensors of every pattern for knot values ``theta``; ``scale`` multiplies the free
        flip angles (the final energy projection)."""
        lo, hi = self.trf_window
        out, i = [], 0
        for p, basis in zip(self.start.patterns, self._bases):
            k = basis.shape[1]
            u, v = theta[i: i + k], theta[i + k: i + 2 * k]
            i += 2 * k
            free = torch.as_tensor(~p.crushed, device=self.device)
            alpha = torch.as_tensor(p.alpha, device=self.device).clone()
            TRF = torch.as_tensor(p.TRF, device=self.device).clone()
            alpha = alpha.masked_scatter(free, scale * np.pi * torch.sigmoid(basis @ u))
            TRF = TRF.masked_scatter(free, lo + (hi - lo) * torch.sigmoid(basis @ v))
            out.append((alpha, TRF, free.logical_not()))
        return out

    def values(self) -> dict[str, torch.Tensor]:
        """Every parameter's value (tissues,) of the tissues."""
        pz = self.parameterization
        return {k: torch.tensor([pz.complete(dict(t))[k] for t in self.tissues.values()], dtype=torch.float64,
                                device=self.device) for k in pz.names}

    def normalizer(self) -> torch.Tensor:
        """What each CRB is relative to the square of (tissues, estimated): the values, or the ``scales``."""
        values = self.values()
        return torch.stack([values[k] if self.scales is None else torch.full_like(values[k], self.scales[k])
                            for k in self.estimate], 1)

    def basis(self, patterns: Sequence[tuple[torch.Tensor, ...]]) -> torch.Tensor | None:
        """The rank-r temporal basis (Ns, r) of the basis rows' signals under ``patterns`` (None without ``rank``)."""
        if self.rank is None:
            return None
        pz = self.parameterization
        values = {k: torch.as_tensor(np.asarray(self.basis_values[k], dtype=np.float64), device=self.device)
                  for k in pz.names}
        signals = torch.cat([pattern_signal(a, t, c, self.start.TR, values, pz, ())[0] for a, t, c in patterns], 1)
        return _PhaseFree.apply(torch.linalg.svd(signals.T, full_matrices=False)[0][:, : self.rank])

    def relative_crb(self, patterns: Sequence[tuple[torch.Tensor, ...]]) -> torch.Tensor:
        """CRB / normalizer^2 (tissues, estimated) at sigma = 1, every parameter and the complex M0 unknown (of the
        rank-r coefficients with ``rank``)."""
        pz = self.parameterization
        parts = [pattern_signal(a, t, c, self.start.TR, self.values(), pz, pz.names) for a, t, c in patterns]
        s, j = torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts], 1)
        crb = unit_crb(s, j, self.basis(patterns))  # differentiable; the design tissues are identifiable
        cols = [pz.names.index(k) for k in self.estimate]
        return crb[:, cols] / self.normalizer() ** 2

    def energy_weight(self, start_cost: float) -> float:
        """Weight of the quadratic penalty on RF energy above the limit: 100 x the start's summed relative CRB, or
        100 for the log cost (whose level is arbitrary: a unit is a factor e in the CRBs)."""
        return 100.0 * start_cost if self.scales is None else 100.0

    def cost(self, relative_crb: torch.Tensor) -> torch.Tensor:
        """The summed relative CRB over the tissues; over prior draws (``scales``), the mean over the draws of the
        summed log relative CRB, so that a few barely identifiable corners of the prior (CRBs 100x the median) do
        not decide the design alone."""
        if self.scales is None:
            return relative_crb.sum()
        return torch.log(relative_crb).sum(dim=1).mean()

    def energy(self, patterns: Sequence[tuple[torch.Tensor, ...]]) -> torch.Tensor:
        return sum(rf_energy(a, t) for a, t, _ in patterns)

    def feasible_scale(self, theta: torch.Tensor) -> float:
        """The factor (<= 1) on the free flip angles that brings the RF energy to the limit."""
        with torch.no_grad():
            pats = self.patterns(theta)
            total = float(self.energy(pats))
            fixed = sum(float(rf_energy(a[c], t[c])) for a, t, c in pats)
        if total <= self.energy_limit:
            return 1.0
        return float(np.sqrt((self.energy_limit - fixed) / (total - fixed)))

    def sequence(self, theta: torch.Tensor) -> QMTSequence:
        """The designed sequence (energy projected to the limit)."""
        pats = self.patterns(theta.detach(), self.feasible_scale(theta))
        return QMTSequence(TR=self.start.TR, patterns=tuple(
            Pattern(a.cpu().numpy().copy(), t.cpu().numpy().copy(), c.cpu().numpy().copy()) for a, t, c in pats))


def crb_table(problem: DesignProblem, sequences: Mapping[str, QMTSequence], sigma: float = 0.01) -> pd.DataFrame:
    """Long table (sequence, tissue, parameter, value, sqrt_crb, relative_crb) of each sequence at ``sigma`` per
    real channel (|M0| = 1), plus its RF energy; relative_crb is CRB / value^2 (CRB / scale^2 with ``scales``) at
    sigma = 1."""
    rows = []
    for name, seq in sequences.items():
        pats = [tuple(torch.as_tensor(x, device=problem.device) for x in (p.alpha, p.TRF, p.crushed))
                for p in seq.patterns]
        with torch.no_grad():
            rel = problem.relative_crb(pats).cpu().numpy()
            energy = float(problem.energy(pats))
        norm = problem.normalizer().cpu().numpy()
        for i, (tissue, given) in enumerate(problem.tissues.items()):
            values = problem.parameterization.complete(dict(given))
            for j, k in enumerate(problem.estimate):
                rows.append({"sequence": name, "tissue": tissue, "parameter": k, "unit": parameter(k).unit,
                             "value": values[k], "sqrt_crb": sigma * norm[i, j] * np.sqrt(rel[i, j]),
                             "relative_crb": rel[i, j], "rf_energy": energy})
    return pd.DataFrame(rows)


def optimize(problem: DesignProblem, iterations: int, lr: float = 0.05, checkpoint: str | Path | None = None,
             checkpoint_every: int = 10, progress: bool = True) -> tuple[torch.Tensor, pd.DataFrame]:
    """Adam on the knot values: minimizes ``problem.cost`` (the summed relative CRB, or the mean summed log CRB over
    prior draws) plus a quadratic penalty on RF energy above the limit. Returns the best feasible knot values seen (energy-projected cost) and the history (iteration, cost,
    energy ratio, per tissue and parameter sqrt(relative CRB)). With ``checkpoint`` the state is saved every
    ``checkpoint_every`` iterations and a rerun of the same problem resumes from it."""
    theta = problem.initial().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    history: list[dict] = []
    best = (np.inf, theta.detach().clone())
    path = Path(checkpoint) if checkpoint else None
    weight = None  # of the energy penalty, from the start's cost
    if path and path.exists():
        state = torch.load(path, weights_only=False)
        if state["digest"] == problem.digest():
            with torch.no_grad():
                theta.copy_(state["theta"])
            opt.load_state_dict(state["optimizer"])
            history, best, weight = state["history"], (state["best_cost"], state["best_theta"]), state["weight"]
            logger.info("resuming at iteration %d from %s", len(history), path)
    bar = progress_bar(range(len(history), iterations), desc="design", disable=not progress)
    for it in bar:
        opt.zero_grad()
        pats = problem.patterns(theta)
        rel = problem.relative_crb(pats)
        cost = problem.cost(rel)
        ratio = problem.energy(pats) / problem.energy_limit
        c, r = float(cost.detach()), float(ratio.detach())
        weight = weight or problem.energy_weight(c)
        (cost + weight * torch.relu(ratio - 1.0) ** 2).backward()
        if r <= 1.0 and c < best[0]:
            best = (c, theta.detach().clone())
        opt.step()
        row = {"iteration": it, "cost": c, "energy_ratio": r}
        per = rel.detach().sqrt()
        row |= {f"{t}_{k}": float(per[i, j]) for i, t in enumerate(problem.tissues) for j, k in enumerate(problem.estimate)}
        history.append(row)
        shown = ({f"{t}_{k}": row[f"{t}_{k}"] for t in problem.tissues for k in problem.estimate}
                 if len(problem.tissues) <= 4 else
                 {f"median_{k}": float(per[:, j].median()) for j, k in enumerate(problem.estimate)})
        logger.info("iteration %d: cost %.5g, energy/limit %.4f, sqrt(relative CRB) %s", it, c, r,
                    ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
        if path and ((it + 1) % checkpoint_every == 0 or it + 1 == iterations):
            with atomic_path(path) as tmp:
                torch.save({"digest": problem.digest(), "theta": theta.detach(), "optimizer": opt.state_dict(),
                            "history": history, "best_cost": best[0], "best_theta": best[1], "weight": weight}, tmp)
    if not np.isfinite(best[0]):  # no iterate within the limit: project the last one
        best = (np.nan, theta.detach().clone())
    return best[1], pd.DataFrame(history)


def write_design(path: str | Path, sequence: QMTSequence, description: str, comment: str) -> None:
    """The designed sequence as YAML (``path``) with its pattern file (``<stem>.h5``: alpha, TRF as (k, N)) beside
    it; ``comment`` (the command that made it) heads the YAML."""
    path = Path(path)
    pattern_file = path.with_suffix(".h5")
    masks = {tuple(p.crushed.nonzero()[0] + 1) for p in sequence.patterns}
    if len(masks) != 1:
        raise DesignError("the patterns have different crushed pulses; one sequence file cannot express them")
    if len({p.n_pulses for p in sequence.patterns}) != 1:
        raise DesignError("the patterns differ in length; one pattern file cannot hold them")
    with atomic_hdf5(pattern_file) as f:
        f.create_dataset("alpha", data=np.stack([p.alpha for p in sequence.patterns]))
        f.create_dataset("TRF", data=np.stack([p.TRF for p in sequence.patterns]))
    spec = {"kind": "hybrid_state_qmt", "description": description, "TR": sequence.TR,
            "crushed": [int(i) for i in masks.pop()], "patterns": [{"file": pattern_file.name}]}
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    with atomic_path(path) as tmp:
        tmp.write_text(header + yaml.safe_dump(spec, sort_keys=False))
