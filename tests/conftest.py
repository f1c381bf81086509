from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from crbnet.parameters import PARAMETERIZATIONS, WHITE_MATTER
from crbnet.sequences import Pattern, QMTSequence

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
DEFAULT_SEQUENCE = ROOT / "config" / "sequences" / "hybrid_state_default.yaml"
TR = 3.5e-3


def short_sequence(n: int = 16, seed: int = 0, crushed_first: bool = True) -> QMTSequence:
    """A short train: crushed 180 deg inversion, then random flips (incl. 0 and > 90 deg) and durations."""
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(0, np.deg2rad(130), n)
    alpha[3] = 0.0
    TRF = rng.uniform(1e-4, 5e-4, n)
    crushed = np.zeros(n, dtype=bool)
    if crushed_first:
        alpha[0], TRF[0], crushed[0] = np.pi, 5e-4, True
    return QMTSequence(TR=TR, patterns=(Pattern(alpha, TRF, crushed),))


@pytest.fixture
def canonical():
    return PARAMETERIZATIONS["canonical"]


@pytest.fixture
def apparent_t1():
    return PARAMETERIZATIONS["apparent_t1"]


# Parameter sets that exercise every term: off-resonance, B1 error, strong/weak MT, short T2s.
CANONICAL_CASES = [
    dict(WHITE_MATTER),
    {"m0s": 0.1, "R1f": 0.8, "R2f": 20.0, "Rx": 40.0, "R1s": 1.5, "T2s": 6e-6, "omega0": 700.0, "B1": 0.8},
    {"m0s": 0.3, "R1f": 0.3, "R2f": 8.0, "Rx": 5.0, "R1s": 4.0, "T2s": 22e-6, "omega0": -1500.0, "B1": 1.25},
]


def as_tensors(values: dict) -> dict[str, torch.Tensor]:
    return {k: torch.tensor(float(v), dtype=torch.float64) for k, v in values.items()}


def toy_examples(n: int = 512, seed: int = 0, rank: int = 4, n_samples: int = 32):
    """A small two-parameter problem for the learning code: s(t) = exp(-R2f t + i omega0 t) on t in [0, 0.1] s,
    its SVD basis and FingerprintSet (unit CRBs from the analytic Jacobian, M0 a nuisance)."""
    from crbnet.basis import svd_basis
    from crbnet.crb import unit_crb
    from crbnet.datasets import FingerprintSet

    rng = np.random.default_rng(seed)
    p = np.stack([rng.uniform(10.0, 40.0, n), rng.uniform(-20.0, 20.0, n)], axis=1)
    t = np.linspace(0.0, 0.1, n_samples)
    s = np.exp((-p[:, :1] + 1j * p[:, 1:]) * t)
    jac = np.stack([-t * s, 1j * t * s], axis=-1)
    basis = svd_basis([s], rank, "toy")
    crb = unit_crb(torch.as_tensor(s), torch.as_tensor(jac))
    examples = FingerprintSet(("R2f", "omega0"), ("1/s", "rad/s"), torch.as_tensor(p),
                              torch.as_tensor(basis.project(s).astype(np.complex64)), crb)
    return basis, examples
