"""Fused numba CPU kernel of the hybrid-state qMT model (docs/model.md, section 1): signal and exact Jacobian.

One fingerprint's whole pulse chain runs in small thread-local arrays, ``numba.prange`` over fingerprints.
Generators are 6x6 on ``[xf, yf, zf, xs, zs, 1]`` with the sparsity of H; the reduced repetition maps are affine
4x5 (rows ``xf, yf, zf, zs``, columns the same and the constant 1, implicit last row e5).

Derivatives are taken along K directions in canonical parameter space (``m0s, R1f, R2f, Rx, R1s, T2s, omega0,
B1``), the columns of d canonical / d wrt, so the result is the Jacobian w.r.t. ``wrt`` directly. Per fingerprint
and pattern:

1. pass 1 (signal): every pulse's reduced propagator Q_i (Rz(pi) included) from ``exp(H TRF)`` by the algorithm of
   crbnet.linalg.dexpm (Taylor degree 16, Paterson-Stockmeyer, scaling and squaring with squarings per matrix,
   after a diagonal shift that halves the norm), the repetition maps ``P_i = F Q_i F``, the cycle
   ``A = P_1 P_N ... P_2`` and the periodic state m_1;
2. pass 2 (tangents): states m_i and the forcing ``g_i = dP_i m_{i-1}``, accumulated as ``h_i = P_i h_{i-1} + g_i``
   from ``h_1 = 0``. Only Frechet derivatives applied to one vector are needed, ``dexp(H TRF)[D] u``: they come
   from the shifted Taylor series of ``exp(H TRF - mu I) u`` with its tangent recurrence (``_taylor``), stopped
   by a rigorous bound; the shift mu halves the saturation term -R2sl TRF, so no cancellation;
3. periodic tangents ``(I - A) t_1 = P_1 h_N + g_1`` and ``t_i = Phi_i t_1 + h_i``.

Free precession (one block per distinct free time): closed form for (xf, yf), the same series for (zf, zs, 1).
R2sl and its derivatives come from the table of crbnet.saturation, evaluated in the kernel (``_r2sl``).

Python interface: ``pulses`` (a sequence's kernel inputs), ``fingerprints`` (signals and Jacobians); QMTSignalModel
chooses between this kernel and its torch path.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numba
import numpy as np

from crbnet import saturation
from crbnet.linalg import TAYLOR_COEF, TAYLOR_THETA
from crbnet.sequences import QMTSequence

_C = tuple(TAYLOR_COEF)  # Taylor coefficients 1/k!, k = 0..16
_REDUCED = (0, 1, 2, 4, 5)  # states kept between pulses (xs dropped); the reduced rows are the first four
_EPS = 2.0**-53
_MAX_TERMS = 2000  # far above any finite case (about e * ||H TRF|| terms); stops NaN input
_JIT = dict(fastmath=False, nogil=True, error_model="numpy")  # helpers: compiled into (and cached with) the kernel


# ------------------------------------------------------------------------------------------------ generators
@numba.njit(**_JIT)
def _generator(p: np.ndarray, alpha: float, T: float, r: float, g: np.ndarray) -> None:
    """``H * T`` (6x6) of a rectangular pulse of flip alpha (rad), duration T (s) and saturation rate r (1/s) for
    canonical parameters p; alpha = r = 0 gives free precession."""
    m0s, R1f, R2f, Rx, R1s, w0, B1 = p[0], p[1], p[2], p[3], p[4], p[6], p[7]
    kf, kr, nut = Rx * m0s, Rx * (1.0 - m0s), B1 * alpha
    g[:] = 0.0
    g[0, 0], g[0, 1], g[0, 2] = -R2f * T, -w0 * T, nut
    g[1, 0], g[1, 1] = w0 * T, -R2f * T
    g[2, 0], g[2, 2], g[2, 4], g[2, 5] = -nut, -(R1f + kf) * T, kr * T, R1f * (1.0 - m0s) * T
    g[3, 3], g[3, 4] = -r * T, nut
    g[4, 2], g[4, 3], g[4, 4], g[4, 5] = kf * T, -nut, -(R1s + kr) * T, R1s * m0s * T


@numba.njit(**_JIT)
def _generator_tangents(p: np.ndarray, d: np.ndarray, alpha: float, T: float, r_t2s: float, r_b1: float,
                        dg: np.ndarray) -> None:
    """Directional derivatives of ``_generator`` along the canonical directions d (K, 8) into dg (K, 5, 6) (the
    last row is zero); r_t2s (1/s^2) and r_b1 (1/s) are the derivatives of r w.r.t. T2s and B1."""
    m0s, R1f, Rx, R1s = p[0], p[1], p[3], p[4]
    dg[:] = 0.0
    for k in range(d.shape[0]):
        dm0s, dR1f, dR2f, dRx = d[k, 0], d[k, 1], d[k, 2], d[k, 3]
        dR1s, dT2s, dw0, dB1 = d[k, 4], d[k, 5], d[k, 6], d[k, 7]
        dkf, dkr, dnut = dRx * m0s + Rx * dm0s, dRx * (1.0 - m0s) - Rx * dm0s, dB1 * alpha
        t = dg[k]
        t[0, 0], t[0, 1], t[0, 2] = -dR2f * T, -dw0 * T, dnut
        t[1, 0], t[1, 1] = dw0 * T, -dR2f * T
        t[2, 0], t[2, 2], t[2, 4] = -dnut, -(dR1f + dkf) * T, dkr * T
        t[2, 5] = (dR1f * (1.0 - m0s) - R1f * dm0s) * T
        t[3, 3], t[3, 4] = -(r_t2s * dT2s + r_b1 * dB1) * T, dnut
        t[4, 2], t[4, 3], t[4, 4], t[4, 5] = dkf * T, -dnut, -(dR1s + dkr) * T, (dR1s * m0s + R1s * dm0s) * T


@numba.njit(**_JIT)
def _semisolid_generator(p: np.ndarray, alpha: float, T: float, r: float, g: np.ndarray) -> None:
    """Generator of a crushed pulse: only the semi-solid (xs, zs) block, no relaxation or exchange."""
    nut = p[7] * alpha
    g[:] = 0.0
    g[3, 3], g[3, 4], g[4, 3] = -r * T, nut, -nut


@numba.njit(**_JIT)
def _semisolid_tangents(d: np.ndarray, alpha: float, T: float, r_t2s: float, r_b1: float, dg: np.ndarray) -> None:
    """Directional derivatives of ``_semisolid_generator`` into dg (K, 5, 6)."""
    dg[:] = 0.0
    for k in range(d.shape[0]):
        dnut = d[k, 7] * alpha
        dg[k, 3, 3], dg[k, 3, 4], dg[k, 4, 3] = -(r_t2s * d[k, 5] + r_b1 * d[k, 7]) * T, dnut, -dnut


# ------------------------------------------------------------------------------------------------ saturation
@numba.njit(**_JIT)
def _catmull_rom(t: float) -> tuple[float, float, float, float, float, float, float, float]:
    """Cubic-convolution weights (a = -1/2) at fractional position t and their derivatives d/dt."""
    t2, t3 = t * t, t * t * t
    return (-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0, -1.5 * t3 + 2.0 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2,
            -1.5 * t2 + 2.0 * t - 0.5, 4.5 * t2 - 5.0 * t, -4.5 * t2 + 4.0 * t + 0.5, 1.5 * t2 - t)


@numba.njit(**_JIT)
def _row(table: np.ndarray, i: int, j: int, w0: float, w1: float, w2: float, w3: float) -> float:
    """Weighted sum of the four table entries ``table[i, j:j + 4]``."""
    return w0 * table[i, j] + w1 * table[i, j + 1] + w2 * table[i, j + 2] + w3 * table[i, j + 3]


@numba.njit(**_JIT)
def _r2sl(TRF: float, alpha: float, B1: float, T2s: float, table: np.ndarray,
          grid: np.ndarray) -> tuple[float, float, float]:
    """R2sl (1/s) and its derivatives w.r.t. T2s (1/s^2) and B1 (1/s): crbnet.saturation.r2sl (bicubic rho table
    over log tau and the smoothly saturated nutation) with its derivatives in closed form. table: the padded rho
    table; grid: (log tau_0, d log tau, nutation_0, d nutation, tau_min, tau_max, knee, knee width)."""
    x0, dx, y0, dy = grid[0], grid[1], grid[2], grid[3]
    tau_min, tau_max, knee, width = grid[4], grid[5], grid[6], grid[7]
    tau, nut = TRF / T2s, B1 * alpha
    u = (np.log(min(max(tau, tau_min), tau_max)) - x0) / dx
    du_dT2s = -1.0 / (T2s * dx) if tau_min <= tau <= tau_max else 0.0
    y = abs(nut)
    if y < knee:
        sat, dsat = y, 1.0
    else:
        th = np.tanh((y - knee) / width)
        sat, dsat = knee + width * th, 1.0 - th * th
    v = (sat - y0) / dy
    dv_dB1 = dsat * np.sign(nut) * alpha / dy
    iu = min(max(np.floor(u), 0.0), table.shape[0] - 4.0)
    iv = min(max(np.floor(v), 0.0), table.shape[1] - 4.0)
    wu0, wu1, wu2, wu3, du0, du1, du2, du3 = _catmull_rom(u - iu)
    wv0, wv1, wv2, wv3, dv0, dv1, dv2, dv3 = _catmull_rom(v - iv)
    i, j = int(iu), int(iv)
    r0, r1 = _row(table, i, j, wv0, wv1, wv2, wv3), _row(table, i + 1, j, wv0, wv1, wv2, wv3)
    r2, r3 = _row(table, i + 2, j, wv0, wv1, wv2, wv3), _row(table, i + 3, j, wv0, wv1, wv2, wv3)
    s0, s1 = _row(table, i, j, dv0, dv1, dv2, dv3), _row(table, i + 1, j, dv0, dv1, dv2, dv3)
    s2, s3 = _row(table, i + 2, j, dv0, dv1, dv2, dv3), _row(table, i + 3, j, dv0, dv1, dv2, dv3)
    rho = wu0 * r0 + wu1 * r1 + wu2 * r2 + wu3 * r3
    drho_du = du0 * r0 + du1 * r1 + du2 * r2 + du3 * r3
    drho_dv = wu0 * s0 + wu1 * s1 + wu2 * s2 + wu3 * s3
    return rho / T2s, (drho_du * du_dT2s - rho / T2s) / T2s, drho_dv * dv_dB1 / T2s


# ------------------------------------------------------------------------------------ exponential (values only)
# Hot loops index stacks of small arrays instead of taking views: a view or a swapped array costs two atomic
# reference-count updates, comparable to a small matrix product.
@numba.njit(**_JIT)
def _mm(w: np.ndarray, x: int, y: int, out: int) -> None:
    """w[out] = w[x] @ w[y] for 6x6 matrices whose last rows are ``(0, ..., 0, c)``."""
    for i in range(5):
        r0 = r1 = r2 = r3 = r4 = 0.0
        r5 = w[x, i, 5] * w[y, 5, 5]
        for m in range(5):
            a = w[x, i, m]
            r0 += a * w[y, m, 0]
            r1 += a * w[y, m, 1]
            r2 += a * w[y, m, 2]
            r3 += a * w[y, m, 3]
            r4 += a * w[y, m, 4]
            r5 += a * w[y, m, 5]
        w[out, i, 0], w[out, i, 1], w[out, i, 2], w[out, i, 3], w[out, i, 4], w[out, i, 5] = r0, r1, r2, r3, r4, r5
    for j in range(6):
        w[out, 5, j] = w[x, 5, 5] * w[y, 5, j]


@numba.njit(**_JIT)
def _add_powers(w: np.ndarray, e: int, j: int) -> None:
    """w[e] += c[4j+3] a^3 + c[4j+2] a^2 + c[4j+1] a + c[4j] I with a^k = w[k - 1], one Paterson-Stockmeyer block
    (c_k = 1/k!)."""
    c0, c1, c2, c3 = _C[4 * j], _C[4 * j + 1], _C[4 * j + 2], _C[4 * j + 3]
    for i in range(6):
        for m in range(6):
            w[e, i, m] += c3 * w[2, i, m] + c2 * w[1, i, m] + c1 * w[0, i, m]
        w[e, i, i] += c0


@numba.njit(**_JIT)
def _expm(g: np.ndarray, w: np.ndarray) -> int:
    """exp(g) of a 6x6 generator (zero last row) as ``e^mu exp(g - mu I)``, mu halfway between the extreme diagonal
    entries (this halves the saturation term and saves about one squaring); exp(g - mu I) by scaling and squaring
    with Taylor degree 16 in Paterson-Stockmeyer form as crbnet.linalg.dexpm, squarings chosen for this matrix.
    w is a (6, 6, 6) workspace (a, a^2, a^3, a^4 and two more); returns the index of the result in w."""
    lo, hi = g[0, 0], g[0, 0]
    for i in range(1, 6):
        lo, hi = min(lo, g[i, i]), max(hi, g[i, i])
    mu = 0.5 * (lo + hi)
    norm = 0.0
    for j in range(6):
        col = abs(g[j, j] - mu)
        for i in range(6):
            if i != j:
                col += abs(g[i, j])
        norm = max(norm, col)
    s = 0
    while norm > TAYLOR_THETA:
        norm *= 0.5
        s += 1
    scale = 0.5**s
    for i in range(6):
        for j in range(6):
            w[0, i, j] = (g[i, j] - mu if i == j else g[i, j]) * scale
    for x, y, out in ((0, 0, 1), (1, 0, 2), (1, 1, 3)):  # a^2, a^3, a^4
        _mm(w, x, y, out)
    # int64 values, not literals: a literal argument would compile another copy of the helper
    e, tmp, x, j = np.int64(4), np.int64(5), np.int64(3), np.int64(3)
    for i in range(6):
        for m in range(6):
            w[e, i, m] = _C[16] * w[3, i, m]
    _add_powers(w, e, j)
    for step in range(3 + s):  # Horner steps with a^4, then the squarings
        if step >= 3:
            x = e
        _mm(w, x, e, tmp)
        e, tmp = tmp, e
        if step < 3:
            j -= 1
            _add_powers(w, e, j)
    shift = np.exp(mu)
    for i in range(6):
        for j in range(6):
            w[e, i, j] *= shift
    return e


# ------------------------------------------------------------------ exp(g) u with tangents: shifted Taylor series
@numba.njit(**_JIT)
def _taylor(g: np.ndarray, dg: np.ndarray, u: np.ndarray, y: np.ndarray, dy: np.ndarray, vb: np.ndarray,
            dvb: np.ndarray) -> None:
    """y = exp(g) u for the columns of u (6, n) and dy (K, 5, n), its exact directional derivatives along dg
    (K, 5, 6). g must have the sparsity of H (``_generator``).

    Sums ``e^mu sum_j (g - mu I)^j u / j!`` with its tangent recurrence, mu halfway between the extreme diagonal
    entries (so the terms stay near the size of the result). After term j, with a_j the largest entry of the term,
    theta = ||g - mu I||_inf and q = theta/(j+1) < 1, the value remainder is below a_j q/(1-q) and the tangent
    remainder per unit ||dg|| below gamma_j q/(1-q) + a_j/((j+1)(1-q)^2) (gamma bounds the tangent terms); the sum
    stops once both are below 2^-53 of the largest entry of the sum. vb (2, 6, n) and dvb (2, K, 5, n) hold the
    previous and the current term (indexed in place: array views and swaps would cost reference counting).
    """
    n, K = u.shape[1], dg.shape[0]
    lo, hi = g[0, 0], g[0, 0]
    for i in range(1, 6):
        lo, hi = min(lo, g[i, i]), max(hi, g[i, i])
    mu = 0.5 * (lo + hi)
    x00, x01, x02 = g[0, 0] - mu, g[0, 1], g[0, 2]
    x10, x11 = g[1, 0], g[1, 1] - mu
    x20, x22, x24, x25 = g[2, 0], g[2, 2] - mu, g[2, 4], g[2, 5]
    x33, x34 = g[3, 3] - mu, g[3, 4]
    x42, x43, x44, x45 = g[4, 2], g[4, 3], g[4, 4] - mu, g[4, 5]
    x55 = -mu
    theta = max(abs(x00) + abs(x01) + abs(x02), abs(x10) + abs(x11), abs(x20) + abs(x22) + abs(x24) + abs(x25),
                abs(x33) + abs(x34), abs(x42) + abs(x43) + abs(x44) + abs(x45), abs(x55))
    gamma, a_prev = 0.0, 0.0
    for c in range(n):
        for i in range(6):
            y[i, c] = vb[0, i, c] = u[i, c]
            a_prev = max(a_prev, abs(u[i, c]))
        for k in range(K):
            for i in range(5):
                dy[k, i, c] = dvb[0, k, i, c] = 0.0
    for j in range(1, _MAX_TERMS):
        old, new = (j - 1) & 1, j & 1
        inv = 1.0 / j  # folded into the shifted generator s.. and the previous term
        s00, s01, s02, s10, s11 = x00 * inv, x01 * inv, x02 * inv, x10 * inv, x11 * inv
        s20, s22, s24, s25, s33, s34 = x20 * inv, x22 * inv, x24 * inv, x25 * inv, x33 * inv, x34 * inv
        s42, s43, s44, s45, s55 = x42 * inv, x43 * inv, x44 * inv, x45 * inv, x55 * inv
        a, total = 0.0, 0.0
        for c in range(n):
            v0, v1, v2 = vb[old, 0, c], vb[old, 1, c], vb[old, 2, c]
            v3, v4, v5 = vb[old, 3, c], vb[old, 4, c], vb[old, 5, c]
            n0 = s00 * v0 + s01 * v1 + s02 * v2
            n1 = s10 * v0 + s11 * v1
            n2 = s20 * v0 + s22 * v2 + s24 * v4 + s25 * v5
            n3 = s33 * v3 + s34 * v4
            n4 = s42 * v2 + s43 * v3 + s44 * v4 + s45 * v5
            n5 = s55 * v5
            vb[new, 0, c], vb[new, 1, c], vb[new, 2, c] = n0, n1, n2
            vb[new, 3, c], vb[new, 4, c], vb[new, 5, c] = n3, n4, n5
            y[0, c] += n0
            y[1, c] += n1
            y[2, c] += n2
            y[3, c] += n3
            y[4, c] += n4
            y[5, c] += n5
            a = max(a, abs(n0), abs(n1), abs(n2), abs(n3), abs(n4), abs(n5))
            total = max(total, abs(y[0, c]), abs(y[1, c]), abs(y[2, c]), abs(y[3, c]), abs(y[4, c]), abs(y[5, c]))
            v0, v1, v2, v3, v4, v5 = v0 * inv, v1 * inv, v2 * inv, v3 * inv, v4 * inv, v5 * inv
            for k in range(K):
                w0, w1, w2 = dvb[old, k, 0, c], dvb[old, k, 1, c], dvb[old, k, 2, c]
                w3, w4 = dvb[old, k, 3, c], dvb[old, k, 4, c]
                n0 = s00 * w0 + s01 * w1 + s02 * w2 + dg[k, 0, 0] * v0 + dg[k, 0, 1] * v1 + dg[k, 0, 2] * v2
                n1 = s10 * w0 + s11 * w1 + dg[k, 1, 0] * v0 + dg[k, 1, 1] * v1
                n2 = (s20 * w0 + s22 * w2 + s24 * w4 + dg[k, 2, 0] * v0 + dg[k, 2, 2] * v2 + dg[k, 2, 4] * v4
                      + dg[k, 2, 5] * v5)
                n3 = s33 * w3 + s34 * w4 + dg[k, 3, 3] * v3 + dg[k, 3, 4] * v4
                n4 = (s42 * w2 + s43 * w3 + s44 * w4 + dg[k, 4, 2] * v2 + dg[k, 4, 3] * v3 + dg[k, 4, 4] * v4
                      + dg[k, 4, 5] * v5)
                dvb[new, k, 0, c], dvb[new, k, 1, c], dvb[new, k, 2, c] = n0, n1, n2
                dvb[new, k, 3, c], dvb[new, k, 4, c] = n3, n4
                dy[k, 0, c] += n0
                dy[k, 1, c] += n1
                dy[k, 2, c] += n2
                dy[k, 3, c] += n3
                dy[k, 4, c] += n4
        gamma = (theta * gamma + a_prev) * inv
        a_prev = a
        q = theta / (j + 1)
        if q < 1.0 and a * q <= _EPS * total * (1.0 - q) and (
                K == 0 or gamma * q / (1.0 - q) + a / ((j + 1) * (1.0 - q) ** 2) <= _EPS * total):
            break
    scale = np.exp(mu)
    for c in range(n):
        for i in range(6):
            y[i, c] *= scale
        for k in range(K):
            for i in range(5):
                dy[k, i, c] *= scale


# --------------------------------------------------------------------------------------------- reduced maps
@numba.njit(**_JIT)
def _reduce(w: np.ndarray, e: int, qs: np.ndarray, i: int) -> None:
    """qs[i] = the reduced 4x5 propagator of the pulse exponential w[e], Rz(pi) applied first (negated xf, yf
    columns)."""
    for r in range(4):
        for c in range(5):
            qs[i, r, c] = w[e, _REDUCED[r], _REDUCED[c]] * (-1.0 if c < 2 else 1.0)


@numba.njit(**_JIT)
def _crushed(w: np.ndarray, e: int, nut: float, qs: np.ndarray, i: int) -> None:
    """qs[i] = the reduced crushed pulse after Rz(pi): spoiled (xf, yf), zf rotated by nut (rad), zs from the
    semi-solid exponential w[e]."""
    sin2 = np.sin(0.5 * nut) ** 2
    for r in range(4):
        for c in range(5):
            qs[i, r, c] = 0.0
    qs[i, 0, 0], qs[i, 1, 1], qs[i, 2, 2], qs[i, 3, 3] = -sin2, sin2, np.cos(nut), w[e, 4, 4]


@numba.njit(**_JIT)
def _amm(x: np.ndarray, ix: int, y: np.ndarray, iy: int, out: np.ndarray, io: int) -> None:
    """out[io] = x[ix] @ y[iy] for stacks of reduced 4x5 affine maps."""
    for i in range(4):
        for j in range(5):
            acc = x[ix, i, 4] if j == 4 else 0.0
            for m in range(4):
                acc += x[ix, i, m] * y[iy, m, j]
            out[io, i, j] = acc


@numba.njit(**_JIT)
def _apply(x: np.ndarray, ix: int, v: np.ndarray, iv: int, io: int) -> None:
    """State v[io] = x[ix] v[iv] for a stack of reduced affine maps x and states v (., 4)."""
    for i in range(4):
        v[io, i] = x[ix, i, 4] + x[ix, i, 0] * v[iv, 0] + x[ix, i, 1] * v[iv, 1] + x[ix, i, 2] * v[iv, 2] + x[
            ix, i, 3] * v[iv, 3]


@numba.njit(**_JIT)
def _mapply(x: np.ndarray, ix: int, t: np.ndarray, it: int, io: int) -> None:
    """Tangent vectors t[io, k] = x[ix, :, :4] t[it, k] for a stack of maps x and tangents t (., K, 4)."""
    for k in range(t.shape[1]):
        for i in range(4):
            t[io, k, i] = x[ix, i, 0] * t[it, k, 0] + x[ix, i, 1] * t[it, k, 1] + x[ix, i, 2] * t[it, k, 2] + x[
                ix, i, 3] * t[it, k, 3]


@numba.njit(**_JIT)
def _tapply(dx: np.ndarray, ix: int, v: np.ndarray, iv: int, t: np.ndarray, io: int) -> None:
    """t[io, k] += dx[ix, k] v[iv]: tangent maps dx (., K, 4, 5) applied to a state."""
    for k in range(dx.shape[1]):
        for i in range(4):
            t[io, k, i] += dx[ix, k, i, 4] + dx[ix, k, i, 0] * v[iv, 0] + dx[ix, k, i, 1] * v[iv, 1] + dx[
                ix, k, i, 2] * v[iv, 2] + dx[ix, k, i, 3] * v[iv, 3]


@numba.njit(**_JIT)
def _lu4(a: np.ndarray, piv: np.ndarray) -> None:
    """In-place LU factorization with partial pivoting of a 4x4 matrix."""
    for c in range(4):
        p = c
        for i in range(c + 1, 4):
            if abs(a[i, c]) > abs(a[p, c]):
                p = i
        piv[c] = p
        for j in range(4):
            a[c, j], a[p, j] = a[p, j], a[c, j]
        for i in range(c + 1, 4):
            a[i, c] /= a[c, c]
            for j in range(c + 1, 4):
                a[i, j] -= a[i, c] * a[c, j]


@numba.njit(**_JIT)
def _lu4_solve(lu: np.ndarray, piv: np.ndarray, b: np.ndarray) -> None:
    """Solve in place for every row of b (n, 4) with the factors of ``_lu4``."""
    for k in range(b.shape[0]):
        for c in range(4):
            b[k, c], b[k, piv[c]] = b[k, piv[c]], b[k, c]
        for i in range(1, 4):
            for j in range(i):
                b[k, i] -= lu[i, j] * b[k, j]
        for i in range(3, -1, -1):
            for j in range(i + 1, 4):
                b[k, i] -= lu[i, j] * b[k, j]
            b[k, i] /= lu[i, i]


@numba.njit(**_JIT)
def _write(t: np.ndarray, it: int, jac: np.ndarray, x: int, accumulate: bool) -> None:
    """jac[x, k] (+)= t[it, k, 0] + i t[it, k, 1] for tangent vectors t (., K, 4)."""
    for k in range(t.shape[1]):
        z = complex(t[it, k, 0], t[it, k, 1])
        jac[x, k] = jac[x, k] + z if accumulate else z


# ---------------------------------------------------------------------------------------------- fingerprints
@numba.njit(**_JIT)
def _free_blocks(p: np.ndarray, d: np.ndarray, t_free: np.ndarray, free: np.ndarray, dfree: np.ndarray,
                 g: np.ndarray, dg: np.ndarray, u: np.ndarray, y: np.ndarray, dy: np.ndarray, vb: np.ndarray,
                 dvb: np.ndarray) -> None:
    """Reduced free precession over each distinct free time t_free (s), free (n_free, 4, 5) (xs zeroed
    afterwards), and its tangents dfree (n_free, K, 4, 5): (xf, yf) decay and rotate in closed form, the
    exchanging longitudinal pair (zf, zs, 1) by the series on its three columns (u, y (6, 3), dy (K, 5, 3), vb,
    dvb: see ``_taylor``)."""
    R2f, w0 = p[2], p[6]
    u[:] = 0.0
    u[2, 0], u[4, 1], u[5, 2] = 1.0, 1.0, 1.0
    free[:] = 0.0
    dfree[:] = 0.0
    for f in range(t_free.size):
        t = t_free[f]
        _generator(p, 0.0, t, 0.0, g)
        _generator_tangents(p, d, 0.0, t, 0.0, 0.0, dg)
        g[0, 0], g[0, 1], g[1, 0], g[1, 1] = 0.0, 0.0, 0.0, 0.0  # transverse part in closed form below
        _taylor(g, dg, u, y, dy, vb, dvb)
        decay = np.exp(-R2f * t)
        cos, sin = decay * np.cos(w0 * t), decay * np.sin(w0 * t)
        free[f, 0, 0], free[f, 0, 1], free[f, 1, 0], free[f, 1, 1] = cos, -sin, sin, cos
        for k in range(d.shape[0]):
            dR2f, dw0 = d[k, 2], d[k, 6]
            dcos, dsin = -t * (dR2f * cos + dw0 * sin), t * (dw0 * cos - dR2f * sin)
            dfree[f, k, 0, 0], dfree[f, k, 0, 1], dfree[f, k, 1, 0], dfree[f, k, 1, 1] = dcos, -dsin, dsin, dcos
        for i in range(2):
            for c in range(3):
                free[f, 2 + i, 2 + c] = y[2 + 2 * i, c]
                for k in range(d.shape[0]):
                    dfree[f, k, 2 + i, 2 + c] = dy[k, 2 + 2 * i, c]


@numba.njit(**_JIT)
def _fingerprint(p: np.ndarray, d: np.ndarray, alpha: np.ndarray, TRF: np.ndarray, crushed: np.ndarray,
                 free_at: np.ndarray, t_free: np.ndarray, offsets: np.ndarray, table: np.ndarray, grid: np.ndarray,
                 signal: np.ndarray, jac: np.ndarray, sat: np.ndarray, free: np.ndarray, dfree: np.ndarray,
                 qs: np.ndarray, steps: np.ndarray, mats: np.ndarray, lu: np.ndarray, piv: np.ndarray,
                 vecs: np.ndarray, tvecs: np.ndarray, g: np.ndarray, dg: np.ndarray, w: np.ndarray, fu: np.ndarray,
                 fy: np.ndarray, fdy: np.ndarray, fvb: np.ndarray, fdvb: np.ndarray, u: np.ndarray, y: np.ndarray,
                 dy: np.ndarray, vb: np.ndarray, dvb: np.ndarray) -> None:
    """Signal (N,) and Jacobian (N, K) of one fingerprint, pattern by pattern (see the module docstring).

    Scratch: sat (n_max, 3) R2sl and its derivatives per pulse; free, dfree (``_free_blocks``); qs, steps
    (n_max, 4, 5) Q_i and P_i; mats (3, 4, 5) a product, Phi and the cycle A; lu (4, 4), piv (4,); vecs (4, 4) the
    states m, F m, Q F m and the next m; tvecs (5, K, 4) the tangent vectors dF m, dc, g_i, h and a product;
    g, dg, w (``_expm``); fu, fy, fdy, fvb, fdvb (``_free_blocks``) and u, y (6, 1), dy (K, 5, 1), vb (2, 6, 1),
    dvb (2, K, 5, 1) (``_taylor``).
    """
    K = d.shape[0]
    _free_blocks(p, d, t_free, free, dfree, g, dg, fu, fy, fdy, fvb, fdvb)
    # stack indices as int64 values (see _expm)
    TMP, PHI, CYCLE, FIRST = np.int64(0), np.int64(1), np.int64(2), np.int64(0)  # mats; steps
    M, FM, QFM, NEXT = np.int64(0), np.int64(1), np.int64(2), np.int64(3)  # vecs
    DA, DC, GI, H, ACC = np.int64(0), np.int64(1), np.int64(2), np.int64(3), np.int64(4)  # tvecs
    SET, ADD = np.bool_(False), np.bool_(True)  # _write
    for pattern in range(offsets.size - 1):
        lo, n = offsets[pattern], offsets[pattern + 1] - offsets[pattern]
        # pass 1: Q_i, P_i = F Q_i F, cycle A = P_1 P_N ... P_2 and the periodic state m_1
        for i in range(n):
            x = lo + i
            sat[i, 0], sat[i, 1], sat[i, 2] = _r2sl(TRF[x], alpha[x], p[7], p[5], table, grid)
            if crushed[x]:
                _semisolid_generator(p, alpha[x], TRF[x], sat[i, 0], g)
            else:
                _generator(p, alpha[x], TRF[x], sat[i, 0], g)
            e = _expm(g, w)
            if crushed[x]:
                _crushed(w, e, p[7] * alpha[x], qs, i)
            else:
                _reduce(w, e, qs, i)
            _amm(qs, i, free, free_at[x], mats, TMP)
            _amm(free, free_at[x], mats, TMP, steps, i)
        mats[PHI] = 0.0
        for i in range(4):
            mats[PHI, i, i] = 1.0
        for i in range(1, n):
            _amm(steps, i, mats, PHI, mats, TMP)
            mats[PHI] = mats[TMP]
        _amm(steps, FIRST, mats, PHI, mats, CYCLE)
        for i in range(4):
            for j in range(4):
                lu[i, j] = (1.0 if i == j else 0.0) - mats[CYCLE, i, j]
            vecs[M, i] = mats[CYCLE, i, 4]
        _lu4(lu, piv)
        _lu4_solve(lu, piv, vecs[M:M + 1])  # (I - A) m_1 = A[:, 4]
        signal[lo] = complex(vecs[M, 0], vecs[M, 1])
        # pass 2: states m_i, forcing g_i = dP_i m_{i-1}, h_i = P_i h_{i-1} + g_i; pulse 1 last (after m_N)
        tvecs[H] = 0.0
        for step in range(n if K > 0 else n - 1):
            i = (step + 1) % n
            x = lo + i
            if K > 0:
                if crushed[x]:
                    _semisolid_generator(p, alpha[x], TRF[x], sat[i, 0], g)
                    _semisolid_tangents(d, alpha[x], TRF[x], sat[i, 1], sat[i, 2], dg)
                else:
                    _generator(p, alpha[x], TRF[x], sat[i, 0], g)
                    _generator_tangents(p, d, alpha[x], TRF[x], sat[i, 1], sat[i, 2], dg)
                f = free_at[x]
                _apply(free, f, vecs, M, FM)
                _apply(qs, i, vecs, FM, QFM)
                u[0, 0], u[1, 0], u[2, 0] = -vecs[FM, 0], -vecs[FM, 1], vecs[FM, 2]  # R F m, xs = 0
                u[3, 0], u[4, 0], u[5, 0] = 0.0, vecs[FM, 3], 1.0
                _taylor(g, dg, u, y, dy, vb, dvb)
                tvecs[DA] = 0.0
                _tapply(dfree, f, vecs, M, tvecs, DA)
                _mapply(qs, i, tvecs, DA, DC)  # dc = Q dF m + dQ F m
                for k in range(K):
                    for j in range(4):
                        tvecs[DC, k, j] += dy[k, _REDUCED[j], 0]
                    if crushed[x]:
                        nut, dnut = p[7] * alpha[x], d[k, 7] * alpha[x]
                        tvecs[DC, k, 0] -= 0.5 * np.sin(nut) * dnut * vecs[FM, 0]
                        tvecs[DC, k, 1] += 0.5 * np.sin(nut) * dnut * vecs[FM, 1]
                        tvecs[DC, k, 2] -= np.sin(nut) * dnut * vecs[FM, 2]
                _mapply(free, f, tvecs, DC, GI)
                _tapply(dfree, f, vecs, QFM, tvecs, GI)  # g_i = F dc + dF Q F m
                _mapply(steps, i, tvecs, H, ACC)
                for k in range(K):
                    for j in range(4):
                        tvecs[H, k, j] = tvecs[ACC, k, j] + tvecs[GI, k, j]
                if i > 0:
                    _write(tvecs, H, jac, x, SET)
            if i > 0:
                _apply(steps, i, vecs, M, NEXT)
                vecs[M] = vecs[NEXT]
                signal[x] = complex(vecs[M, 0], vecs[M, 1])
        if K == 0:
            continue
        # pass 3: (I - A) t_1 = P_1 h_N + g_1, then t_i = Phi_i t_1 + h_i
        _lu4_solve(lu, piv, tvecs[H])
        _write(tvecs, H, jac, lo, SET)
        for i in range(1, n):
            _mapply(steps, i, tvecs, H, ACC)
            tvecs[H] = tvecs[ACC]
            _write(tvecs, H, jac, lo + i, ADD)


@numba.njit(parallel=True, cache=True, fastmath=False, nogil=True, error_model="numpy")
def simulate(canonical: np.ndarray, directions: np.ndarray, alpha: np.ndarray, TRF: np.ndarray, crushed: np.ndarray,
             free_at: np.ndarray, t_free: np.ndarray, offsets: np.ndarray, table: np.ndarray, grid: np.ndarray,
             signal: np.ndarray, jac: np.ndarray, n_threads: int) -> None:
    """Signals (B, N) and Jacobians (B, N, K) of B fingerprints, written into ``signal`` and ``jac`` (complex128).

    canonical (B, 8): canonical parameters (SI units); directions (B, K, 8): the derivative directions in canonical
    space (d canonical / d wrt_k). Pulses of all patterns, concatenated: alpha (rad), TRF (s), crushed mask, free_at
    (index into the distinct free times t_free, s); pattern p spans ``offsets[p]:offsets[p + 1]``. table and grid:
    the saturation table (``_r2sl``). n_threads: ``numba.get_num_threads()`` of the caller, for the per-thread
    scratch (asking for it here would make the function uncacheable).
    """
    K, n_free = directions.shape[1], t_free.size
    n_max = np.max(offsets[1:] - offsets[:-1])
    sat, free, dfree = np.empty((n_threads, n_max, 3)), np.empty((n_threads, n_free, 4, 5)), np.empty(
        (n_threads, n_free, K, 4, 5))
    qs, steps, mats = np.empty((n_threads, n_max, 4, 5)), np.empty((n_threads, n_max, 4, 5)), np.empty(
        (n_threads, 3, 4, 5))
    lu, piv = np.empty((n_threads, 4, 4)), np.empty((n_threads, 4), dtype=np.int64)
    vecs, tvecs = np.empty((n_threads, 4, 4)), np.empty((n_threads, 5, K, 4))
    g, dg, w = np.empty((n_threads, 6, 6)), np.empty((n_threads, K, 5, 6)), np.empty((n_threads, 6, 6, 6))
    fu, fy, fdy = np.empty((n_threads, 6, 3)), np.empty((n_threads, 6, 3)), np.empty((n_threads, K, 5, 3))
    fvb, fdvb = np.empty((n_threads, 2, 6, 3)), np.empty((n_threads, 2, K, 5, 3))
    u, y, dy = np.empty((n_threads, 6, 1)), np.empty((n_threads, 6, 1)), np.empty((n_threads, K, 5, 1))
    vb, dvb = np.empty((n_threads, 2, 6, 1)), np.empty((n_threads, 2, K, 5, 1))
    for b in numba.prange(canonical.shape[0]):
        t = numba.get_thread_id()
        _fingerprint(canonical[b], directions[b], alpha, TRF, crushed, free_at, t_free, offsets, table, grid, signal[b],
                     jac[b], sat[t], free[t], dfree[t], qs[t], steps[t], mats[t], lu[t], piv[t], vecs[t], tvecs[t],
                     g[t], dg[t], w[t], fu[t], fy[t], fdy[t], fvb[t], fdvb[t], u[t], y[t], dy[t], vb[t], dvb[t])


# ------------------------------------------------------------------------------------------------- interface
class Pulses(NamedTuple):
    """The pulses of all patterns of a sequence, concatenated, as the kernel takes them."""

    alpha: np.ndarray  # (N,) flip angles, rad
    TRF: np.ndarray  # (N,) durations, s
    crushed: np.ndarray  # (N,) bool
    free_at: np.ndarray  # (N,) index into t_free
    t_free: np.ndarray  # distinct free-precession times before and after a pulse, s
    offsets: np.ndarray  # (n_patterns + 1,) pattern p spans offsets[p]:offsets[p + 1]


def pulses(sequence: QMTSequence) -> Pulses:
    """Kernel inputs of a sequence: a crushed pulse sits in the middle of TR, others have (TR - TRF)/2 either side."""
    alpha = np.concatenate([p.alpha for p in sequence.patterns]).astype(np.float64)
    TRF = np.concatenate([p.TRF for p in sequence.patterns]).astype(np.float64)
    crushed = np.concatenate([p.crushed for p in sequence.patterns]).astype(np.bool_)
    t_free, free_at = np.unique(np.where(crushed, sequence.TR / 2, (sequence.TR - TRF) / 2), return_inverse=True)
    offsets = np.cumsum([0] + [p.n_pulses for p in sequence.patterns]).astype(np.int64)
    return Pulses(alpha, TRF, crushed, free_at.astype(np.int64).ravel(), t_free, offsets)


@lru_cache(maxsize=1)
def saturation_table() -> tuple[np.ndarray, np.ndarray]:
    """The padded rho table of crbnet.saturation and its grid (see ``_r2sl``)."""
    log_tau, nutation = saturation.table_axes()
    knee = saturation.NUTATION_MAX - saturation.KNEE_WIDTH
    grid = np.array([log_tau[0], log_tau[1] - log_tau[0], nutation[0], nutation[1] - nutation[0], saturation.TAU_MIN,
                     saturation.TAU_MAX, knee, saturation.KNEE_WIDTH])
    return np.ascontiguousarray(saturation.padded_table(saturation.rho_table())), grid


def fingerprints(canonical: np.ndarray, directions: np.ndarray, sequence: Pulses,
                 threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Signals (B, N) complex128 at M0 = 1 and their derivatives (B, N, K) along the canonical directions (B, K, 8),
    for canonical parameters (B, 8), on ``threads`` threads (at most numba's NUMBA_NUM_THREADS)."""
    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    b, k, n = canonical.shape[0], directions.shape[1], sequence.alpha.size
    signal, jac = np.empty((b, n), dtype=np.complex128), np.empty((b, n, k), dtype=np.complex128)
    table, grid = saturation_table()
    simulate(np.ascontiguousarray(canonical, dtype=np.float64), np.ascontiguousarray(directions, dtype=np.float64),
             *sequence, table, grid, signal, jac, threads)
    return signal, jac
