"""Training losses and the bias/variance decomposition (docs/model.md, section 4).

Shapes: estimates and truths (B, Pe); CRBs (B, Pe) at each example's own M0 and sigma; for losses over noise
realizations, estimates (R, B, Pe) with one M0 per fingerprint. Each loss is the mean over parameters of per-parameter
terms (``terms=True`` returns them, (Pe,)), which RunningBalance can reweight.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOSSES = ("mse", "crb", "bias_reduced")


def _reduce(per_sample: torch.Tensor, terms: bool) -> torch.Tensor:
    """Per-parameter means over samples (Pe,), or their mean."""
    t = per_sample.mean(dim=0)
    return t if terms else t.mean()


def mse(estimate: torch.Tensor, truth: torch.Tensor, scale: torch.Tensor, terms: bool = False) -> torch.Tensor:
    """Mean squared error of the scaled parameters ``(p - shift) / scale`` over samples and parameters."""
    return _reduce(((estimate - truth) / scale) ** 2, terms)


def crb_weighted(estimate: torch.Tensor, truth: torch.Tensor, crb: torch.Tensor, terms: bool = False) -> torch.Tensor:
    """Zhang 2022 eq. 1: mean of (est - true)^2 / CRB; 1 in expectation for an efficient unbiased estimator."""
    return _reduce((estimate - truth) ** 2 / crb, terms)


@dataclass(frozen=True)
class BiasVariance:
    """Per fingerprint and parameter (B, Pe): bias ``mean - true`` and variance ``mean (est - mean)^2`` over the
    realizations (1/R), so that ``bias^2 + variance`` is the mean squared error exactly (Zhang eqs. 2-5)."""

    mean: torch.Tensor
    bias: torch.Tensor
    variance: torch.Tensor

    @property
    def mse(self) -> torch.Tensor:
        return self.bias**2 + self.variance


def bias_variance(estimates: torch.Tensor, truth: torch.Tensor) -> BiasVariance:
    """Bias and variance of estimates (R, B, Pe) of ``truth`` (B, Pe) over the R noise realizations."""
    mean = estimates.mean(dim=0)
    return BiasVariance(mean, mean - truth, ((estimates - mean) ** 2).mean(dim=0))


def bias_reduced(estimates: torch.Tensor, truth: torch.Tensor, crb: torch.Tensor, lam: float = 1.0,
                 delta: float = 1.0, terms: bool = False) -> torch.Tensor:
    """Mao: mean over fingerprints and parameters of ``bias^2 / CRB + lam * max(0, variance / CRB - delta)``
    with bias and variance over the realizations axis of ``estimates`` (R, B, Pe)."""
    bv = bias_variance(estimates, truth)
    return _reduce(bv.bias**2 / crb + lam * torch.relu(bv.variance / crb - delta), terms)


class RunningBalance(torch.nn.Module):
    """Per-parameter normalization of a loss (an option next to the papers' losses): the mean over parameters of
    each parameter's term divided by its running mean (exponential, ``momentum`` per step, started at the first
    batch). A parameter whose term is small, e.g. one the CRB-weighted loss lets collapse to a constant where its
    CRB is large, then weighs as much as the others. The running means travel with checkpoints (a buffer)."""

    def __init__(self, n: int, momentum: float = 0.99) -> None:
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.full((n,), float("nan"), dtype=torch.float64))

    def forward(self, terms: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            t = terms.detach().to(self.mean)
            self.mean.copy_(torch.where(self.mean.isnan(), t, self.momentum * self.mean + (1 - self.momentum) * t))
        return (terms / self.mean.to(terms)).mean()
