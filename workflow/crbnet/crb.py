"""Fisher information and Cramer-Rao bounds (physics.md section 3).

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


def crb_from_fisher(f: torch.Tensor) -> torch.Tensor:
    """Diagonal of the inverse Fisher matrices (B, K); inf where F is numerically singular (non-identifiable)."""
    d = f.diagonal(dim1=-2, dim2=-1).clamp_min(torch.finfo(f.dtype).tiny).sqrt()
    scaled = f / (d[..., :, None] * d[..., None, :])  # Jacobi scaling for conditioning
    chol, info = torch.linalg.cholesky_ex(scaled)
    inv_diag = torch.cholesky_inverse(chol).diagonal(dim1=-2, dim2=-1) / d**2
    eig = torch.linalg.eigvalsh(scaled)
    singular = (info != 0) | (eig[..., 0] <= 1e-14 * eig[..., -1])
    return torch.where(singular[..., None], torch.full_like(inv_diag, torch.inf), inv_diag)


def unit_crb(signal: torch.Tensor, jacobian: torch.Tensor, basis: torch.Tensor | None = None) -> torch.Tensor:
    """CRBs of theta_1..theta_P (B, P) at M0 = 1, sigma = 1; M0 enters the Fisher matrix as a nuisance."""
    return crb_from_fisher(fisher(signal, jacobian, basis))[..., 2:]


def scale_crb(crb_unit: torch.Tensor, M0: torch.Tensor | complex, sigma: torch.Tensor | float) -> torch.Tensor:
    """CRB at a given complex M0 and noise level: ``crb_unit * sigma^2 / |M0|^2`` (scalars or one per row)."""
    factor = torch.as_tensor(sigma, dtype=torch.float64) ** 2 / torch.as_tensor(M0).abs().to(torch.float64) ** 2
    return crb_unit * factor.to(crb_unit).unsqueeze(-1)
