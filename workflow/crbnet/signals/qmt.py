"""Hybrid-state qMT signal model (linear approximation of the generalized Bloch model, docs/model.md section 1).

State ``[xf, yf, zf, xs, zs, 1]``. Free precession zeroes xs, so between pulses the state is the reduced
``[xf, yf, zf, zs, 1]`` and each repetition is an affine 5x5 map ``P_i = Ufp Epulse Rz(pi) Ufp``. The steady
cycle solves ``(A - diag(1,1,1,1,0)) m_1 = e_5`` with the cycle propagator A; the samples are ``m_i = Phi_i m_1``.

Jacobians are exact: the per-pulse generators and closed-form blocks are differentiated with ``torch.func.jvp``
(including the change of parameterization), and the exponentials, products and the steady-state solve carry
the tangents as dual stacks (crbnet.linalg). This torch path is the reference and the GPU path; on a CPU a fused
numba kernel (crbnet.signals.qmt_kernel) computes the same signal and Jacobian, see ``QMTSignalModel``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import torch

from crbnet.linalg import assemble, dcumprod, dexpm, dmm, dsolve, expm2
from crbnet.signals import kernel_choice, qmt_kernel, takes_numba
from crbnet.parameters import CANONICAL, Parameterization
from crbnet.devices import batch_entries
from crbnet.saturation import r2sl
from crbnet.sequences import QMTSequence

KERNEL_ENV = "CRBNET_QMT_KERNEL"
_REDUCED = [0, 1, 2, 4, 5]  # drop xs
_RZ_PI = torch.tensor([-1.0, -1.0, 1.0, 1.0, 1.0], dtype=torch.float64)


def pulse_generator(c: Mapping[str, torch.Tensor], alpha: torch.Tensor, TRF: torch.Tensor) -> torch.Tensor:
    """``H * TRF`` of a rectangular pulse, (..., 6, 6); c holds canonical parameters broadcastable to alpha."""
    m0f = 1.0 - c["m0s"]
    kf, kr = c["Rx"] * c["m0s"], c["Rx"] * m0f
    nut = c["B1"] * alpha  # B1 * w1 * TRF
    return assemble(
        {
            (0, 0): -c["R2f"] * TRF, (0, 1): -c["omega0"] * TRF, (0, 2): nut,
            (1, 0): c["omega0"] * TRF, (1, 1): -c["R2f"] * TRF,
            (2, 0): -nut, (2, 2): -(c["R1f"] + kf) * TRF, (2, 4): kr * TRF, (2, 5): c["R1f"] * m0f * TRF,
            (3, 3): -r2sl(TRF, alpha, c["B1"], c["T2s"]) * TRF, (3, 4): nut,
            (4, 2): kf * TRF, (4, 3): -nut, (4, 4): -(c["R1s"] + kr) * TRF, (4, 5): c["R1s"] * c["m0s"] * TRF,
        },
        6,
    )


def free_precession(c: Mapping[str, torch.Tensor], t: torch.Tensor) -> torch.Tensor:
    """Closed-form reduced free precession over t (s), (..., 5, 5): decay and rotation of (xf, yf), the
    exchanging longitudinal pair relaxing to (m0f, m0s)."""
    m0s = c["m0s"] * torch.ones_like(t)
    m0f = 1.0 - m0s
    kf, kr = c["Rx"] * m0s, c["Rx"] * m0f
    decay = torch.exp(-c["R2f"] * t)
    cos, sin = decay * torch.cos(c["omega0"] * t), decay * torch.sin(c["omega0"] * t)
    k = torch.stack([torch.stack([-(c["R1f"] + kf) * t, kr * t], -1), torch.stack([kf * t, -(c["R1s"] + kr) * t], -1)], -2)
    e = expm2(k)
    return assemble(
        {
            (0, 0): cos, (0, 1): -sin, (1, 0): sin, (1, 1): cos,
            (2, 2): e[..., 0, 0], (2, 3): e[..., 0, 1], (2, 4): m0f - e[..., 0, 0] * m0f - e[..., 0, 1] * m0s,
            (3, 2): e[..., 1, 0], (3, 3): e[..., 1, 1], (3, 4): m0s - e[..., 1, 0] * m0f - e[..., 1, 1] * m0s,
            (4, 4): torch.ones_like(cos),
        },
        5,
    )


def crushed_pulse(c: Mapping[str, torch.Tensor], alpha: torch.Tensor, TRF: torch.Tensor) -> torch.Tensor:
    """Reduced propagator of a crushed pulse, (..., 5, 5): spoiled free transverse magnetization, instantaneous
    free-pool rotation and semi-solid saturation without relaxation or exchange."""
    nut = c["B1"] * alpha
    sin2 = torch.sin(0.5 * nut) ** 2
    rate = r2sl(TRF, alpha, c["B1"], c["T2s"]) * TRF
    semi = expm2(torch.stack([torch.stack([-rate, nut], -1), torch.stack([-nut, torch.zeros_like(nut)], -1)], -2))
    return assemble({(0, 0): sin2, (1, 1): -sin2, (2, 2): torch.cos(nut), (3, 3): semi[..., 1, 1],
                     (4, 4): torch.ones_like(nut)}, 5)


class _PatternBlocks(NamedTuple):
    """The per-pulse blocks of one pattern: ``blocks(c)`` gives, for canonical parameters c (each (B,)), the pulse
    generators of every pulse, the free precessions of each distinct free time and the crushed pulses; ``free_at``
    picks each pulse's free precession and ``crushed_at`` lists the crushed pulses."""

    blocks: Callable[[Mapping[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    free_at: torch.Tensor
    crushed_at: torch.Tensor


def _pattern_blocks(alpha: torch.Tensor, TRF: torch.Tensor, crushed: torch.Tensor, TR: float) -> _PatternBlocks:
    """The blocks of one pattern (alpha, TRF: (N,) float64; crushed: (N,) bool). Free precession is computed once
    per distinct free time (the pulse durations take few values), unless TRF requires grad (sequence design: every
    pulse its own); crushed pulses only where they occur."""
    t = torch.where(crushed, torch.full_like(TRF, TR / 2), (TR - TRF) / 2)
    if TRF.requires_grad:
        t_free, free_at = t, torch.arange(len(t), device=t.device)
    else:
        t_free, free_at = torch.unique(t, return_inverse=True)
    crushed_at = crushed.nonzero()[:, 0]

    def blocks(c: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        col = {k: v[:, None] for k, v in c.items()}
        return (pulse_generator(col, alpha, TRF), free_precession(col, t_free),
                crushed_pulse(col, alpha[crushed_at], TRF[crushed_at]))

    return _PatternBlocks(blocks, free_at, crushed_at)


def _dual_blocks(blocks: Callable, values: Mapping[str, torch.Tensor], parameterization: Parameterization,
                 wrt: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """Blocks and their derivatives w.r.t. ``wrt`` stacked along a new leading axis (1 + len(wrt))."""

    def f(v: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return blocks(parameterization.to_canonical(v))

    primal = f(values)
    if not wrt:
        return tuple(p.unsqueeze(0) for p in primal)
    directions = {k: torch.stack([torch.full_like(v, float(k == w)) for w in wrt]) for k, v in values.items()}
    tangents = torch.func.vmap(lambda d: torch.func.jvp(f, (dict(values),), (d,))[1])(directions)
    return tuple(torch.cat([p.unsqueeze(0), t]) for p, t in zip(primal, tangents))


def _pattern_signal(pattern: _PatternBlocks, values: Mapping[str, torch.Tensor], parameterization: Parameterization,
                    wrt: Sequence[str]) -> torch.Tensor:
    """Dual stack of the (xf, yf) samples of one pattern, shape (1 + P, B, N, 2)."""
    generator, free, crush = _dual_blocks(pattern.blocks, values, parameterization, wrt)
    pulse = dexpm(generator)[..., _REDUCED, :][..., _REDUCED]
    pulse[:, :, pattern.crushed_at] = crush
    pulse = pulse * _RZ_PI.to(pulse.device)  # Rz(pi) acts first: negate the (xf, yf) columns
    free = free[:, :, pattern.free_at]
    step = dmm(free, dmm(pulse, free))  # (D, B, N, 5, 5)
    n = step.shape[2]
    phi = dcumprod(step[:, :, 1:])  # Phi_i = P_i ... P_2, (D, B, N-1, 5, 5)
    cycle = dmm(step[:, :, 0], phi[:, :, -1]) if n > 1 else step[:, :, 0]
    boundary = torch.diag(torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0], dtype=cycle.dtype, device=cycle.device))
    lhs = cycle - torch.cat([boundary.expand_as(cycle[:1]), torch.zeros_like(cycle[1:])])
    rhs = torch.zeros_like(cycle[..., :1])
    rhs[0, ..., 4, 0] = 1.0
    m1 = dsolve(lhs, rhs)  # (D, B, 5, 1)
    states = dmm(phi, m1[:, :, None].expand(-1, -1, n - 1, -1, -1))
    states = torch.cat([m1[:, :, None], states], dim=2)
    return states[..., :2, 0]


def pattern_signal(alpha: torch.Tensor, TRF: torch.Tensor, crushed: torch.Tensor, TR: float,
                   values: Mapping[str, torch.Tensor], parameterization: Parameterization,
                   wrt: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Signal (B, N) complex128 at M0 = 1 of one pattern given as tensors, and its derivatives w.r.t. ``wrt``
    (B, N, len(wrt)); differentiable with autograd in alpha (rad) and TRF (s) as well (crbnet.design)."""
    xy = _pattern_signal(_pattern_blocks(alpha, TRF, crushed, TR), values, parameterization, wrt)
    s = torch.complex(xy[..., 0], xy[..., 1])
    return s[0], s[1:].permute(1, 2, 0)


def _canonical_directions(parameterization: Parameterization, values: Mapping[str, torch.Tensor],
                          wrt: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Canonical parameters (B, 8) and the derivative directions d canonical / d wrt_k (B, K, 8), float64 numpy
    (one vmapped forward-mode pass over the K unit tangents)."""
    canonical = parameterization.to_canonical(values)
    c = torch.stack([canonical[n] for n in CANONICAL], -1)
    if not wrt:
        return c.detach().cpu().numpy(), np.zeros((c.shape[0], 0, len(CANONICAL)))
    tangents = {k: torch.stack([torch.ones_like(x) if k == w else torch.zeros_like(x) for w in wrt])
                for k, x in values.items()}
    d = torch.func.vmap(lambda t: torch.func.jvp(parameterization.to_canonical, (dict(values),), (t,))[1])(tangents)
    directions = torch.stack([d[n] for n in CANONICAL], -1).transpose(0, 1)  # (K, B, 8) -> (B, K, 8)
    return c.detach().cpu().numpy(), directions.detach().cpu().numpy()


class QMTSignalModel:
    """Hybrid-state qMT fingerprints of a sequence in a chosen parameterization, with exact Jacobians.

    Two implementations compute the same signal and Jacobian (they agree to about 1e-13 relative):

    - ``"torch"``: batched torch on dual stacks (this module); the reference, runs on a GPU and keeps ``signal()``
      differentiable with autograd;
    - ``"numba"``: a fused CPU kernel (crbnet.signals.qmt_kernel) that runs one fingerprint's whole pulse chain in
      small thread-local arrays, about 5x (signal) and 15x (8-parameter Jacobian) faster than torch on a CPU
      (benchmarks/simulate.py); it uses ``torch.get_num_threads()`` threads, computes on the CPU (results come back
      on ``device``), cannot be differentiated with autograd and compiles once per checkout (about 30 to 60 s,
      then loaded from numba's on-disk cache in about a second).

    ``kernel="auto"`` (default) takes numba on a CPU and torch on a GPU or whenever an input tensor requires grad.
    The environment variable CRBNET_QMT_KERNEL (auto | numba | torch) replaces ``"auto"``; an explicit constructor
    choice wins over it. ``"numba"`` with an input that requires grad is a ValueError.
    """

    def __init__(self, sequence: QMTSequence, parameterization: Parameterization,
                 device: torch.device | str = "cpu", kernel: str = "auto") -> None:
        self.sequence = sequence
        self.parameterization = parameterization
        self.device = torch.device(device)
        self.kernel = kernel_choice(kernel, KERNEL_ENV)
        self._patterns = [_pattern_blocks(*(torch.as_tensor(a, device=self.device) for a in (p.alpha, p.TRF, p.crushed)),
                                          sequence.TR) for p in sequence.patterns]
        self._pulses = qmt_kernel.pulses(sequence)

    @property
    def chunk_entries(self) -> int:
        """Dual-stack entries (fingerprints x (1 + P)) simulated at once. With the numba kernel 4096 (it keeps only
        per-thread scratch; large chunks keep every thread busy); with torch on a CPU 128 (about 2.5 MB each with
        temporaries at 1142 pulses; more only adds memory traffic); on a GPU as many as a quarter of its free
        memory holds at that size (devices.batch_entries; not yet measured on a GPU)."""
        if self.kernel == "numba" or (self.kernel == "auto" and self.device.type == "cpu"):
            return 4096
        return batch_entries(self.device, 2.5e6 * self.sequence.n_samples / 1142, 128)

    @property
    def n_samples(self) -> int:
        return self.sequence.n_samples

    def _as_tensors(self, values: Mapping[str, object]) -> dict[str, torch.Tensor]:
        names = self.parameterization.names
        out = {n: torch.as_tensor(values[n], dtype=torch.float64, device=self.device).reshape(-1) for n in names}
        return dict(zip(names, torch.broadcast_tensors(*out.values())))

    def uses_numba(self, values: Mapping[str, torch.Tensor]) -> bool:
        """Whether ``simulate`` takes the numba kernel for these (tensor) values (see the class docstring)."""
        return takes_numba(self.kernel, self.device, values)

    def simulate(self, values: Mapping[str, object], wrt: Sequence[str] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """Signal at M0 = 1, (B, Ns) complex128, and its derivatives w.r.t. ``wrt``, (B, Ns, len(wrt)).

        ``values`` maps every parameter of the parameterization to a scalar or a (B,) array (SI units).
        """
        unknown = [w for w in wrt if w not in self.parameterization.names]
        if unknown:
            raise ValueError(f"cannot differentiate w.r.t. {unknown[0]}: not in {self.parameterization.names}")
        v = self._as_tensors(values)
        if self.uses_numba(v):
            canonical, directions = _canonical_directions(self.parameterization, v, wrt)
            s, jac = qmt_kernel.fingerprints(canonical, directions, self._pulses, torch.get_num_threads())
            return torch.from_numpy(s).to(self.device), torch.from_numpy(jac).to(self.device)
        parts = [_pattern_signal(p, v, self.parameterization, wrt) for p in self._patterns]
        xy = torch.cat(parts, dim=2)  # (D, B, Ns, 2)
        s = torch.complex(xy[..., 0], xy[..., 1])
        return s[0], s[1:].permute(1, 2, 0)

    def signal(self, values: Mapping[str, object]) -> torch.Tensor:
        """Fingerprints at M0 = 1, (B, Ns) complex128; differentiable with autograd (inputs that require grad take
        the torch path)."""
        return self.simulate(values)[0]
