"""Semi-solid saturation under rectangular RF pulses with a super-Lorentzian line shape.

The linearized semi-solid transverse rate is ``R2sl = rho(tau, B1*alpha) / T2s`` with ``tau = TRF/T2s``
(pulse duration in units of T2s) and the nutation ``B1*alpha`` (rad). ``rho`` is found by matching, at the end
of the pulse, the longitudinal magnetization of a two-state linear model to that of the isolated semi-solid
pool under the super-Lorentzian Green's function (docs/model.md, section 1). The table is computed once with
numpy, cached on disk and evaluated in torch with a C1 bicubic (Catmull-Rom) interpolant.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from crbnet.io.atomic import atomic_path

_ZETA0 = 1.0 / np.sqrt(3.0)  # magic angle: 3 zeta^2 - 1 = 0

# Table domain: tau = TRF/T2s (dimensionless) and nutation B1*alpha (rad).
TAU_MIN, TAU_MAX, N_TAU = 0.5, 1000.0, 100
NUTATION_MAX, N_NUTATION = 1.1 * np.pi, 56
KNEE_WIDTH = 0.3  # rad
_VOLTERRA_STEPS = 512
_TABLE_VERSION = 1


def _zeta_quadrature() -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes/weights on [0, 1], graded towards the magic angle where G's integrand peaks."""
    x, w = np.polynomial.legendre.leggauss(16)
    offsets = np.concatenate([[0.0], _ZETA0 * 2.0 ** np.arange(-16, 1)])
    left = _ZETA0 - offsets[::-1]
    right = _ZETA0 + (1.0 - _ZETA0) * np.concatenate([[0.0], 2.0 ** np.arange(-16, 1)])
    edges = np.unique(np.concatenate([left, right]))
    a, b = edges[:-1, None], edges[1:, None]
    nodes = (0.5 * (b - a) * x + 0.5 * (a + b)).ravel()
    weights = (0.5 * (b - a) * w).ravel()
    return nodes, weights


def greens_function(k: np.ndarray | float) -> np.ndarray:
    """Super-Lorentzian Green's function ``G(k) = int_0^1 exp(-k^2 (3 zeta^2 - 1)^2 / 8) d zeta`` (k = t/T2s)."""
    k = np.asarray(k, dtype=np.float64)
    zeta, w = _zeta_quadrature()
    p2 = (3.0 * zeta**2 - 1.0) ** 2 / 8.0
    flat = k.reshape(-1, 1)
    out = np.empty(flat.shape[0])
    for start in range(0, flat.shape[0], 4096):  # bounded memory
        chunk = flat[start : start + 4096]
        out[start : start + 4096] = np.exp(-(chunk**2) * p2) @ w
    return out.reshape(k.shape)


