"""The fused numba MRF-FISP kernel against the torch EPG reference (signal and T1, T2, B1 Jacobian) and the
isochromat simulation."""

from __future__ import annotations

import dataclasses
import numpy as np
import pytest
import torch

from crbnet.signals.fisp import KERNEL_ENV, FISPSignalModel
from crbnet.parameters import PARAMETERIZATIONS
from test_fisp import _short, isochromats

FISP = PARAMETERIZATIONS["fisp"]


def _values(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"T1": rng.uniform(0.2, 3.0, n), "T2": rng.uniform(0.01, 0.4, n), "B1": rng.uniform(0.6, 1.4, n)}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize("n, states, batch", [(40, 41, 7), (120, 12, 1), (60, 5, 13)])
def test_numba_equals_torch_signal_and_jacobian(n, states, batch):
    seq = dataclasses.replace(_short(n, seed=n), epg_states=states)
    values = _values(batch, seed=batch)
    for wrt in (("T1", "T2", "B1"), ("B1", "T1"), ("T2",)):
        s_ref, jac_ref = FISPSignalModel(seq, FISP, kernel="torch").simulate(values, wrt)
        s, jac = FISPSignalModel(seq, FISP, kernel="numba").simulate(values, wrt)
        assert s.dtype == s_ref.dtype == torch.complex128 and jac.shape == jac_ref.shape == (batch, n, len(wrt))
        assert _relative(s, s_ref) <= 1e-12  # truncated to few states: the same truncation as the reference
        for k in range(len(wrt)):
            assert _relative(jac[..., k], jac_ref[..., k]) <= 1e-10, wrt[k]


def test_numba_matches_isochromats_and_complex64():
    seq = _short()
    s, _ = FISPSignalModel(seq, FISP, kernel="numba").simulate({"T1": 0.8, "T2": 0.05, "B1": 1.1})
    np.testing.assert_allclose(s[0].numpy(), isochromats(0.8, 0.05, 1.1, seq, 4 * seq.n_samples), atol=1e-12)
    s32, jac32 = FISPSignalModel(seq, FISP, dtype=torch.complex64, kernel="numba").simulate(_values(3, 1), ("T2",))
    assert s32.dtype == jac32.dtype == torch.complex64


def test_fisp_kernel_choice(monkeypatch):
    seq, values = _short(8), {k: torch.as_tensor(v) for k, v in _values(2, 0).items()}
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    assert FISPSignalModel(seq, FISP).kernel == "auto"
    monkeypatch.setenv(KERNEL_ENV, "torch")
    assert FISPSignalModel(seq, FISP).kernel == "torch" and FISPSignalModel(seq, FISP, kernel="numba").kernel == "numba"
    monkeypatch.setenv(KERNEL_ENV, "cython")
    with pytest.raises(ValueError, match="auto, numba, torch"):
        FISPSignalModel(seq, FISP)
    monkeypatch.delenv(KERNEL_ENV)
    grad = dict(values, T2=values["T2"].clone().requires_grad_())
    signal = FISPSignalModel(seq, FISP).signal(grad)  # auto: autograd takes the torch path
    signal.imag.sum().backward()
    assert grad["T2"].grad is not None and torch.all(grad["T2"].grad != 0)
    with pytest.raises(ValueError, match="autograd"):
        FISPSignalModel(seq, FISP, kernel="numba").signal(grad)
