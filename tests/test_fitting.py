"""Batched Levenberg-Marquardt NLLS against the truth (noiseless; MRF-FISP and qMT) and scipy.optimize.least_squares
(noisy)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import short_sequence
from crbnet.basis import svd_basis
from crbnet.estimator import Estimator
from crbnet.fitting import NLLSEstimator
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
    nlls = NLLSEstimator(signal_model, basis, SPACE, ("T2",), fit=("T2",), iterations=10)
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
    est = NLLSEstimator(signal_model, basis, space, names, fit=names, iterations=40).predict(clean)  # from the range centres
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
