"""Fully connected residual networks that map normalized coefficients to parameters in physical units."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

# Zhang 2022 (public code): input 26 -> these hidden widths -> 3 outputs, BatchNorm + ReLU, 4 additive skips.
ZHANG_HIDDEN = (128, 256, 512, 1024, 768, 640, 512, 384, 256, 192, 128, 26, 10, 6)
BF16_MIN_WIDTH = 256  # layers at least this wide on both sides run in bfloat16 on the bf16 inference path


def auto_skips(widths: Sequence[int]) -> list[tuple[int, int]]:
    """Additive skips between activations of equal width: activation j (0 = input) receives the latest earlier,
    not yet used, non-adjacent activation of the same width. For the Zhang widths this gives the four nested
    skips (3, 7), (2, 9), (1, 11), (0, 12)."""
    used: set[int] = set()
    skips = []
    for j, w in enumerate(widths):
        for i in range(j - 2, -1, -1):
            if widths[i] == w and i not in used:
                used.add(i)
                skips.append((i, j))
                break
    return skips


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "group":
        return nn.GroupNorm(next(g for g in (8, 4, 2, 1) if width % g == 0), width)
    if kind == "layer":
        return nn.LayerNorm(width)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown normalization layer '{kind}'; choose batch, group, layer or none")


class ResidualMLP(nn.Module):
    """``a_0 = x``; ``a_j = ReLU(norm(W_j a_{j-1})) + a_i`` for each skip (i, j); output ``shift + scale * W a_L``.

    The network learns scaled parameters (``(p - shift) / scale``) and returns physical units. ``lower`` and
    ``upper`` (optional, physical units) clip the estimates in eval mode only, so training gradients stay intact.
    """

    def __init__(self, n_in: int, hidden: Sequence[int], shift: torch.Tensor, scale: torch.Tensor,
                 norm: str = "batch", skips: Sequence[Sequence[int]] | str = "auto",
                 lower: torch.Tensor | None = None, upper: torch.Tensor | None = None) -> None:
        super().__init__()
        widths = [n_in, *hidden]
        self.skips = auto_skips(widths) if skips == "auto" else [tuple(s) for s in skips]
        for i, j in self.skips:
            if not (0 <= i < j < len(widths)) or widths[i] != widths[j]:
                raise ValueError(f"skip ({i}, {j}) must join two activations of equal width (widths {widths})")
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(_norm(norm, w) for w in widths[1:])
        self.head = nn.Linear(widths[-1], len(shift))
        self.register_buffer("shift", torch.as_tensor(shift, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        inf = torch.full_like(self.shift, torch.inf)
        self.register_buffer("lower", -inf if lower is None else torch.as_tensor(lower, dtype=torch.float32))
        self.register_buffer("upper", inf if upper is None else torch.as_tensor(upper, dtype=torch.float32))

    def scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Network output in scaled units, (B, Pe)."""
        acts = [x]
        incoming = {j: i for i, j in self.skips}
        for j, (linear, norm) in enumerate(zip(self.linears, self.norms), start=1):
            a = norm(linear(acts[-1].to(linear.weight.dtype))).relu_()  # activations follow the layer's dtype
            acts.append(a + acts[incoming[j]].to(a.dtype) if j in incoming else a)
        return self.head(acts[-1].to(self.head.weight.dtype)).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.shift + self.scale * self.scaled(x)
        return p if self.training else torch.maximum(torch.minimum(p, self.upper), self.lower)

    def folded(self, bf16: bool = False) -> ResidualMLP:
        """An equivalent eval-mode copy with BatchNorm folded into the linear layers and the output scaling
        folded into the head: fewer operations per voxel for inference.

        With ``bf16`` the wide layers (both widths >= BF16_MIN_WIDTH: 7 of 14 layers but 96 % of the products of the Zhang network)
        run in bfloat16 and the narrow input and output layers stay in float32, which keeps the estimates within
        a fraction of a percent of sqrt(CRB) of the float32 ones (benchmarks/efficiency.py)."""
        net = copy.deepcopy(self).eval()
        with torch.no_grad():
            for k, (linear, norm) in enumerate(zip(net.linears, net.norms)):
                if isinstance(norm, nn.BatchNorm1d):
                    g = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                    linear.weight.mul_(g[:, None])
                    linear.bias.copy_((linear.bias - norm.running_mean) * g + norm.bias)
                    net.norms[k] = nn.Identity()
            net.head.weight.mul_(net.scale[:, None])
            net.head.bias.mul_(net.scale).add_(net.shift)
            net.shift.zero_()
            net.scale.fill_(1.0)
        if bf16:
            for linear, norm in zip(net.linears, net.norms):
                if min(linear.in_features, linear.out_features) >= BF16_MIN_WIDTH:
                    linear.to(torch.bfloat16)
                    norm.to(torch.bfloat16)
        return net
