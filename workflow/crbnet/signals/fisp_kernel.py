"""Fused numba CPU kernel of the MRF-FISP EPG model (docs/model.md, section 5): signal and exact T1, T2, B1 tangents.

The same real recursion as crbnet.signals.fisp.epg_fisp (P = -i F+, M = -i F-, Z per dephasing order k < K) with
its forward-mode tangents, one fingerprint per ``numba.prange`` iteration. Per excitation: rotation by B1 alpha
(the B1 tangent picks up the derivatives of the rotation coefficients), sample of P_0, relaxation over TR (the T1
and T2 tangents pick up d exp(-TR/T) / dT) and one unit of dephasing. The dephasing moves no data: P and M live in
buffers of N + K + 1 entries whose window start moves down (P) or up (M) by one per excitation, so the shift
``P_k <- P_{k-1}, M_k <- M_{k+1}, P_0 <- -M_1`` writes one number.

Python interface: ``fingerprints``; FISPSignalModel chooses between this kernel and its torch path.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from crbnet.sequences import FISPSequence

TANGENTS = ("T1", "T2", "B1")  # the kernel's tangent order


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _epg(T1: np.ndarray, T2: np.ndarray, B1: np.ndarray, flip: np.ndarray, TR: np.ndarray, TE: float, TI: float,
         eta: float, K: int, tangents: bool, signal: np.ndarray, jac: np.ndarray) -> None:
    """Fill ``signal`` (B, N) with -i F+_0 at TE and, when ``tangents``, ``jac`` (B, N, 3) with its derivatives
    w.r.t. T1, T2 (s) and B1."""
    N = flip.size
    D = 4 if tangents else 1  # value and the T1, T2, B1 tangents
    for b in numba.prange(T1.size):
        t1, t2, b1 = T1[b], T2[b], B1[b]
        P = np.zeros((D, N + K + 1))
        M = np.zeros((D, N + K + 1))
        Z = np.zeros((D, K))
        p0, m0 = N, 0  # window starts: P_k = P[:, p0 + k], M_k = M[:, m0 + k]
        e_ti = math.exp(-TI / t1)
        Z[0, 0] = 1.0 - e_ti * (1.0 + eta)
        e_te = math.exp(-TE / t2)
        if tangents:
            Z[1, 0] = -(1.0 + eta) * e_ti * TI / (t1 * t1)
        for n in range(N):
            a = flip[n] * b1
            sh, ch = math.sin(0.5 * a), math.cos(0.5 * a)
            c, s, sn, cs = ch * ch, sh * sh, math.sin(a), math.cos(a)
            hs = 0.5 * sn
            for d in range(D - 1, -1, -1):  # tangents first: the B1 one needs the unrotated values
                for k in range(K):
                    p, m, z = P[d, p0 + k], M[d, m0 + k], Z[d, k]
                    P[d, p0 + k] = c * p + s * m - sn * z
                    M[d, m0 + k] = s * p + c * m + sn * z
                    Z[d, k] = hs * (p - m) + cs * z
                if d == 3:  # d(rotation)/dB1 applied to the values before rotation
                    da = flip[n]
                    dc, dsn, dcs = -hs * da, cs * da, -sn * da
                    for k in range(K):
                        p, m, z = P[0, p0 + k], M[0, m0 + k], Z[0, k]
                        P[3, p0 + k] += dc * (p - m) - dsn * z
                        M[3, m0 + k] += dc * (m - p) + dsn * z
                        Z[3, k] += 0.5 * dsn * (p - m) + dcs * z
            signal[b, n] = P[0, p0] * e_te
            e1, e2 = math.exp(-TR[n] / t1), math.exp(-TR[n] / t2)
            if tangents:
                jac[b, n, 0] = P[1, p0] * e_te
                jac[b, n, 1] = P[2, p0] * e_te + P[0, p0] * e_te * TE / (t2 * t2)
                jac[b, n, 2] = P[3, p0] * e_te
                de1, de2 = e1 * TR[n] / (t1 * t1), e2 * TR[n] / (t2 * t2)
                for k in range(K):  # T1: d(Z e1 + k0 (1 - e1)) = dZ e1 + (Z - k0) de1; T2: d(P e2) = dP e2 + P de2
                    Z[1, k] = Z[1, k] * e1 + Z[0, k] * de1
                    P[2, p0 + k] = P[2, p0 + k] * e2 + P[0, p0 + k] * de2
                    M[2, m0 + k] = M[2, m0 + k] * e2 + M[0, m0 + k] * de2
                Z[1, 0] -= de1
                for d in (1, 3):
                    for k in range(K):
                        P[d, p0 + k] *= e2
                        M[d, m0 + k] *= e2
                for d in (2, 3):
                    for k in range(K):
                        Z[d, k] *= e1
            for k in range(K):
                P[0, p0 + k] *= e2
                M[0, m0 + k] *= e2
                Z[0, k] *= e1
            Z[0, 0] += 1.0 - e1
            for d in range(D):  # dephasing: the new P_0 is -M_1; the windows move; M_{K-1} <- 0 (never written)
                P[d, p0 - 1] = -M[d, m0 + 1]
            p0 -= 1
            m0 += 1


def fingerprints(T1: np.ndarray, T2: np.ndarray, B1: np.ndarray, sequence: FISPSequence, states: int,
                 tangents: bool, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """-i F+_0 at TE, (B, N) float64 (the signal is i times it), and, when ``tangents``, its derivatives w.r.t.
    ``TANGENTS`` (B, N, 3) (else (B, N, 0)), for T1, T2 (s) and B1 as (B,) arrays, on ``threads`` threads (at most
    numba's NUMBA_NUM_THREADS)."""
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    T1, T2, B1 = (np.ascontiguousarray(v, dtype=np.float64) for v in (T1, T2, B1))
    n = sequence.n_samples
    signal = np.empty((T1.size, n))
    jac = np.empty((T1.size, n, 3 if tangents else 0))
    _epg(T1, T2, B1, np.ascontiguousarray(sequence.flip_angle, dtype=np.float64),
         np.ascontiguousarray(sequence.TR, dtype=np.float64), float(sequence.TE), float(sequence.TI),
         float(sequence.inversion_efficiency), int(states), tangents, signal, jac)
    return signal, jac
