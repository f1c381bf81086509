"""The numba qMT kernel against the torch reference path, its own finite differences, and the kernel choice."""

import numpy as np
import pytest
import torch

from conftest import CANONICAL_CASES, TR, short_sequence
from crbnet.signals.qmt import KERNEL_ENV, QMTSignalModel
from crbnet.parameters import PARAMETERIZATIONS
from crbnet.sequences import QMTSequence

CANONICAL = PARAMETERIZATIONS["canonical"]
APPARENT_T1 = PARAMETERIZATIONS["apparent_t1"]
CASES = {
    "canonical": CANONICAL_CASES,  # omega0 = 0 and != 0, B1 = 1, < 1 and > 1
    "apparent_t1": [
        {"m0s": 0.15, "T1": 1.1, "T2f": 0.06, "Rx": 30.0, "T2s": 11e-6, "omega0": 400.0, "B1": 1.1},
        {"m0s": 0.05, "T1": 2.0, "T2f": 0.12, "Rx": 60.0, "T2s": 20e-6, "omega0": 0.0, "B1": 0.75},
        {"m0s": 0.25, "T1": 0.8, "T2f": 0.04, "Rx": 15.0, "T2s": 6e-6, "omega0": -1200.0, "B1": 1.3},
    ],
}


def _batch(pz_name: str, n: int) -> dict[str, np.ndarray]:
    """n fingerprints cycling through the cases of a parameterization, each slightly perturbed."""
    cases = CASES[pz_name]
    rows = [{k: v * (1.0 + 0.03 * i) for k, v in cases[i % len(cases)].items()} for i in range(n)]
    return {k: np.array([r[k] for r in rows]) for k in PARAMETERIZATIONS[pz_name].names}


def _relative_errors(got: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Max-abs error relative to the max-abs value, per fingerprint (axis 0) and Jacobian column (last axis)."""
    return np.abs(got - expected).max(axis=1) / np.abs(expected).max(axis=1)


def _two_patterns() -> QMTSequence:
    return QMTSequence(TR=TR, patterns=(short_sequence(13, seed=1).patterns[0],
                                        short_sequence(8, seed=2, crushed_first=False).patterns[0]))


@pytest.mark.parametrize("pz_name", ["canonical", "apparent_t1"])
@pytest.mark.parametrize("batch", [1, 3, 7])
@pytest.mark.parametrize("sequence", [short_sequence(30, seed=4), _two_patterns()], ids=["crushed", "two_patterns"])
def test_numba_matches_torch_reference(pz_name, batch, sequence):
    pz = PARAMETERIZATIONS[pz_name]
    values = _batch(pz_name, batch)
    s, jac = QMTSignalModel(sequence, pz, kernel="numba").simulate(values, pz.names)
    s_ref, jac_ref = QMTSignalModel(sequence, pz, kernel="torch").simulate(values, pz.names)
    assert s.shape == s_ref.shape == (batch, sequence.n_samples)
    assert jac.shape == jac_ref.shape == (batch, sequence.n_samples, len(pz.names))
    assert _relative_errors(s.numpy()[..., None], s_ref.numpy()[..., None]).max() <= 1e-10
    assert _relative_errors(jac.numpy(), jac_ref.numpy()).max() <= 1e-10


def test_subset_of_parameters_and_signal_only():
    seq, values = short_sequence(20, seed=6), _batch("canonical", 3)
    wrt = ("T2s", "B1", "m0s")
    s, jac = QMTSignalModel(seq, CANONICAL, kernel="numba").simulate(values, wrt)
    s_ref, jac_ref = QMTSignalModel(seq, CANONICAL, kernel="torch").simulate(values, wrt)
    assert _relative_errors(jac.numpy(), jac_ref.numpy()).max() <= 1e-10
    signal = QMTSignalModel(seq, CANONICAL, kernel="numba").signal(values)
    assert _relative_errors(signal.numpy()[..., None], s_ref.numpy()[..., None]).max() <= 1e-10
    assert _relative_errors(signal.numpy()[..., None], s.numpy()[..., None]).max() <= 1e-13  # with or without tangents


def test_jacobian_matches_its_own_central_differences():
    signal_model = QMTSignalModel(short_sequence(25, seed=7), APPARENT_T1, kernel="numba")
    case = CASES["apparent_t1"][0]
    _, jac = signal_model.simulate(case, APPARENT_T1.names)
    for k, name in enumerate(APPARENT_T1.names):
        h = 1e-6 * max(abs(case[name]), 1.0 if name == "omega0" else 0.0)
        plus, minus = signal_model.signal({**case, name: case[name] + h}), signal_model.signal({**case, name: case[name] - h})
        fd = (plus[0] - minus[0]) / (2 * h)
        err = np.linalg.norm(jac[0, :, k].numpy() - fd.numpy()) / np.linalg.norm(jac[0, :, k].numpy())
        assert err <= 1e-6, f"d/d{name}: relative error {err:.2e}"


def test_kernel_choice(monkeypatch):
    seq = short_sequence(6)
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    values = {k: torch.tensor(v, dtype=torch.float64) for k, v in CANONICAL_CASES[0].items()}
    auto = QMTSignalModel(seq, CANONICAL)
    assert auto.kernel == "auto" and auto.uses_numba(values)
    grad = dict(values, R2f=values["R2f"].clone().requires_grad_())
    assert not auto.uses_numba(grad)  # autograd keeps the torch path
    assert not QMTSignalModel(seq, CANONICAL, kernel="torch").uses_numba(values)
    with pytest.raises(ValueError, match="autograd"):
        QMTSignalModel(seq, CANONICAL, kernel="numba").uses_numba(grad)
    monkeypatch.setenv(KERNEL_ENV, "torch")
    assert not QMTSignalModel(seq, CANONICAL).uses_numba(values)  # the environment replaces auto
    assert QMTSignalModel(seq, CANONICAL, kernel="numba").uses_numba(values)  # an explicit choice wins
    monkeypatch.setenv(KERNEL_ENV, "numba")
    assert QMTSignalModel(seq, CANONICAL).uses_numba(values)
    monkeypatch.setenv(KERNEL_ENV, "fortran")
    with pytest.raises(ValueError, match="auto, numba, torch"):
        QMTSignalModel(seq, CANONICAL)
    monkeypatch.delenv(KERNEL_ENV)
    with pytest.raises(ValueError, match="auto, numba, torch"):
        QMTSignalModel(seq, CANONICAL, kernel="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_takes_torch_on_cuda_and_forced_numba_returns_on_the_device():
    seq, values = short_sequence(10), _batch("canonical", 2)
    cuda = QMTSignalModel(seq, CANONICAL, device="cuda")
    assert not cuda.uses_numba({k: torch.as_tensor(v, device="cuda") for k, v in values.items()})
    s, jac = QMTSignalModel(seq, CANONICAL, device="cuda", kernel="numba").simulate(values, ("m0s",))
    s_ref, jac_ref = cuda.simulate(values, ("m0s",))
    assert s.device.type == "cuda"
    assert _relative_errors(jac.cpu().numpy(), jac_ref.cpu().numpy()).max() <= 1e-10
