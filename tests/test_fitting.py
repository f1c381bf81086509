"""Batched Levenberg-Marquardt NLLS against the truth (noiseless; MRF-FISP and qMT) and scipy.optimize.least_squares
(noisy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import short_sequence
from crbnet.basis import svd_basis
from crbnet.estimator import Estimator
from crbnet.fitting import NLLSEstimator, RefinedEstimator
from crbnet.matching import MatchingEstimator
from crbnet.parameters import PARAMETERIZATIONS, ParameterSpace
from crbnet.sequences import FISPSequence
from crbnet.signals.fisp import FISPSignalModel
from crbnet.signals.qmt import QMTSignalModel
from scipy.optimize import least_squares

FISP = PARAMETERIZATIONS["fisp"]
SPACE = ParameterSpace.from_config({"parameterization": "fisp", "parameters": {
    "T1": {"dist": "uniform", "lower": 0.2, "upper": 3.0}, "T2": {"dist": "uniform", "lower": 0.01, "upper": 0.3},
    "B1": {"dist": "uniform", "lower": 0.7, "upper": 1.3}}, "constraints": ["T2 <= T1"]})


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(3)
    n = 60
    seq = FISPSequence(flip_angle=np.deg2rad(10 + 60 * np.abs(np.sin(np.arange(n) / 7))), TR=rng.uniform(8e-3, 15e-3, n),
                       TE=2e-3, TI=0.02, inversion_efficiency=0.95, epg_states=n + 1)
    signal_model = FISPSignalModel(seq, FISP)
    truth = {"T1": np.array([0.6, 0.9, 1.3, 1.8, 2.4]), "T2": np.array([0.04, 0.06, 0.09, 0.05, 0.12]),
             "B1": np.array([0.85, 1.0, 1.1, 0.95, 1.2])}
    basis = svd_basis([signal_model.signal(SPACE.sample(512, 1)).numpy()], 12, seq.sha256)
    M0 = np.array([1.0, 0.7j, -0.5, 0.3 + 0.4j, 2.0])
    clean = basis.project(signal_model.signal(truth).numpy()) * M0[:, None]
    return signal_model, basis, truth, clean


def test_noiseless_fits_recover_the_truth_from_the_prior_means(setup):
    signal_model, basis, truth, clean = setup
    nlls = NLLSEstimator(signal_model, basis, SPACE, ("T1", "T2", "B1"), iterations=40)
    est = nlls.predict(clean)
    np.testing.assert_allclose(est, np.stack([truth[k] for k in ("T1", "T2", "B1")], 1), rtol=1e-5)


def test_noisy_fits_match_scipy_least_squares(setup):
    signal_model, basis, truth, clean = setup
    rng = np.random.default_rng(0)
    noisy = clean + 0.01 * (rng.normal(size=clean.shape) + 1j * rng.normal(size=clean.shape))
    dm = MatchingEstimator.from_grid(signal_model, basis, SPACE, {"T1": np.geomspace(0.3, 3, 12), "T2": np.geomspace(
        0.02, 0.3, 12), "B1": np.linspace(0.8, 1.2, 5)}, ("T1", "T2", "B1"))
    nlls = NLLSEstimator(signal_model, basis, SPACE, ("T1", "T2", "B1"), init=dm, iterations=40)
    ours = nlls.predict(noisy)
    start = nlls.start(noisy)
    lower, upper = nlls.lower.numpy(), nlls.upper.numpy()
    for v in (0, 2, 4):
        def residual(x):
            c = basis.project(signal_model.signal({"T1": x[2], "T2": x[3], "B1": x[4]}).numpy())[0]
            r = noisy[v] - (x[0] + 1j * x[1]) * c
            return np.concatenate([r.real, r.imag])

        x0 = [1.0, 0.0, *(start[k][v] for k in ("T1", "T2", "B1"))]
        ref = least_squares(residual, x0, bounds=([-np.inf, -np.inf, *lower], [np.inf, np.inf, *upper]),
                            x_scale="jac", ftol=1e-14, xtol=1e-14, gtol=1e-14)
        np.testing.assert_allclose(ours[v], ref.x[2:], rtol=2e-4)


def test_bounds_hold_and_names_are_checked(setup):
    signal_model, basis, truth, clean = setup
    nlls = NLLSEstimator(signal_model, basis, SPACE, ("T2",), free=("T2",), iterations=10)
    est = nlls.predict(clean * 0 + 1e-3)  # data no parameter explains: the fit runs into a bound, never past it
    assert np.all((est >= 0.01) & (est <= 0.3))
    with pytest.raises(ValueError, match="m0s"):
        NLLSEstimator(signal_model, basis, SPACE, ("m0s",))


def test_qmt_fits_recover_the_truth_from_the_range_centres():
    truth = {"m0s": np.array([0.08, 0.15, 0.25]), "T1": np.array([0.8, 1.2, 1.6]), "T2f": np.array([0.05, 0.07, 0.1])}
    others = {"Rx": 30.0, "T2s": 12e-6, "omega0": 150.0, "B1": 0.9}
    space = ParameterSpace.from_config({"parameterization": "apparent_t1", "parameters": others | {
        "m0s": {"dist": "uniform", "lower": 0.0, "upper": 0.4}, "T1": {"dist": "uniform", "lower": 0.4, "upper": 2.4},
        "T2f": {"dist": "uniform", "lower": 0.02, "upper": 0.2}}})
    signal_model = QMTSignalModel(short_sequence(200, seed=4), PARAMETERIZATIONS["apparent_t1"])
    basis = svd_basis([signal_model.signal(space.sample(256, 1)).numpy()], 10, signal_model.sequence.sha256)
    clean = basis.project(signal_model.signal(truth | others).numpy()) * np.array([1.0, 0.5j, -2.0])[:, None]
    names = ("m0s", "T1", "T2f")
    est = NLLSEstimator(signal_model, basis, space, names, free=names, iterations=40).predict(clean)  # from the range centres
    np.testing.assert_allclose(est, np.stack([truth[k] for k in names], 1), rtol=1e-5)


def test_matching_and_nlls_are_estimators_with_one_predict(setup):
    signal_model, basis, truth, clean = setup
    dm = MatchingEstimator.from_grid(signal_model, basis, SPACE, {"T1": np.geomspace(0.3, 3, 6), "T2": np.geomspace(
        0.02, 0.3, 6), "B1": np.array([1.0])}, ("T2", "T1"))
    nlls = NLLSEstimator(signal_model, basis, SPACE, ("T2", "T1"), init=dm, iterations=3)
    for estimator in (dm, nlls):
        assert isinstance(estimator, Estimator)
        assert estimator.units == ("s", "s") and estimator.basis is basis
        out = estimator.predict(clean, batch=2, precision="fp32", device="cpu")  # options a kind does not use: ignored
        assert out.shape == (len(clean), 2) and out.dtype == np.float64 and np.isfinite(out).all()
    assert not isinstance(signal_model, Estimator)


class _Offset:
    """A start estimator: the truth of each voxel shifted by ``shift`` (a stand-in for a biased network)."""

    def __init__(self, basis, truth, names, shift):
        self.basis, self.names, self.truth, self.shift = basis, names, truth, shift
        self.units = tuple("1" if k == "m0s" else "s" for k in names)

    def predict(self, data, **_):
        return np.stack([self.truth[k] + self.shift.get(k, 0.0) for k in self.names], 1)[: len(data)]


@pytest.fixture(scope="module")
def qmt():
    truth = {"m0s": np.array([0.08, 0.15, 0.25]), "T1": np.array([0.8, 1.2, 1.6]), "T2f": np.array([0.05, 0.07, 0.1]),
             "Rx": np.array([25.0, 35.0, 45.0]), "T2s": np.array([10e-6, 12e-6, 14e-6]),
             "omega0": np.array([300.0, -150.0, 600.0]), "B1": np.array([0.85, 1.0, 1.1])}
    space = ParameterSpace.from_config({"parameterization": "apparent_t1", "parameters": {
        "m0s": {"dist": "uniform", "lower": 0.0, "upper": 0.4}, "T1": {"dist": "uniform", "lower": 0.4, "upper": 2.4},
        "T2f": {"dist": "uniform", "lower": 0.02, "upper": 0.2}, "Rx": {"dist": "uniform", "lower": 10.0, "upper": 60.0},
        "T2s": {"dist": "uniform", "lower": 5e-6, "upper": 20e-6},
        "omega0": {"dist": "uniform", "lower": -1000.0, "upper": 1000.0},
        "B1": {"dist": "uniform", "lower": 0.7, "upper": 1.3}}})
    signal_model = QMTSignalModel(short_sequence(200, seed=4), PARAMETERIZATIONS["apparent_t1"])
    basis = svd_basis([signal_model.signal(space.sample(256, 1)).numpy()], 12, signal_model.sequence.sha256)
    M0 = np.array([1.0, 0.5j, -2.0])
    clean = basis.project(signal_model.signal(truth).numpy()) * M0[:, None]
    return signal_model, basis, space, truth, clean, M0


def test_a_gauss_newton_step_equals_the_one_from_finite_differences(qmt):
    """The step of the coefficient-domain residual in (Re M0, Im M0, theta) at lambda = 0, against the normal
    equations of a central-difference Jacobian."""
    signal_model, basis, space, truth, clean, M0 = qmt
    fitter = NLLSEstimator(signal_model, basis, space, ("m0s", "T1", "T2f"))
    start = {k: v * 1.03 for k, v in truth.items()}
    values = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in start.items()}
    theta = torch.stack([values[k] for k in fitter.free], 1)
    y = torch.as_tensor(clean, dtype=torch.complex128)
    c, d = fitter._coefficients(values, theta, True)
    m0 = fitter._m0(c, y)
    step = fitter._step(y, c, d, m0, torch.zeros(len(y), dtype=torch.float64)).numpy()

    def residual(phi):  # (b, 2 + P) -> (b, 2 r) real
        t = torch.as_tensor(phi[:, 2:])
        model = fitter._coefficients(values, t, False)[0] * torch.as_tensor(phi[:, 0] + 1j * phi[:, 1])[:, None]
        r = (y - model).numpy()
        return np.concatenate([r.real, r.imag], 1)

    phi = np.concatenate([m0.real.numpy()[:, None], m0.imag.numpy()[:, None], theta.numpy()], 1)
    h = 1e-6 * np.maximum(np.abs(phi), 1e-3)
    J = np.stack([(residual(phi + np.eye(phi.shape[1])[k] * h[:, k:k + 1])
                   - residual(phi - np.eye(phi.shape[1])[k] * h[:, k:k + 1])) / (2 * h[:, k:k + 1])
                  for k in range(phi.shape[1])], 2)
    for b in range(len(y)):
        expected = np.linalg.solve(J[b].T @ J[b], -J[b].T @ residual(phi)[b])
        np.testing.assert_allclose(step[b], expected, rtol=2e-4, atol=1e-9 * np.abs(expected).max())


def test_refinement_moves_a_biased_start_towards_the_truth_with_one_jacobian_per_step(qmt, monkeypatch):
    signal_model, basis, space, truth, clean, M0 = qmt
    names = ("m0s", "T1", "T2f", "Rx", "T2s", "omega0", "B1")
    start = _Offset(basis, truth, names, {"m0s": 0.02, "T1": -0.1, "T2f": 0.01, "Rx": 5.0, "B1": 0.03})
    jacobians = []
    simulate = signal_model.simulate

    def counting(values, wrt=()):
        if wrt:
            jacobians.append(len(next(iter(values.values()))))
        return simulate(values, wrt)

    monkeypatch.setattr(signal_model, "simulate", counting)
    errors = []
    for steps in (0, 2, 32):
        jacobians.clear()
        refined = RefinedEstimator(start, signal_model, space, steps=steps)
        assert isinstance(refined, Estimator) and refined.names == names and refined.basis is basis
        out = refined.predict(clean)
        assert sum(jacobians) <= steps * len(clean)  # one per voxel, then one per accepted step but the last
        truth_ = np.stack([truth[k] for k in names], 1)
        errors.append(np.abs(out - truth_) / truth_)
    np.testing.assert_allclose(errors[0], np.abs(start.predict(clean) - truth_) / truth_)  # 0 steps: the start
    offset = np.abs(start.predict(clean) - truth_) / truth_
    assert (errors[1][:, :3].sum(1) < 0.7 * offset[:, :3].sum(1)).all()  # two steps: closer
    np.testing.assert_allclose(out, truth_, rtol=1e-4)  # converged


def test_refinement_keeps_the_bounds_and_searches_the_candidates_the_start_lacks(qmt):
    signal_model, basis, space, truth, clean, M0 = qmt
    names = ("m0s", "T1", "T2f")
    wild = _Offset(basis, truth, names, {"m0s": -0.5, "T1": 40.0})  # out of range: those voxels start from the means
    out = RefinedEstimator(wild, signal_model, space, steps=2).predict(clean)
    lower = np.array([space.priors[k].lower for k in names])
    upper = np.array([space.priors[k].upper for k in names])
    assert ((out >= lower) & (out <= upper)).all()
    grid = {"omega0": [-900.0, -450.0, -150.0, 300.0, 600.0, 900.0], "B1": [0.85, 1.0, 1.1]}
    fitter = RefinedEstimator(_Offset(basis, truth, names, {}), signal_model, space, steps=0, candidates=grid)
    chosen = fitter.start(clean)
    np.testing.assert_array_equal(chosen["omega0"], truth["omega0"])  # the true values are among the candidates
    np.testing.assert_array_equal(chosen["B1"], truth["B1"])
    with pytest.raises(ValueError, match="candidates for w0"):
        RefinedEstimator(wild, signal_model, space, candidates={"w0": [0.0]})


def test_the_steps_curve_compares_refinement_and_nlls_on_the_same_draws(setup):
    """crbnet.evaluation.refinement_curve: 0 steps is the start alone (a coarse dictionary, biased), a few steps
    remove most of its bias, and NLLS from the prior means is evaluated on the same draws."""
    from crbnet.crb import unit_crb
    from crbnet.datasets import FingerprintSet
    from crbnet.evaluation import monte_carlo, refinement_curve
    from crbnet.tables import summarize

    signal_model, basis, truth, _ = setup
    names = ("T1", "T2")
    signal, jac = signal_model.simulate(truth, FISP.names)
    crb = unit_crb(signal, jac, torch.as_tensor(basis.U))[:, [FISP.names.index(k) for k in names]]
    params = torch.as_tensor(np.stack([truth[k] for k in names], 1))
    examples = FingerprintSet(names, ("s", "s"), params, torch.as_tensor(basis.project(signal.numpy())).to(torch.complex64),
                              crb, "coefficients")
    start = MatchingEstimator.from_grid(signal_model, basis, SPACE, {"T1": np.geomspace(0.3, 2.8, 5),
                                                                     "T2": np.geomspace(0.015, 0.28, 5)}, names)
    candidates = {"B1": [0.8, 1.0, 1.2]}
    table = refinement_curve(start, signal_model, SPACE, {"grid": examples}, [0, 3], candidates, 10, 200.0, 8, 0)
    assert sorted(set(zip(table.estimator, table.steps))) == [("nlls_prior", 10), ("refined", 0), ("refined", 3)]
    assert len(table) == 3 * len(names) and (table.split == "grid").all() and (table.ms_per_voxel > 0).all()
    rows = table.set_index(["estimator", "steps", "parameter"])
    alone = summarize(monte_carlo(start, examples, 200.0, 8, 0)).set_index("parameter")
    for k in names:  # the same draws: 0 steps is the start's own Monte Carlo (its grid lies inside the bounds)
        assert rows.loc[("refined", 0, k), "crb_loss"] == pytest.approx(alone.loc[k, "crb_loss"], rel=1e-12)
        assert rows.loc[("refined", 3, k), "median_bias_ratio"] < 0.2 * rows.loc[("refined", 0, k), "median_bias_ratio"]
        assert rows.loc[("nlls_prior", 10, k), "median_std_ratio"] == pytest.approx(1.0, abs=0.5)
