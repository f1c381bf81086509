import numpy as np
import pytest
import torch

from conftest import CANONICAL_CASES, DEFAULT_SEQUENCE, REFERENCE, short_sequence
from crbnet.crb import crb_from_fisher, fisher, scale_crb, unit_crb
from crbnet.signals.qmt import QMTSignalModel
from crbnet.parameters import GREY_MATTER, PARAMETERIZATIONS, WHITE_MATTER
from crbnet.sequences import load_sequence, sequence_from_dict

CANONICAL = PARAMETERIZATIONS["canonical"]


def _toy(seed: int, c: complex, n_params: int) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """s = e_1 (M0 fits sample 1 exactly), ds/dtheta_1 = (c, t_2, ..., t_n), the other columns zero:
    CRB(theta_1) = 1 / sum_{k>=2} |t_k|^2."""
    rng = np.random.default_rng(seed)
    t = rng.normal(size=6) + 1j * rng.normal(size=6)
    signal = torch.zeros(1, 7, dtype=torch.complex128)
    signal[0, 0] = 1.0
    jac = torch.zeros(1, 7, n_params, dtype=torch.complex128)
    jac[0, 0, 0] = c
    jac[0, 1:, 0] = torch.from_numpy(t)
    return t, signal, jac


def test_linear_toy_model_closed_form():
    t, signal, jac = _toy(0, 0.7 - 0.2j, 1)
    crb = unit_crb(signal, jac)[0, 0]
    assert float(crb) == pytest.approx(1 / np.sum(np.abs(t) ** 2), rel=1e-12)
    full = crb_from_fisher(fisher(signal, jac))[0]
    # M0 real/imag are not independent of theta here: Schur complement gives 1 + |c|^2 CRB(theta) / ...
    assert float(full[0]) == pytest.approx(1 + 0.7**2 * float(crb), rel=1e-12)
    assert float(full[1]) == pytest.approx(1 + 0.2**2 * float(crb), rel=1e-12)


def test_scaling_with_sigma_and_m0():
    signal_model = QMTSignalModel(short_sequence(30), CANONICAL)
    signal, jac = signal_model.simulate(CANONICAL_CASES[0], CANONICAL.names)
    M0, sigma = 0.3 + 0.4j, 0.02
    # Fisher matrix built directly at M0 and sigma: columns s, i s, M0 ds/dtheta over sigma
    cols = torch.cat([signal[..., None], 1j * signal[..., None], M0 * jac], dim=-1) / sigma
    direct = crb_from_fisher((cols.conj().transpose(-1, -2) @ cols).real)[..., 2:]
    np.testing.assert_allclose(scale_crb(unit_crb(signal, jac), M0, sigma).numpy(), direct.numpy(), rtol=1e-6)


def test_singular_fisher_gives_inf():
    signal = torch.ones(1, 5, dtype=torch.complex128)
    jac = torch.stack([signal, 2 * signal], dim=-1)  # both derivatives along s: not identifiable
    assert torch.isinf(unit_crb(signal, jac)).all()


def test_compressed_crb_bounds():
    signal_model = QMTSignalModel(short_sequence(24), CANONICAL)
    signal, jac = signal_model.simulate(CANONICAL_CASES[1], ["m0s", "R1f", "R2f"])
    full = unit_crb(signal, jac)
    q, _ = torch.linalg.qr(torch.randn(24, 24, dtype=torch.complex128))
    np.testing.assert_allclose(unit_crb(signal, jac, basis=q).numpy(), full.numpy(), rtol=1e-9)
    assert torch.all(unit_crb(signal, jac, basis=q[:, :8]) >= full * (1 - 1e-12))


@pytest.mark.parametrize("tissue", [WHITE_MATTER, GREY_MATTER], ids=["WM", "GM"])
def test_default_sequence_encodes_all_eight_parameters(tissue):
    signal_model = QMTSignalModel(load_sequence(DEFAULT_SEQUENCE), CANONICAL)
    crb = unit_crb(*signal_model.simulate(tissue, CANONICAL.names))
    assert torch.all(torch.isfinite(crb)) and torch.all(crb > 0)


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/reference not present")
@pytest.mark.parametrize("name, n_samples", [("control_MT_v3p2_TR3p5ms_discretized.mat", 1142),
                                             ("mao_6pattern_control.mat", 6852)])
