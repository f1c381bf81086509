"""Residual network: Zhang's architecture, physical outputs, bounds, and exact BatchNorm folding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from crbnet.nets import ZHANG_HIDDEN, ResidualMLP, auto_skips


def _net(**kw):
    torch.manual_seed(0)
    shift, scale = torch.tensor([0.1, 1.5, 0.08]), torch.tensor([0.05, 0.7, 0.04])
    return ResidualMLP(26, ZHANG_HIDDEN, shift, scale, **kw)


def test_zhang_architecture():
    net = _net()
    widths = [26, *ZHANG_HIDDEN, 3]
    assert len(net.linears) == 14 and net.head.out_features == 3  # 14 hidden layers + linear output
    assert [lin.out_features for lin in net.linears] + [3] == widths[1:]
    assert all(isinstance(n, nn.BatchNorm1d) for n in net.norms)
    assert sorted(net.skips) == [(0, 12), (1, 11), (2, 9), (3, 7)]  # the four equal-width pairs
    assert all(widths[i] == widths[j] for i, j in net.skips)


def test_auto_skips_pair_equal_widths_only():
    assert auto_skips([4, 8, 8, 4]) == [(0, 3)]  # adjacent equal widths are not joined
    assert auto_skips([4, 8, 16, 8, 4, 2]) == [(1, 3), (0, 4)]
    with pytest.raises(ValueError, match="equal width"):
        ResidualMLP(4, [8, 16], torch.zeros(1), torch.ones(1), skips=[[0, 2]])


def test_outputs_are_in_physical_units_and_bounded_in_eval_only():
    net = _net(lower=torch.tensor([0.0, 0.1, 0.005]), upper=torch.tensor([0.5, 5.0, 1.0]))
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.tensor([-4.0, 0.0, 2.0]))
    x = torch.randn(8, 26)
    expected = torch.tensor([0.1 - 4 * 0.05, 1.5, 0.08 + 2 * 0.04])
    torch.testing.assert_close(net.train()(x), expected.expand(8, 3))
    torch.testing.assert_close(net.eval()(x), torch.tensor([0.0, 1.5, 0.16]).expand(8, 3))


@pytest.mark.parametrize("norm", ["batch", "group", "layer", "none"])
def test_folding_is_exact(norm):
    net = _net(norm=norm)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(5):  # non-trivial running statistics and affine parameters
        loss = net(torch.randn(64, 26) * 3 + 1).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x = torch.randn(100, 26)
    folded = net.folded()
    with torch.no_grad():
        torch.testing.assert_close(folded(x), net.eval()(x), rtol=1e-4, atol=1e-5)
    if norm == "batch":
        assert not any(isinstance(n, nn.BatchNorm1d) for n in folded.norms)


def test_bf16_path_runs_only_the_wide_layers_in_bfloat16():
    net = _net()
    net.train()
    net(torch.randn(256, 26))  # running statistics
    folded = net.folded(bf16=True)
    dtypes = [lin.weight.dtype for lin in folded.linears]
    assert dtypes == [torch.float32] * 2 + [torch.bfloat16] * 7 + [torch.float32] * 5  # 256->512 ... 384->256
    x = torch.randn(500, 26)
    with torch.no_grad():
        exact, fast = net.eval()(x), folded(x)
    assert fast.dtype == torch.float32
    assert torch.all((fast - exact).abs().median(dim=0).values < 0.01 * exact.std(dim=0))
