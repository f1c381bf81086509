"""MRF-FISP signal model with extended phase graphs (docs/model.md, section 5).

States F+_k, F-_k, Z_k (k = 0..K-1) are the coefficients of exp(i k theta) in (M+, M-, Mz) over the dephasing
angle theta. Per excitation n: rotation by B1 alpha_n about x, relaxation over TE, sample F+_0, relaxation over
TR_n - TE, and one unit of dephasing (F+ up, F- down, F+_0 = conj(F-_0)). An inversion of efficiency eta and
recovery over TI come first. Signals are at M0 = 1; Jacobians are exact (forward mode through the recursion).
The fused numba kernel crbnet.signals.fisp_kernel computes the same signal and Jacobian, see ``FISPSignalModel``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from crbnet.signals import fisp_kernel, kernel_choice, takes_numba
from crbnet.parameters import Parameterization
from crbnet.devices import batch_entries
from crbnet.sequences import FISPSequence


def epg_fisp(T1: torch.Tensor, T2: torch.Tensor, B1: torch.Tensor, sequence: FISPSequence,
             states: int | None = None, dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """F+_0 at TE after every excitation, (B, N) of ``dtype`` (complex64 or complex128), for T1, T2 (s) and B1
    given as (B,) tensors.

    All pulses have phase 0 and the model has no off-resonance, so starting from a real Z every F+_k and F-_k stays
    purely imaginary and every Z_k real: the recursion runs on real P = -i F+, M = -i F-, Z (half the work of
    complex states), with the rotation P' = c P + s M - sin(a) Z, M' = s P + c M + sin(a) Z,
    Z' = sin(a) (P - M) / 2 + cos(a) Z (c = cos^2(a/2), s = sin^2(a/2)) and the shift P_0 = -M_1."""
    K = states or sequence.epg_states
    real = torch.float64 if dtype == torch.complex128 else torch.float32
    T1, T2, B1 = (v.to(real)[None, :] for v in (T1, T2, B1))  # (1, B)
    device = T1.device
    alpha = torch.as_tensor(sequence.flip_angle, dtype=real, device=device)[:, None] * B1  # (N, B)
    TR = torch.as_tensor(sequence.TR, dtype=real, device=device)[:, None]
    c2, s2 = torch.cos(alpha / 2) ** 2, torch.sin(alpha / 2) ** 2
    sa, ca, half_sa = torch.sin(alpha), torch.cos(alpha), 0.5 * torch.sin(alpha)
    e1, e2 = torch.exp(-TR / T1), torch.exp(-TR / T2)  # relaxation over each whole TR, (N, B)
    e1_ti = torch.exp(-sequence.TI / T1)[0]
    batch = T1.shape[1]
    zeros = torch.zeros(batch, K, dtype=real, device=device)
    k0 = torch.zeros(K, dtype=real, device=device)
    k0[0] = 1.0  # recovery acts on Z_0 only
    Z = zeros + k0 * (1.0 - e1_ti[:, None] * (1.0 + sequence.inversion_efficiency))  # -eta, recovery over TI
    P, M = zeros, zeros
    out = []
    for n in range(alpha.shape[0]):
        c, s, sn, hs, cs = (v[n][:, None] for v in (c2, s2, sa, half_sa, ca))
        P, M, Z = c * P + s * M - sn * Z, s * P + c * M + sn * Z, hs * (P - M) + cs * Z
        out.append(P[:, 0])
        r1, r2 = e1[n][:, None], e2[n][:, None]
        P, M, Z = P * r2, M * r2, Z * r1 + k0 * (1.0 - r1)
        P = torch.cat([-M[:, 1:2], P[:, :-1]], dim=1)
        M = torch.cat([M[:, 1:], zeros[:, :1]], dim=1)
    signal = torch.stack(out, dim=1) * torch.exp(-sequence.TE / T2).T  # decay from the pulse to TE
    return torch.complex(torch.zeros_like(signal), signal).to(dtype)


KERNEL_ENV = "CRBNET_FISP_KERNEL"


