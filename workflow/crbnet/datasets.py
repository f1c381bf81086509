"""Training examples: parameters, SVD coefficients and unit CRBs, with a fresh complex M0 and noise per draw.

Random draws come from CPU generators seeded by (seed, stream, epoch), so a run is reproducible and gives the
same numbers on CPU and CUDA; tensors are moved to the target device after drawing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch

from crbnet.basis import Basis, BasisError
from crbnet.parameters import ParameterError


def generator(seed: int, stream: str, epoch: int = 0) -> torch.Generator:
    """A CPU generator for one named random stream of one epoch, derived from the experiment seed."""
    digest = hashlib.sha256(f"{seed}/{stream}/{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


@dataclass(frozen=True)
class NoiseModel:
    """Complex scale M0 and noise level per example.

    Either ``M0_magnitude`` (|M0| ~ U[lo, hi]) with a fixed ``sigma`` (Zhang: U[0.1, 1], sigma 0.01), or
    ``snr`` (|M0| / sigma ~ U[lo, hi], |M0| = 1; Mao: U[10, 50]). The phase of M0 is uniform in ``phase``
    (rad). sigma is the noise std per real channel."""

    M0_magnitude: tuple[float, float] | None = None
    sigma: float | None = None
    snr: tuple[float, float] | None = None
    phase: tuple[float, float] = (0.0, 2 * math.pi)

    @classmethod
    def from_config(cls, cfg: Mapping) -> NoiseModel:
        def pair(key: str, default: tuple[float, float] | None = None) -> tuple[float, float] | None:
            value = cfg.get(key, default)
            if value is None:
                return None
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise ValueError(f"noise: {key} must be a pair [lo, hi], got {value!r}")
            return float(value[0]), float(value[1])

        noise = cls(pair("M0_magnitude"), cfg.get("sigma"), pair("snr"), pair("phase", (0.0, 2 * math.pi)))
        if (noise.snr is None) == (noise.M0_magnitude is None or noise.sigma is None):
            raise ValueError("noise: give either snr: [lo, hi] or both M0_magnitude: [lo, hi] and sigma")
        for name, (lo, hi) in (("snr", noise.snr or (1, 1)), ("M0_magnitude", noise.M0_magnitude or (1, 1))):
            if not 0 < lo <= hi:
                raise ValueError(f"noise: {name} range must satisfy 0 < lo <= hi, got [{lo}, {hi}]")
        if noise.sigma is not None and not noise.sigma > 0:
            raise ValueError(f"noise: sigma must be positive, got {noise.sigma}")
        return noise

    def draw(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Complex M0 (n,) complex128 and sigma (n,) float64."""
        u = torch.rand(2, n, generator=gen, dtype=torch.float64)
        phase = self.phase[0] + (self.phase[1] - self.phase[0]) * u[1]
        if self.snr is not None:
            magnitude = torch.ones(n, dtype=torch.float64)
            sigma = 1.0 / (self.snr[0] + (self.snr[1] - self.snr[0]) * u[0])
        else:
            lo, hi = self.M0_magnitude
            magnitude = lo + (hi - lo) * u[0]
            sigma = torch.full((n,), float(self.sigma), dtype=torch.float64)
        return torch.polar(magnitude, phase), sigma


