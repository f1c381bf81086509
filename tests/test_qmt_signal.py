"""The fast qMT signal model against an independent per-step reference, invariances and finite differences."""

import numpy as np
import pytest
import scipy.linalg
import torch

import reference
from conftest import CANONICAL_CASES, TR, as_tensors, short_sequence
from crbnet.signals.qmt import QMTSignalModel, crushed_pulse
from crbnet.parameters import PARAMETERIZATIONS
from crbnet.sequences import Pattern, QMTSequence

CANONICAL = PARAMETERIZATIONS["canonical"]


@pytest.mark.parametrize("case", CANONICAL_CASES)
def test_signal_matches_per_step_expm_reference(case):
    seq = short_sequence(14)
    p = seq.patterns[0]
    expected = reference.signal(as_tensors(case), p.alpha, p.TRF, p.crushed, TR).numpy()
    got = QMTSignalModel(seq, CANONICAL).signal(case)[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_crushed_inversion_is_an_exact_inversion_of_the_free_pool():
    c = {k: torch.tensor(v, dtype=torch.float64) for k, v in CANONICAL_CASES[0].items()}
    u = crushed_pulse(c, torch.tensor(np.pi, dtype=torch.float64), torch.tensor(5e-4, dtype=torch.float64))
    np.testing.assert_allclose(torch.diagonal(u)[:3].numpy(), [1.0, -1.0, -1.0], atol=1e-15)
    assert 0 < float(u[3, 3]) < 1  # semi-solid pool partially saturated, not inverted
    assert float(u[4, 4]) == 1.0 and float(u[2, 3]) == 0.0  # no exchange during the crushed pulse


def test_periodic_solution_reproduces_itself_after_one_cycle():
    p = short_sequence(20).patterns[0]
    twice = Pattern(np.tile(p.alpha, 2), np.tile(p.TRF, 2), np.tile(p.crushed, 2))
    signal_model = QMTSignalModel(QMTSequence(TR=TR, patterns=(twice,)), CANONICAL)
    s = signal_model.signal(CANONICAL_CASES[1])[0].numpy()
    np.testing.assert_allclose(s[:20], s[20:], rtol=1e-11, atol=1e-13)


def test_invariances_in_omega0():
    signal_model = QMTSignalModel(short_sequence(24), CANONICAL)
    case = dict(CANONICAL_CASES[1])
    def at(w):
        return signal_model.signal({**case, "omega0": w})[0].numpy()

    assert np.max(np.abs(at(0.0).imag)) < 1e-15
    np.testing.assert_allclose(at(-900.0), np.conj(at(900.0)), atol=1e-13)
    assert np.max(np.abs(at(900.0).imag)) > 1e-3  # the symmetry checks are not vacuous


def test_off_resonance_period_in_the_hard_pulse_limit():
    """One more turn per TR (omega0 + 2 pi/TR) leaves the dynamics unchanged but adds pi of phase by TE = TR/2,
    so s(omega0 + 2 pi/TR) -> -s(omega0) as TRF -> 0; precession during the pulse breaks it at O(TRF)."""
    rng = np.random.default_rng(4)
    alpha = rng.uniform(0, 1.5, 24)
    errors = []
    for trf in (2e-4, 1e-4, 5e-5):
        seq = QMTSequence(TR=TR, patterns=(Pattern(alpha, np.full(24, trf), np.zeros(24, dtype=bool)),))
        signal_model = QMTSignalModel(seq, CANONICAL)
        def at(w, signal_model=signal_model):
            return signal_model.signal({**CANONICAL_CASES[1], "omega0": w})[0].numpy()

        errors.append(np.max(np.abs(at(900.0 + 2 * np.pi / TR) + at(900.0))) / np.max(np.abs(at(900.0))))
    assert errors[-1] < 0.05
    np.testing.assert_allclose(np.array(errors[1:]) / np.array(errors[:-1]), 0.5, rtol=0.1)  # linear in TRF


def _single_pool_bloch(R1, R2, w0, B1, alpha, TRF, TR_):
    """Single-pool Bloch with a 4x4 affine generator [x, y, z, 1] and per-step expm, no MT, no crushing."""
    def gen(w1):
        return np.array([[-R2, -w0, B1 * w1, 0], [w0, -R2, 0, 0], [-B1 * w1, 0, -R1, R1], [0, 0, 0, 0]])
    rz = np.diag([-1.0, -1, 1, 1])
    steps = []
    for a, trf in zip(alpha, TRF):
        free = scipy.linalg.expm(gen(0.0) * (TR_ - trf) / 2)
        steps.append(free @ scipy.linalg.expm(gen(a / trf) * trf) @ rz @ free)
    cycle = np.eye(4)
    for p in steps[1:] + steps[:1]:
        cycle = p @ cycle
    m = np.linalg.solve(cycle - np.diag([1.0, 1, 1, 0]), [0, 0, 0, 1.0])
    out = [m]
    for p in steps[1:]:
        out.append(p @ out[-1])
    return np.array([v[0] + 1j * v[1] for v in out])


def test_no_semisolid_pool_reduces_to_single_pool_bloch():
    seq = short_sequence(30, crushed_first=False)
    p = seq.patterns[0]
    case = {"m0s": 0.0, "R1f": 0.7, "R2f": 15.0, "Rx": 20.0, "R1s": 2.0, "T2s": 12e-6, "omega0": 300.0, "B1": 0.9}
    got = QMTSignalModel(seq, CANONICAL).signal(case)[0].numpy()
    expected = _single_pool_bloch(0.7, 15.0, 300.0, 0.9, p.alpha, p.TRF, TR)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def _central_differences(signal_model, case, names, rel=1e-6):
    cols = []
    for name in names:
        h = rel * max(abs(case[name]), 1.0 if name == "omega0" else abs(case[name]))
        plus = signal_model.signal({**case, name: case[name] + h})[0]
        minus = signal_model.signal({**case, name: case[name] - h})[0]
        cols.append(((plus - minus) / (2 * h)).numpy())
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("pz_name, case", [
    ("canonical", CANONICAL_CASES[1]),
    ("canonical", CANONICAL_CASES[2]),
    ("apparent_t1", {"m0s": 0.15, "T1": 1.1, "T2f": 0.06, "Rx": 30.0, "T2s": 11e-6, "omega0": 400.0, "B1": 1.1}),
])
def test_jacobian_matches_central_finite_differences(pz_name, case):
    pz = PARAMETERIZATIONS[pz_name]
    signal_model = QMTSignalModel(short_sequence(40, seed=3), pz)
    _, jac = signal_model.simulate(case, pz.names)
    fd = _central_differences(signal_model, case, pz.names)
    jac = jac[0].numpy()
    for k, name in enumerate(pz.names):
        err = np.linalg.norm(jac[:, k] - fd[:, k]) / np.linalg.norm(jac[:, k])
        assert err <= 1e-5, f"d/d{name}: relative error {err:.2e}"


def test_fast_jacobian_matches_plain_autodiff_through_matrix_exp():
    seq = short_sequence(10, seed=5)
    p = seq.patterns[0]
    case = CANONICAL_CASES[2]
    names = CANONICAL.names

    def plain(x):
        c = dict(zip(names, x))
        s = reference.signal(c, p.alpha, p.TRF, p.crushed, TR, expm=torch.linalg.matrix_exp)
        return torch.view_as_real(s)

    x = torch.tensor([case[n] for n in names], dtype=torch.float64)
    expected = torch.func.jacfwd(plain)(x)  # (N, 2, P)
    _, jac = QMTSignalModel(seq, CANONICAL).simulate(case, names)
    np.testing.assert_allclose(jac[0].real.numpy(), expected[:, 0].numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(jac[0].imag.numpy(), expected[:, 1].numpy(), rtol=1e-8, atol=1e-10)


def test_batched_equals_one_by_one_and_patterns_concatenate():
    seq2 = QMTSequence(TR=TR, patterns=(short_sequence(12, seed=1).patterns[0], short_sequence(9, seed=2).patterns[0]))
    signal_model = QMTSignalModel(seq2, CANONICAL)
    batch = {k: np.array([c[k] for c in CANONICAL_CASES]) for k in CANONICAL.names}
    together = signal_model.signal(batch).numpy()
    assert together.shape == (3, 21)
    for i, case in enumerate(CANONICAL_CASES):
        np.testing.assert_allclose(together[i], signal_model.signal(case)[0].numpy(), rtol=1e-13, atol=1e-15)
    first = QMTSignalModel(QMTSequence(TR=TR, patterns=seq2.patterns[:1]), CANONICAL).signal(CANONICAL_CASES[0])
    np.testing.assert_allclose(together[0, :12], first[0].numpy(), rtol=1e-13, atol=1e-15)


def test_signal_is_differentiable_with_autograd():
    signal_model = QMTSignalModel(short_sequence(8), CANONICAL)
    case = {k: torch.tensor(v, dtype=torch.float64, requires_grad=(k == "R2f")) for k, v in CANONICAL_CASES[1].items()}
    loss = signal_model.signal(case).abs().pow(2).sum()
    loss.backward()
    _, jac = signal_model.simulate(CANONICAL_CASES[1], ["R2f"])
    s = signal_model.signal(CANONICAL_CASES[1])
    expected = float((2 * (s.conj() * jac[..., 0]).real).sum())
    assert float(case["R2f"].grad) == pytest.approx(expected, rel=1e-9)