def _hat_weights(h: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Product-integration weights for ``int_0^{t_m} G(t_m - u) z(u) du`` with z piecewise linear on step h.

    Returns (w, w_end): ``w[m]`` multiplies z_j with m = n_step - j for 1 <= m (full hat) and m = 0 (half hat),
    ``w_end[m]`` multiplies z_0 when the integral ends at t_m (half hat on [t_{m-1}, t_m]).
    """
    x, gw = np.polynomial.legendre.leggauss(12)
    lo = np.arange(n + 1)[:, None] * h  # interval [m h, (m+1) h]
    v = lo + 0.5 * h * (x + 1.0)
    g = greens_function(v)
    wq = 0.5 * h * gw
    rising = (g * wq * (v - lo) / h).sum(1)  # int over [m h,(m+1) h] of G(v) (v - m h)/h
    falling = (g * wq * (1.0 - (v - lo) / h)).sum(1)  # ... of G(v) ((m+1) h - v)/h
    w = np.empty(n + 1)
    w[0] = falling[0]
    w[1:] = rising[:-1] + falling[1:]
    w_end = np.zeros(n + 1)
    w_end[1:] = rising[:-1]
    return w, w_end


def semisolid_z(tau: float, omega: np.ndarray, steps: int = _VOLTERRA_STEPS) -> np.ndarray:
    """z at the end of a pulse of length tau for the isolated super-Lorentzian semi-solid pool.

    Solves ``dz/dtau = -Omega^2 int_0^tau G(tau - u) z(u) du`` (z(0) = 1) for every Omega at once, with
    trapezoidal steps in z and exact product integration of G against piecewise-linear z.
    """
    omega = np.atleast_1d(np.asarray(omega, dtype=np.float64))
    h = tau / steps
    w, w_end = _hat_weights(h, steps)
    om2 = omega**2
    z = np.empty((steps + 1, omega.size))
    z[0] = 1.0
    conv_prev = np.zeros_like(om2)  # C(t_0) = 0
    for m in range(1, steps + 1):
        # C(t_m) = w_end[m] z_0 + sum_{j=1}^{m-1} w[m-j] z_j + w[0] z_m
        known = w_end[m] * z[0]
        if m > 1:
            known = known + w[m - 1 : 0 : -1] @ z[1:m]
        z[m] = (z[m - 1] - 0.5 * h * om2 * (conv_prev + known)) / (1.0 + 0.5 * h * om2 * w[0])
        conv_prev = known + w[0] * z[m]
    return z[-1]


def linear_z(rho: np.ndarray, tau: float, omega: np.ndarray) -> np.ndarray:
    """z at time tau of the two-state model ``d/dtau [x; z] = [[-rho, Omega], [-Omega, 0]] [x; z]``, x(0)=0, z(0)=1.

    Written with non-positive exponents only, ``z = e^{tau(s-rho)/2} [(1 + e^{-tau s})/2 + rho (1 - e^{-tau s})/(2 s)]``,
    s = sqrt(rho^2 - 4 Omega^2) on the principal branch (Re s >= 0), so that long pulses do not overflow.
    """
    s = np.sqrt(rho.astype(np.complex128) ** 2 - 4.0 * omega**2)
    decay = np.exp(-tau * s)
    small = np.abs(tau * s) < 1e-8
    ratio = np.where(small, 0.5 * tau, (1.0 - decay) / (2.0 * np.where(small, 1.0, s)))
    return (np.exp(0.5 * tau * (s - rho)) * (0.5 * (1.0 + decay) + rho * ratio)).real


def rho_small_omega(tau: float) -> float:
    """Closed-form Omega -> 0 limit: rho0 solves ``tau/rho - (1 - e^{-rho tau})/rho^2 = int_0^tau (tau-u) G(u) du``."""
    from scipy.optimize import brentq

    x, gw = np.polynomial.legendre.leggauss(64)
    edges = np.linspace(0.0, tau, 65)
    a, b = edges[:-1, None], edges[1:, None]
    u = (0.5 * (b - a) * x + 0.5 * (a + b)).ravel()
    wu = (0.5 * (b - a) * gw).ravel()
    target = float(((tau - u) * greens_function(u)) @ wu)

    def f(rho: float) -> float:
        return tau / rho + np.expm1(-rho * tau) / rho**2 - target

    return brentq(f, 1e-6, 50.0, xtol=1e-15, rtol=1e-14)


def _match_rho(tau: float, nutation: np.ndarray) -> np.ndarray:
    """rho such that the linear model's z equals the super-Lorentzian z (vectorized bisection); NaN without a root."""
    omega = nutation / tau
    target = semisolid_z(tau, omega)
    lo = np.full(omega.shape, 1e-4)
    hi = np.full(omega.shape, 5.0)
    f_lo = linear_z(lo, tau, omega) - target
    f_hi = linear_z(hi, tau, omega) - target
    valid = np.sign(f_lo) != np.sign(f_hi)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        f_mid = linear_z(mid, tau, omega) - target
        left = np.sign(f_mid) == np.sign(f_lo)
        lo, f_lo = np.where(left, mid, lo), np.where(left, f_mid, f_lo)
        hi = np.where(left, hi, mid)
    return np.where(valid, 0.5 * (lo + hi), np.nan)


def table_axes() -> tuple[np.ndarray, np.ndarray]:
    """Grid of the rho table: log(tau) (uniform) and nutation B1*alpha in rad (uniform)."""
    return np.linspace(np.log(TAU_MIN), np.log(TAU_MAX), N_TAU), np.linspace(0.0, NUTATION_MAX, N_NUTATION)


def compute_rho_table() -> np.ndarray:
    """rho on the (log tau, nutation) grid; the nutation-0 column is the closed-form limit."""
    log_tau, nutation = table_axes()
    table = np.empty((N_TAU, N_NUTATION))
    for i, tau in enumerate(np.exp(log_tau)):
        table[i, 0] = rho_small_omega(tau)
        table[i, 1:] = _match_rho(tau, nutation[1:])
    if not np.all(np.isfinite(table)):
        bad = np.argwhere(~np.isfinite(table))[0]
        raise RuntimeError(f"rho matching has no root at tau={np.exp(log_tau[bad[0]]):.3g}, nutation={nutation[bad[1]]:.3g} rad")
    return table


def cache_dir() -> Path:
    """Directory for cached tables: $CRBNET_CACHE, else $XDG_CACHE_HOME/crbnet, else ~/.cache/crbnet."""
    if "CRBNET_CACHE" in os.environ:
        return Path(os.environ["CRBNET_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "crbnet"


def _table_key() -> str:
    spec = f"{_TABLE_VERSION}:{TAU_MIN}:{TAU_MAX}:{N_TAU}:{NUTATION_MAX}:{N_NUTATION}:{_VOLTERRA_STEPS}"
    return hashlib.sha256(spec.encode()).hexdigest()[:16]


@lru_cache(maxsize=1)
def rho_table() -> np.ndarray:
    """The rho table, loaded from the disk cache or computed once and written atomically."""
    path = cache_dir() / f"rho_superlorentzian_{_table_key()}.npy"
    if path.exists():
        table = np.load(path)
        if table.shape == (N_TAU, N_NUTATION) and np.all(np.isfinite(table)):
            return table
    table = compute_rho_table()
    with atomic_path(path) as tmp:
        np.save(tmp, table)
    return table


@dataclass(frozen=True)
class _Grid:
    values: torch.Tensor  # padded (N_TAU + 2, N_NUTATION + 2) with linear extrapolation
    x0: float
    dx: float
    y0: float
    dy: float


def padded_table(table: np.ndarray) -> np.ndarray:
    """The rho table with one ghost row and column on each side, linearly extrapolated, so that the bicubic
    interpolant (here and in the numba qMT kernel) needs no boundary cases."""
    p = np.pad(table, 1, mode="edge")
    p[0, :], p[-1, :] = 2 * p[1, :] - p[2, :], 2 * p[-2, :] - p[-3, :]
    p[:, 0], p[:, -1] = 2 * p[:, 1] - p[:, 2], 2 * p[:, -2] - p[:, -3]
    return p


@lru_cache(maxsize=8)
def _grid(device: str) -> _Grid:
    log_tau, nutation = table_axes()
    values = torch.as_tensor(padded_table(rho_table()), dtype=torch.float64, device=device)
    return _Grid(values, log_tau[0], log_tau[1] - log_tau[0], nutation[0], nutation[1] - nutation[0])


def _catmull_rom(t: torch.Tensor) -> torch.Tensor:
    """Cubic-convolution weights (a = -1/2) for fractional positions t, shape (..., 4)."""
    t2, t3 = t * t, t * t * t
    return torch.stack(
        [-0.5 * t3 + t2 - 0.5 * t, 1.5 * t3 - 2.5 * t2 + 1.0, -1.5 * t3 + 2.0 * t2 + 0.5 * t, 0.5 * t3 - 0.5 * t2],
        dim=-1,
    )


def saturate_nutation(nutation: torch.Tensor) -> torch.Tensor:
    """|B1*alpha| mapped smoothly (C2) into the table: identity below a knee, then ``knee + w tanh((y - knee)/w)``,
    which stays below NUTATION_MAX where the match loses its root; a hard clamp would make dR2sl/dB1 jump."""
    y = nutation.abs()
    knee = NUTATION_MAX - KNEE_WIDTH
    return torch.where(y < knee, y, knee + KNEE_WIDTH * torch.tanh((y - knee) / KNEE_WIDTH))


def rho(tau: torch.Tensor, nutation: torch.Tensor) -> torch.Tensor:
    """Dimensionless rho(tau, B1*alpha) from the table (C1 bicubic), nutation saturated by saturate_nutation."""
    grid = _grid(str(tau.device))
    u = (torch.log(tau.clamp(TAU_MIN, TAU_MAX)) - grid.x0) / grid.dx
    v = (saturate_nutation(nutation) - grid.y0) / grid.dy
    iu = torch.clamp(torch.floor(u.detach()), 0, N_TAU - 2)
    iv = torch.clamp(torch.floor(v.detach()), 0, N_NUTATION - 2)
    wu, wv = _catmull_rom(u - iu), _catmull_rom(v - iv)
    # padded index of node (iu - 1 + a) is iu + a
    offs = torch.arange(4, device=tau.device)
    rows = (iu.long()[..., None] + offs)[..., :, None]
    cols = (iv.long()[..., None] + offs)[..., None, :]
    patch = grid.values[rows, cols]
    return torch.einsum("...a,...ab,...b->...", wu, patch, wv)


def r2sl(TRF: torch.Tensor, alpha: torch.Tensor, B1: torch.Tensor, T2s: torch.Tensor) -> torch.Tensor:
    """Linearized semi-solid saturation rate R2sl (1/s) for a rectangular pulse of duration TRF (s), flip alpha (rad)."""
    return rho(TRF / T2s, B1 * alpha) / T2s
