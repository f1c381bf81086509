"""Training losses and the bias/variance decomposition (physics.md section 4).

Shapes: estimates and truths (B, Pe); CRBs (B, Pe) at each example's own M0 and sigma; for losses over noise
realizations, estimates (R, B, Pe) with one M0 per fingerprint.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOSSES = ("mse", "crb", "bias_reduced")


def mse(estimate: torch.Tensor, truth: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mean squared error of the scaled parameters ``(p - shift) / scale`` over samples and parameters."""
    return (((estimate - truth) / scale) ** 2).mean()


def crb_weighted(estimate: torch.Tensor, truth: torch.Tensor, crb: torch.Tensor) -> torch.Tensor:
    """Zhang 2022 eq. 1: mean of (est - true)^2 / CRB; 1 in expectation for an efficient unbiased estimator."""
    return ((estimate - truth) ** 2 / crb).mean()


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
                 delta: float = 1.0) -> torch.Tensor:
    """Mao: mean over fingerprints and parameters of ``bias^2 / CRB + lam * max(0, variance / CRB - delta)``
    with bias and variance over the realizations axis of ``estimates`` (R, B, Pe)."""
    bv = bias_variance(estimates, truth)
    return (bv.bias**2 / crb + lam * torch.relu(bv.variance / crb - delta)).mean()
