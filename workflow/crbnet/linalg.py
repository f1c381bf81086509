"""Batched small-matrix algebra on dual stacks: a leading axis holds the primal value and its tangents.

A dual stack ``X`` of shape (1 + P, ..., n, m) carries the value ``X[0]`` and P forward-mode tangents
``X[1:]``. Products and exponentials propagate the tangents exactly, which gives Jacobians at a cost that
grows linearly with P and needs no autograd graph.
"""

from __future__ import annotations

import math

import torch

# Taylor degree 16 evaluated with Paterson-Stockmeyer (6 products); the remainder is below 5e-16
# relative for ||X||_1 <= THETA, and scaling-and-squaring brings every matrix below it.
_DEGREE, TAYLOR_THETA = 16, 0.9
TAYLOR_COEF = [1.0 / math.factorial(k) for k in range(_DEGREE + 1)]


def dmm(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Product of two dual stacks: (XY, X'Y + XY')."""
    value = (x[0] @ y[0]).unsqueeze(0)
    if x.shape[0] == 1:
        return value
    return torch.cat([value, x[1:] @ y[0] + x[0] @ y[1:]], dim=0)


def dcumprod(x: torch.Tensor) -> torch.Tensor:
    """Cumulative products ``C_i = X_i ... X_1 X_0`` of a dual stack (1 + P, B, N, n, n) along N.

    Two-level blocking: sqrt(N) blocks of sqrt(N) steps, cumulated inside every block at once, then across
    blocks; about 2 sqrt(N) batched products instead of N sequential ones.
    """
    d, b, n, m = x.shape[0], x.shape[1], x.shape[2], x.shape[-1]
    if n == 0:
        return x
    k = math.isqrt(n - 1) + 1
    groups = -(-n // k)
    pad = torch.zeros(d, b, groups * k - n, m, m, dtype=x.dtype, device=x.device)
    pad[0] = torch.eye(m, dtype=x.dtype, device=x.device)
    blocks = torch.cat([x, pad], dim=2).unflatten(2, (groups, k))  # (D, B, G, K, n, n)
    local = [blocks[:, :, :, 0]]
    for j in range(1, k):
        local.append(dmm(blocks[:, :, :, j], local[-1]))
    prefix = [local[-1][:, :, 0]]  # products of whole blocks 0..g
    for g in range(1, groups - 1):
        prefix.append(dmm(local[-1][:, :, g], prefix[-1]))
    within = torch.stack(local, dim=3)  # (D, B, G, K, n, n)
    if groups > 1:
        before = torch.stack(prefix, dim=2)[:, :, :, None].expand(-1, -1, -1, k, -1, -1)
        within = torch.cat([within[:, :, :1], dmm(within[:, :, 1:], before)], dim=2)
    return within.flatten(2, 3)[:, :, :n]


def dsolve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve A z = b for dual stacks: z' = A^{-1} (b' - A' z)."""
    lu, piv = torch.linalg.lu_factor(a[0])
    z = torch.linalg.lu_solve(lu, piv, b[0]).unsqueeze(0)
    if a.shape[0] == 1:
        return z
    rhs = b[1:] - a[1:] @ z[0]
    return torch.cat([z, torch.linalg.lu_solve(lu, piv, rhs)], dim=0)


def _squarings(x: torch.Tensor) -> int:
    norm = x.detach().abs().sum(dim=-2).amax()  # largest 1-norm in the batch (a step count, not differentiated)
    return max(0, math.ceil(math.log2(max(float(norm), 1e-300) / TAYLOR_THETA)))


class _Columns:
    """A value X (M, n, n) with P tangents side by side, (M, n, P, n): both tangent products of a product
    are then single wide or tall batched products on views."""

    def __init__(self, value: torch.Tensor, tangents: torch.Tensor) -> None:
        self.value, self.tangents = value, tangents

    def __matmul__(self, other: _Columns) -> _Columns:
        m, n, p, _ = self.tangents.shape
        left = (self.tangents.reshape(m, n * p, n) @ other.value).reshape(m, n, p, n)  # X' Y
        right = (self.value @ other.tangents.reshape(m, n, p * n)).reshape(m, n, p, n)  # X Y'
        return _Columns(self.value @ other.value, left.add_(right))


# Matrices exponentiated at once on a CPU: the tangent temporaries of a chunk (about 2 MiB) stay in a core's cache,
# which makes the memory-bound products about 4x faster than on the whole batch. A GPU takes the whole batch.
_CHUNK_BYTES = 2**21


def dexpm(x: torch.Tensor) -> torch.Tensor:
    """Matrix exponential of a dual stack of square matrices (scaling and squaring, Taylor degree 16).

    Tangents are exact Frechet derivatives: the algorithm's products are differentiated step by step. On a CPU the
    matrices are taken in cache-sized chunks, each with its own number of squarings.
    """
    p, n = x.shape[0] - 1, x.shape[-1]
    flat = x.reshape(p + 1, -1, n, n)
    chunk = max(1, _CHUNK_BYTES // (flat.element_size() * n * n * (p + 1))) if x.is_cpu else flat.shape[1]
    out = torch.cat([_dexpm(flat[:, i:i + chunk]) for i in range(0, flat.shape[1], chunk)], dim=1)
    return out.reshape(x.shape)


def _dexpm(x: torch.Tensor) -> torch.Tensor:
    """dexpm of a dual stack (1 + P, M, n, n) at once: Paterson-Stockmeyer in Horner form, each block
    ``c0 I + c1 A + c2 A^2 + c3 A^3`` accumulated in place into ``A^4 E`` (memory traffic is the cost)."""
    s = _squarings(x[0])
    x = x / 2.0**s
    n = x.shape[-1]
    a = _Columns(x[0], x[1:].permute(1, 2, 0, 3))
    a2 = a @ a
    a3 = a2 @ a
    a4 = a2 @ a2
    eye = torch.eye(n, dtype=x.dtype, device=x.device)

    def block(j: int, e: _Columns | None) -> _Columns:
        c = TAYLOR_COEF[4 * j: 4 * j + 4]
        if e is None:
            value = (TAYLOR_COEF[16] * a4.value).add_(a3.value, alpha=c[3])
            tangents = (TAYLOR_COEF[16] * a4.tangents).add_(a3.tangents, alpha=c[3])
        else:
            e = a4 @ e
            value = e.value.add_(a3.value, alpha=c[3])
            tangents = e.tangents.add_(a3.tangents, alpha=c[3])
        value.add_(a2.value, alpha=c[2]).add_(a.value, alpha=c[1]).add_(eye, alpha=c[0])
        tangents.add_(a2.tangents, alpha=c[2]).add_(a.tangents, alpha=c[1])
        return _Columns(value, tangents)

    e = block(3, None)
    for j in (2, 1, 0):
        e = block(j, e)
    for _ in range(s):
        e = e @ e
    return torch.cat([e.value.unsqueeze(0), e.tangents.permute(2, 0, 1, 3)])


def expm2(m: torch.Tensor) -> torch.Tensor:
    """Closed-form exponential of real 2x2 matrices (..., 2, 2), smooth for real or complex eigenvalues."""
    a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
    mu = 0.5 * (a + d)
    delta2 = (0.5 * (a - d)) ** 2 + b * c
    small = delta2.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(delta2), delta2)
    r = safe.abs().sqrt()
    hyperbolic = safe > 0
    cosine = torch.where(hyperbolic, torch.cosh(r), torch.cos(r))
    sinc = torch.where(hyperbolic, torch.sinh(r), torch.sin(r)) / r
    cosine = torch.where(small, 1 + delta2 / 2 + delta2**2 / 24, cosine)
    sinc = torch.where(small, 1 + delta2 / 6 + delta2**2 / 120, sinc)
    scale = torch.exp(mu)
    e00 = scale * (cosine + sinc * (a - mu))
    e11 = scale * (cosine + sinc * (d - mu))
    return torch.stack([torch.stack([e00, scale * sinc * b], -1), torch.stack([scale * sinc * c, e11], -1)], -2)


def assemble(entries: dict[tuple[int, int], torch.Tensor], n: int) -> torch.Tensor:
    """An (..., n, n) matrix from its nonzero entries (all broadcastable); others are zero.

    Placed with one product against a constant 0/1 matrix, which stays fast under torch.func transforms.
    """
    values = torch.stack(torch.broadcast_tensors(*entries.values()), dim=-1)
    placement = torch.zeros(len(entries), n * n, dtype=values.dtype, device=values.device)
    placement[torch.arange(len(entries)), [i * n + j for i, j in entries]] = 1.0
    return (values @ placement).unflatten(-1, (n, n))