class FISPSignalModel:
    """MRF-FISP fingerprints of a sequence in the ``fisp`` parameterization (T1, T2, B1), with exact Jacobians.

    Two implementations compute the same signal and Jacobian (to round-off): ``"torch"`` (``epg_fisp`` with
    vmapped forward-mode AD; the reference, runs on a GPU, differentiable with autograd) and ``"numba"`` (the fused
    CPU kernel crbnet.signals.fisp_kernel, in float64 whatever ``dtype``; results come back on ``device``).
    ``kernel="auto"`` (default) takes numba on a CPU and torch on a GPU or when an input requires grad; the
    environment variable CRBNET_FISP_KERNEL (auto | numba | torch) replaces ``"auto"``.
    """

    @property
    def chunk_entries(self) -> int:
        """Fingerprints x (1 + P) simulated at once: 4096 on a CPU (the torch recursion is a Python loop over TRs,
        so large batches amortize it; about 1024 fingerprints with three derivatives measured fastest on 2 cores);
        on a GPU from its free memory, at an estimated 64 complex numbers per sample and entry (states and their
        temporaries; not yet measured on a GPU)."""
        return batch_entries(self.device, 64 * 16 * self.n_samples, 4096)

    def __init__(self, sequence: FISPSequence, parameterization: Parameterization,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.complex128,
                 kernel: str = "auto") -> None:
        if parameterization.name != "fisp":
            raise ValueError(f"MRF-FISP sequences use the fisp parameterization (T1, T2, B1), not {parameterization.name}")
        self.sequence = sequence
        self.parameterization = parameterization
        self.device = torch.device(device)
        self.dtype = dtype
        self.kernel = kernel_choice(kernel, KERNEL_ENV)

    @property
    def n_samples(self) -> int:
        return self.sequence.n_samples

    def _signal(self, v: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return epg_fisp(v["T1"], v["T2"], v["B1"], self.sequence, dtype=self.dtype)

    def simulate(self, values: Mapping[str, object], wrt: Sequence[str] = ()) -> tuple[torch.Tensor, torch.Tensor]:
        """Signal at M0 = 1, (B, N), and its derivatives w.r.t. ``wrt``, (B, N, len(wrt)); values in s."""
        unknown = [w for w in wrt if w not in self.parameterization.names]
        if unknown:
            raise ValueError(f"cannot differentiate w.r.t. {unknown[0]}: not in {self.parameterization.names}")
        real = torch.float64 if self.dtype == torch.complex128 else torch.float32
        v = {n: torch.as_tensor(values[n], dtype=real, device=self.device).reshape(-1)
             for n in self.parameterization.names}
        v = {k: x.clone() for k, x in zip(v, torch.broadcast_tensors(*v.values()))}  # no expanded views (jvp)
        if takes_numba(self.kernel, self.device, v):
            return self._numba(v, wrt)
        signal = self._signal(v)
        if not wrt:
            return signal, signal.new_zeros(*signal.shape, 0)
        directions = {k: torch.stack([torch.full_like(x, float(k == w)) for w in wrt]) for k, x in v.items()}
        tangents = torch.func.vmap(lambda d: torch.func.jvp(self._signal, (v,), (d,))[1])(directions)
        return signal, tangents.permute(1, 2, 0)

    def _numba(self, v: Mapping[str, torch.Tensor], wrt: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``simulate`` through the fused kernel (signal i times the kernel's real output)."""
        T1, T2, B1 = (v[n].detach().cpu().numpy() for n in fisp_kernel.TANGENTS)
        s, jac = fisp_kernel.fingerprints(T1, T2, B1, self.sequence, self.sequence.epg_states, bool(wrt),
                                          torch.get_num_threads())
        jac = np.ascontiguousarray(jac[..., [fisp_kernel.TANGENTS.index(w) for w in wrt]])
        return tuple(torch.from_numpy(1j * x).to(device=self.device, dtype=self.dtype) for x in (s, jac))

    def signal(self, values: Mapping[str, object]) -> torch.Tensor:
        return self.simulate(values)[0]
