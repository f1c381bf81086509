"""Losses against closed forms: an efficient estimator scores 1, bias + variance = total, bias is penalized."""

from __future__ import annotations

import math

import pytest
import torch

from crbnet import losses

B, P, R = 400, 3, 500


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    truth = torch.rand(B, P, generator=g, dtype=torch.float64) * 2 + 0.5
    crb = torch.rand(B, P, generator=g, dtype=torch.float64) ** 2 * 1e-2 + 1e-4  # spans two decades
    noise = torch.randn(R, B, P, generator=g, dtype=torch.float64)
    return truth, crb, noise


def test_efficient_estimator_has_crb_loss_one(problem):
    truth, crb, noise = problem
    est = truth + noise[0] * crb.sqrt()
    n = B * P  # the loss is a mean of n chi^2_1 variables: mean 1, std sqrt(2 / n)
    assert abs(losses.crb_weighted(est, truth, crb).item() - 1.0) < 4 * math.sqrt(2 / n)
    # the MSE of the same estimator is dominated by the large-CRB entries, unlike the CRB-loss
    assert losses.mse(est, truth, torch.ones(P)).item() == pytest.approx(crb.mean().item(), rel=0.1)


def test_bias_and_variance_parts_add_up_to_the_loss(problem):
    truth, crb, noise = problem
    est = truth + 0.3 * crb.sqrt() + 1.5 * noise * crb.sqrt()
    bv = losses.bias_variance(est, truth)
    total = losses.crb_weighted(est.flatten(0, 1), truth.repeat(R, 1), crb.repeat(R, 1))
    parts = (bv.bias**2 / crb).mean() + (bv.variance / crb).mean()
    assert parts.item() == pytest.approx(total.item(), rel=1e-12)
    assert (bv.bias**2 / crb).mean().item() == pytest.approx(0.09, abs=0.02)
    assert (bv.variance / crb).mean().item() == pytest.approx(2.25, rel=0.05)


def test_bias_reduced_penalizes_bias_and_excess_variance(problem):
    truth, crb, noise = problem
    efficient = truth + noise * crb.sqrt()
    biased = efficient + 0.5 * crb.sqrt()
    noisy = truth + 2.0 * noise * crb.sqrt()
    base = losses.bias_reduced(efficient, truth, crb).item()
    # efficient: bias^2/CRB ~ 1/R and the hinge only catches the chi^2 fluctuation of v around 1
    assert base < 0.05
    assert losses.bias_reduced(biased, truth, crb, lam=0.0).item() == pytest.approx(0.25 + 1 / R, abs=0.02)
    assert losses.bias_reduced(biased, truth, crb).item() > base + 0.2
    # variance 4 CRB: hinge 4 - delta = 3, scaled by lambda
    assert losses.bias_reduced(noisy, truth, crb, lam=0.5).item() == pytest.approx(0.5 * 3.0, rel=0.05)
    assert losses.bias_reduced(noisy, truth, crb, lam=1.0, delta=4.5).item() < 0.05


def test_bias_reduced_with_one_realization_is_the_crb_loss(problem):
    """realizations: 1, the control of config/bias_reduced_session.yaml: no variance term, bias = the error."""
    truth, crb, noise = problem
    est = truth + 0.3 * crb.sqrt() + noise[:1] * crb.sqrt()
    assert losses.bias_reduced(est, truth, crb, lam=1.0, delta=0.0).item() == pytest.approx(
        losses.crb_weighted(est[0], truth, crb).item(), rel=1e-12)


def test_bias_reduced_gradient_pulls_the_mean_to_the_truth(problem):
    truth, crb, noise = problem
    offset = torch.zeros(1, B, P, dtype=torch.float64, requires_grad=True)
    est = truth + noise * crb.sqrt() + 0.2 + offset
    losses.bias_reduced(est, truth, crb).backward()
    bias = (est.mean(0) - truth).detach()
    assert torch.all(torch.sign(offset.grad[0]) == torch.sign(bias))