def complex_noise(shape: Sequence[int], sigma: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Circular complex Gaussian noise with std ``sigma`` (broadcast over the last axis) per real channel."""
    z = torch.randn(*shape, 2, generator=gen, dtype=torch.float64)
    return torch.complex(z[..., 0], z[..., 1]) * sigma[..., None]


@dataclass
class FingerprintSet:
    """Noise-free examples: ``parameters`` (n, Pe) float64 in SI units, ``coefficients`` (n, r) complex64 at
    M0 = 1, and ``crb`` (n, Pe) float64 unit CRBs (M0 = 1, sigma = 1) of the estimated parameters, of the full
    fingerprint or of the coefficients (``crb_domain``)."""

    names: tuple[str, ...]
    units: tuple[str, ...]
    parameters: torch.Tensor
    coefficients: torch.Tensor
    crb: torch.Tensor
    crb_domain: str = "fingerprint"

    def __len__(self) -> int:
        return self.parameters.shape[0]

    def to(self, device: torch.device) -> FingerprintSet:
        return FingerprintSet(self.names, self.units, self.parameters.to(device), self.coefficients.to(device),
                              self.crb.to(device), self.crb_domain)

    def subset(self, rows: torch.Tensor | slice) -> FingerprintSet:
        return FingerprintSet(self.names, self.units, self.parameters[rows], self.coefficients[rows], self.crb[rows],
                              self.crb_domain)

    def noisy(self, M0: torch.Tensor, sigma: torch.Tensor, gen: torch.Generator,
              realizations: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Noisy coefficients ``M0 c + n`` and CRBs rescaled by sigma^2/|M0|^2.

        M0 and sigma are per example (n,). With ``realizations`` R, the result has a leading axis
        (R, n, r) of independent noise with the same M0; the CRBs stay (n, Pe)."""
        shape = tuple(self.coefficients.shape) if realizations is None else (realizations, *self.coefficients.shape)
        noise = complex_noise(shape, sigma, gen)  # drawn on the CPU: the same numbers on every device
        if self.coefficients.device.type == "cuda":  # pinned, so the copy overlaps the GPU's work
            noise = noise.pin_memory().to(self.coefficients.device, non_blocking=True)
        M0, sigma = M0.to(self.coefficients.device), sigma.to(self.coefficients.device)
        y = (M0[:, None] * self.coefficients.to(torch.complex128) + noise).to(self.coefficients.dtype)
        return y, self.crb * (sigma**2 / M0.abs() ** 2)[:, None]


def load_examples(path: str | Path, basis: Basis, estimate: Sequence[str], chunk: int = 8192) -> FingerprintSet:
    """Examples of a simulated dataset file on ``basis``; ``estimate`` names the network outputs.

    Coefficients are read when the file was simulated with this basis, else its fingerprints are projected.
    The CRBs are those of the coefficients (``crb_coefficients``, the bound for an estimator that sees only the
    coefficients), which the file must hold for this basis: a file simulated with another basis, or before any,
    has the bound of other data (the full fingerprint's is up to 2.9x smaller) and is refused with both hashes.
    All parameters of the file's parameterization were in the Fisher matrix, so the nuisance parameters are
    accounted for; only the estimated columns are kept."""
    with h5py.File(path, "r") as f:
        names = [str(n) for n in f["parameters"].attrs["names"]]
        units = dict(zip(names, (str(u) for u in f["parameters"].attrs["units"])))
        if str(f.attrs["sequence_sha256"]) != basis.sequence_sha256:
            raise BasisError(f"{path} was simulated with another sequence than the basis was built from")
        missing = [e for e in estimate if e not in names]
        if missing:
            raise ParameterError(f"cannot estimate {', '.join(missing)}: {path} has parameters {', '.join(names)}")
        same_basis = str(f.attrs.get("basis_sha256", "")) == basis.sha256
        if same_basis and "coefficients" in f:
            coefficients = f["coefficients"][()]
        elif "signals" in f:
            signals = f["signals"]
            coefficients = np.concatenate([basis.project(signals[i: i + chunk].astype(np.complex128))
                                           for i in range(0, signals.shape[0], chunk)])
        else:
            raise BasisError(f"{path} holds neither signals nor coefficients on this basis")
        if "crb" not in f:
            raise BasisError(f"{path} holds no CRBs (simulated with crb: false)")
        if not (same_basis and "crb_coefficients" in f):
            raise BasisError(f"{path} holds no CRBs of basis {basis.sha256[:12]}'s coefficients (its basis: "
                             f"{str(f.attrs.get('basis_sha256', ''))[:12] or 'none'}); simulate it with that basis")
        domain = "coefficients"
        crb = f["crb_coefficients"][()]
        cols = [names.index(e) for e in estimate]
        parameters = f["parameters"][()][:, cols]
    return FingerprintSet(tuple(estimate), tuple(units[e] for e in estimate), torch.as_tensor(parameters),
                          torch.as_tensor(coefficients.astype(np.complex64)), torch.as_tensor(crb[:, cols]), domain)


def read_parameters(path: str | Path) -> pd.DataFrame:
    """All parameter values of a dataset file, one column per parameter (SI units), one row per fingerprint."""
    with h5py.File(path, "r") as f:
        return pd.DataFrame(f["parameters"][()], columns=[str(n) for n in f["parameters"].attrs["names"]])
