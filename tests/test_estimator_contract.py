"""One conformance test of the Estimator protocol, parametrized over every estimator kind the workflow and the CLI
use: network, dictionary matching, NLLS and the refined estimator (on one small MRF-FISP problem)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from crbnet.basis import Basis, svd_basis
from crbnet.datasets import FingerprintSet
from crbnet.estimator import Estimator, NetworkEstimator, load_estimator
from crbnet.experiment import ESTIMATORS
from crbnet.fitting import NLLSEstimator, RefinedEstimator
from crbnet.matching import MatchingEstimator
from crbnet.parameters import PARAMETERIZATIONS, ParameterSpace, in_range, parameter
from crbnet.sequences import FISPSequence
from crbnet.signals.fisp import FISPSignalModel
from crbnet.training import TrainConfig, build_estimator

NAMES = ("T1", "T2")
SPACE = ParameterSpace.from_config({"parameterization": "fisp", "parameters": {
    "T1": {"dist": "uniform", "lower": 0.2, "upper": 3.0}, "T2": {"dist": "uniform", "lower": 0.01, "upper": 0.3},
    "B1": {"dist": "uniform", "lower": 0.8, "upper": 1.2}}, "constraints": ["T2 <= T1"]})
KINDS = ("network", "matching", "nlls", "refined")


@pytest.fixture(scope="module")
def problem():
    n = 40
    seq = FISPSequence(flip_angle=np.deg2rad(10 + 60 * np.abs(np.sin(np.arange(n) / 7))), TR=np.full(n, 10e-3),
                       TE=2e-3, TI=0.02, inversion_efficiency=0.95, epg_states=n + 1)
    signal_model = FISPSignalModel(seq, PARAMETERIZATIONS["fisp"])
    values = SPACE.sample(256, 1)
    signals = signal_model.signal(values).numpy()
    basis = svd_basis([signals], 8, seq.sha256)
    coefficients = basis.project(signals)
    return signal_model, basis, values, coefficients


def _network(problem) -> NetworkEstimator:
    _, basis, values, coefficients = problem
    train = FingerprintSet(NAMES, tuple(parameter(n).unit for n in NAMES),
                           torch.as_tensor(np.stack([values[n] for n in NAMES], 1)),
                           torch.as_tensor(coefficients.astype(np.complex64)), torch.ones(len(coefficients), 2))
    cfg = TrainConfig.from_mapping({"estimate": list(NAMES), "hidden": [16, 16], "seed": 0})
    return build_estimator(train, basis, cfg)  # untrained: the contract does not depend on what it learned


def _estimator(kind: str, problem) -> Estimator:
    signal_model, basis, _, _ = problem
    if kind == "network":
        return _network(problem)
    if kind == "matching":
        axes = {"T1": np.geomspace(0.3, 3, 6), "T2": np.geomspace(0.02, 0.3, 6)}
        return MatchingEstimator.from_grid(signal_model, basis, SPACE, axes, NAMES)
    if kind == "nlls":
        return NLLSEstimator(signal_model, basis, SPACE, NAMES, iterations=5)
    return RefinedEstimator(_network(problem), signal_model, SPACE, steps=2)


def test_the_kinds_cover_every_estimator_of_the_workflow():
    networks = {"mse", "crb", "bias_reduced"}
    assert set(ESTIMATORS) - networks == set(KINDS) - {"network"}


@pytest.mark.parametrize("kind", KINDS)
def test_names_units_and_basis(kind, problem):
    est = _estimator(kind, problem)
    assert isinstance(est, Estimator)
    assert isinstance(est.names, tuple) and est.names == NAMES
    assert isinstance(est.units, tuple) and est.units == tuple(parameter(n).unit for n in NAMES) == ("s", "s")
    assert isinstance(est.basis, Basis) and est.basis.sha256 == problem[1].sha256


@pytest.mark.parametrize("kind", KINDS)
def test_predict_shapes_fingerprints_and_batches(kind, problem):
    est = _estimator(kind, problem)
    c = problem[3][:12]
    out = est.predict(c)
    assert out.shape == (12, 2) and out.dtype == np.float64 and np.all(np.isfinite(out))
    fingerprints = c @ est.basis.U.T  # the same data in the time domain
    np.testing.assert_allclose(est.predict(fingerprints), out, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(est.predict(c, batch=5), out, rtol=1e-9, atol=1e-12)  # batches do not change results


@pytest.mark.parametrize("kind", KINDS)
def test_rows_with_nan_come_back_nan_and_leave_the_others_alone(kind, problem):
    est = _estimator(kind, problem)
    c = problem[3][:6].copy()
    c[2, 1] = np.nan
    c[4, 0] = complex(np.inf, 0)
    out = est.predict(c)
    bad = np.array([False, False, True, False, True, False])
    assert np.all(np.isnan(out[bad]))
    np.testing.assert_allclose(out[~bad], est.predict(c[~bad]), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_and_bad_options_are_errors_that_name_them(kind, problem):
    est = _estimator(kind, problem)
    c = problem[3][:3]
    with pytest.raises(TypeError, match="precison"):
        est.predict(c, precison="fp32")
    with pytest.raises(ValueError, match="fp16"):  # ModelError or DeviceError
        est.predict(c, precision="fp16")
    with pytest.raises(ValueError, match="tpu"):  # DeviceError or ModelError
        est.predict(c, device="tpu")


@pytest.mark.parametrize("kind", KINDS)
def test_out_of_range_estimates_are_returned_as_they_are(kind, problem):
    """Networks return what they compute (here a network shifted to negative T2); the bounded estimators stay in
    the parameters' ranges. Nothing is clipped afterwards: downstream rules count such rows."""
    est = _estimator(kind, problem)
    c = problem[3][:8]
    if kind in ("network", "refined"):
        network = est if kind == "network" else est.init
        with torch.no_grad():
            network.net.shift[1] = -1.0  # T2 of -1 s
        assert np.all(network.predict(c)[:, 1] < 0)  # returned as computed: nothing clips them into range
        if kind == "network":
            return
    out = est.predict(c)  # matching, NLLS, and refinement from an out-of-range start (it starts from the prior)
    assert np.all(in_range({n: out[:, i] for i, n in enumerate(NAMES)}))


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_round_trip(kind, problem, tmp_path):
    """Estimators with a file (networks, dictionaries) load back through load_estimator, told apart by content; NLLS
    and the refined estimator are rebuilt from the sequence and the config, and have no file."""
    est = _estimator(kind, problem)
    if kind in ("nlls", "refined"):
        assert not hasattr(est, "save")
        return
    path = tmp_path / "model.bin"  # any name: the format is read from the content
    est.save(path)
    loaded = load_estimator(path)
    assert type(loaded) is type(est) and loaded.names == est.names and loaded.units == est.units
    c = problem[3][:10]
    np.testing.assert_allclose(loaded.predict(c), est.predict(c), rtol=1e-6)