def test_published_controls_load_and_give_finite_crbs(name, n_samples):
    seq = sequence_from_dict({"kind": "hybrid_state_qmt", "TR": 3.5e-3, "patterns": [{"file": name}]}, base=REFERENCE)
    assert seq.n_samples == n_samples and all(p.crushed[0] for p in seq.patterns)
    crb = unit_crb(*QMTSignalModel(seq, CANONICAL).simulate(WHITE_MATTER, CANONICAL.names))
    assert torch.all(torch.isfinite(crb))


def _reduced_crb(signal: np.ndarray, jac: np.ndarray) -> np.ndarray:
    """Independent reference: numpy inverse of the Fisher matrix of the given columns (M0 real/imag first)."""
    cols = np.concatenate([signal[:, None], 1j * signal[:, None], jac], axis=1)
    return np.diag(np.linalg.inv((cols.conj().T @ cols).real))[2:]


def test_zero_column_gets_inf_and_the_others_the_reduced_crb():
    t, signal, jac = _toy(1, 0.3 + 0.1j, 2)  # theta_2 has no effect at all: a zero column
    crb = unit_crb(signal, jac)[0]
    assert torch.isinf(crb[1])
    assert float(crb[0]) == pytest.approx(1 / np.sum(np.abs(t) ** 2), rel=1e-12)


def test_collinear_columns_both_inf_others_keep_the_combination_unknown():
    rng = np.random.default_rng(2)
    n = 40
    s = rng.normal(size=n) + 1j * rng.normal(size=n)
    a, c = (rng.normal(size=(n, 2)) + 1j * rng.normal(size=(n, 2))).T
    jac = np.stack([a, 2.5 * a, c], axis=1)  # theta_1, theta_2 collinear: only a + 2.5 b is seen
    crb = unit_crb(torch.as_tensor(s)[None], torch.as_tensor(jac)[None])[0].numpy()
    assert np.isinf(crb[:2]).all()
    # theta_3 keeps the uncertainty of the identifiable combination: the model with theta_1 alone (not with both
    # dropped, which would be optimistic)
    assert crb[2] == pytest.approx(_reduced_crb(s, jac[:, [0, 2]])[1], rel=1e-9)
    assert crb[2] > _reduced_crb(s, jac[:, [2]])[0] * (1 + 1e-6)


def test_no_exception_and_inf_only_where_unidentifiable_in_a_batch():
    rng = np.random.default_rng(3)
    s = rng.normal(size=(3, 30)) + 1j * rng.normal(size=(3, 30))
    jac = rng.normal(size=(3, 30, 3)) + 1j * rng.normal(size=(3, 30, 3))
    jac[1, :, 2] = 0.0  # only the middle row has a zero column
    crb = unit_crb(torch.as_tensor(s), torch.as_tensor(jac)).numpy()
    assert np.isfinite(crb[[0, 2]]).all() and np.isinf(crb[1, 2]) and np.isfinite(crb[1, :2]).all()
    np.testing.assert_allclose(crb[0], _reduced_crb(s[0], jac[0]), rtol=1e-9)
    np.testing.assert_allclose(crb[1, :2], _reduced_crb(s[1], jac[1, :, :2]), rtol=1e-9)


ESTIMATED = ["m0s", "T1", "T2f", "Rx", "T2s", "omega0", "B1"]


@pytest.mark.parametrize("case, hidden", [({"m0s": 0.0}, ["Rx", "T2s"]), ({"Rx": 0.0}, ["m0s", "T2s"])],
                         ids=["m0s=0", "Rx=0"])
def test_qmt_unidentifiable_nuisance_parameters(case, hidden):
    # m0s = 0: no semi-solid pool, so Rx and T2s do nothing; Rx = 0: the pools do not exchange, the free signal
    # scales with 1 - m0s like M0 and T2s does nothing. The rest keep the CRB of the model without those parameters.
    pz = PARAMETERIZATIONS["apparent_t1"]
    signal_model = QMTSignalModel(short_sequence(60), pz)
    values = pz.complete({"T1": 1.2, "T2f": 0.07, "omega0": 150.0, "B1": 0.9, **case})
    crb = unit_crb(*signal_model.simulate(values, ESTIMATED))[0]
    kept = [n for n in ESTIMATED if n not in hidden]
    reference = unit_crb(*signal_model.simulate(values, kept))[0]
    assert all(torch.isinf(crb[ESTIMATED.index(n)]) for n in hidden)
    np.testing.assert_allclose(crb[[ESTIMATED.index(n) for n in kept]].numpy(), reference.numpy(), rtol=1e-6)
