"""Fisher information and Cramer-Rao bounds (docs/model.md, section 3).

Measurement ``y = M0 s(theta) + n`` with circular complex Gaussian noise of variance sigma^2 per real channel.
Real unknowns ``(Re M0, Im M0, theta_1..theta_P)``; Jacobian columns ``s, i s, M0 ds/dtheta_p``. Everything is
computed at M0 = 1 and sigma = 1 ("unit" CRBs) in float64 and rescaled by ``sigma^2 / |M0|^2``.
"""

from __future__ import annotations

import torch


def fisher(signal: torch.Tensor, jacobian: torch.Tensor, basis: torch.Tensor | None = None) -> torch.Tensor:
    """Unit Fisher matrices (B, P + 2, P + 2), M0 real/imag first.

    signal (B, Ns) and jacobian (B, Ns, P) are at M0 = 1. With ``basis`` (Ns, r, orthonormal columns) the
    bound is for the compressed coefficients ``U^H s`` instead of the full fingerprint.
    """
    columns = torch.cat([signal[..., None], 1j * signal[..., None], jacobian], dim=-1)
    if basis is not None:
        columns = basis.conj().T.to(columns) @ columns
    return (columns.conj().transpose(-1, -2) @ columns).real


# A Jacobian column whose norm is below ZERO_COLUMN times the largest column's is round-off of an exact zero (in SI
# units healthy columns of the qMT model span about 8 decades: omega0 ~1e-3, T2s ~1e4 per unit). After Jacobi
# scaling, a direction with a relative eigenvalue below SINGULAR_EIGENVALUE is unidentifiable, and so is every
# parameter whose squared weight in such directions exceeds NULL_WEIGHT.
ZERO_COLUMN = 1e-13
SINGULAR_EIGENVALUE = 1e-14
NULL_WEIGHT = 1e-8


def crb_from_fisher(f: torch.Tensor) -> torch.Tensor:
    """Diagonal of the inverse Fisher matrices (B, K) with unidentifiable parameters handled.

    A parameter is unidentifiable when it has weight in the null space of F: a zero Jacobian column (up to
    round-off, ``ZERO_COLUMN``), or columns
    that are collinear with others (m0s = 0 hides Rx and T2s; Rx = 0 makes m0s a scale like M0). Those parameters
    get CRB = inf. Every other parameter gets ``(F^+)_kk``, the CRB of the model reduced to its identifiable
    combinations: a parameter with no effect is dropped, and of a collinear pair the combination that acts on the
    signal stays unknown (Stoica and Marzetta, IEEE TSP 2001). Where F is regular this is ``(F^-1)_kk``.
    """
    norm = f.diagonal(dim1=-2, dim2=-1).clamp_min(0).sqrt()
    live = norm > ZERO_COLUMN * norm.amax(dim=-1, keepdim=True)
    f = f * (live[..., :, None] & live[..., None, :])  # zero columns exactly zero
    d = torch.where(live, norm, torch.ones_like(norm))
    scaled = f / (d[..., :, None] * d[..., None, :])  # Jacobi scaling for conditioning
    eig, vec = torch.linalg.eigh(scaled)
    null = eig <= SINGULAR_EIGENVALUE * eig[..., -1:].clamp_min(torch.finfo(f.dtype).tiny)
    chol, info = torch.linalg.cholesky_ex(scaled)
    singular = (info != 0) | null.any(dim=-1)
    eye = torch.eye(f.shape[-1], dtype=f.dtype, device=f.device)
    chol = torch.where(singular[..., None, None], eye, chol)  # singular rows are inverted below
    inv_diag = torch.cholesky_inverse(chol).diagonal(dim1=-2, dim2=-1).clone()
    if singular.any():
        e, v, z = eig[singular], vec[singular], null[singular]
        pinv_diag = (v**2 / torch.where(z, torch.ones_like(e), e)[..., None, :] * ~z[..., None, :]).sum(-1)
        weight = (v**2 * z[..., None, :]).sum(-1)  # each parameter's squared weight in the null space
        inv_diag[singular] = torch.where(weight > NULL_WEIGHT, torch.full_like(pinv_diag, torch.inf), pinv_diag)
    return inv_diag / d**2


def unit_crb(signal: torch.Tensor, jacobian: torch.Tensor, basis: torch.Tensor | None = None) -> torch.Tensor:
    """CRBs of theta_1..theta_P (B, P) at M0 = 1, sigma = 1; M0 enters the Fisher matrix as a nuisance."""
    return crb_from_fisher(fisher(signal, jacobian, basis))[..., 2:]


def scale_crb(crb_unit: torch.Tensor, M0: torch.Tensor | complex, sigma: torch.Tensor | float) -> torch.Tensor:
    """CRB at a given complex M0 and noise level: ``crb_unit * sigma^2 / |M0|^2`` (scalars or one per row)."""
    factor = torch.as_tensor(sigma, dtype=torch.float64) ** 2 / torch.as_tensor(M0).abs().to(torch.float64) ** 2
    return crb_unit * factor.to(crb_unit).unsqueeze(-1)
