"""Estimates NaN or outside their parameter's range (an unconstrained network's negative m0s, a T1 above its range)
flow through every consumer without an exception: sqrt(CRB) maps, the NLLS start, ``crbnet fit``, the per-tissue
and agreement tables and the Monte-Carlo summary (crbnet.parameters.in_range is the one rule)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import short_sequence
from crbnet.basis import svd_basis
from crbnet.cli import main
from crbnet.estimator import NetworkEstimator
from crbnet.fitting import NLLSEstimator
from crbnet.maps import crb_image
from crbnet.nets import ResidualMLP
from crbnet.parameters import PARAMETERIZATIONS, ParameterSpace, in_range, out_of_range_count
from crbnet.signals.qmt import QMTSignalModel
from crbnet.tables import agreement, headline_table, summarize, tissue_bias

APPARENT = PARAMETERIZATIONS["apparent_t1"]
NAMES = ("m0s", "T1", "T2f")
SPACE = ParameterSpace.from_config({"parameterization": "apparent_t1", "parameters": {
    "m0s": {"dist": "uniform", "lower": 0.0, "upper": 0.4}, "T1": {"dist": "uniform", "lower": 0.3, "upper": 3.0},
    "T2f": {"dist": "uniform", "lower": 0.01, "upper": 0.3}, "Rx": 20.0, "T2s": 12e-6, "omega0": 0.0, "B1": 1.0}})
# rows: in range, negative m0s, T1 above its range (100 s), NaN T2f, in range
WILD = np.array([[0.1, 1.0, 0.08], [-0.007, 1.0, 0.08], [0.1, 250.0, 0.08], [0.1, 1.0, np.nan], [0.2, 0.8, 0.05]])


@pytest.fixture(scope="module")
def qmt():
    signal_model = QMTSignalModel(short_sequence(24), APPARENT)
    basis = svd_basis([signal_model.signal(SPACE.sample(64, 0)).numpy()], 8, "short")
    return signal_model, basis


class Wild:
    """An estimator that returns WILD whatever the data (rows cycled)."""

    names, units = NAMES, ("1", "s", "s")

    def __init__(self, basis):
        self.basis = basis

    def predict(self, data, **_):
        return WILD[np.arange(len(data)) % len(WILD)]


def test_in_range_is_the_physical_range_and_finiteness():
    ok = in_range({k: WILD[:, i] for i, k in enumerate(NAMES)})
    np.testing.assert_array_equal(ok, [True, False, False, False, True])
    assert out_of_range_count(WILD[None], NAMES) == 3  # any leading shape
    assert in_range({"T1": np.array([0.0])}) == [False]  # open lower bound
    assert in_range({"m0s": np.array([0.0])}) == [True]  # closed lower bound


def test_crb_image_leaves_out_of_range_estimates_without_a_bound(qmt, caplog):
    signal_model, basis = qmt
    estimates = WILD.reshape(5, 1, 1, 3)
    mask = np.ones((5, 1, 1), dtype=bool)
    sqrt_crb = crb_image(signal_model, basis, estimates, NAMES, mask, SPACE.centre(), sigma=0.02)
    assert np.isnan(sqrt_crb[1:4]).all()
    assert np.isfinite(sqrt_crb[[0, 4]]).all() and (sqrt_crb[[0, 4]] > 0).all()
    assert "3 of 5 voxels with an estimate outside its range or NaN" in caplog.text
    # the in-range rows are unchanged by the others' presence
    alone = crb_image(signal_model, basis, estimates[[0, 4]], NAMES, mask[:2], SPACE.centre(), sigma=0.02)
    np.testing.assert_allclose(sqrt_crb[[0, 4]], alone, rtol=1e-12)


def test_nlls_starts_out_of_range_voxels_from_the_prior_means(qmt, caplog):
    signal_model, basis = qmt
    truth = {k: np.full(5, v) for k, v in SPACE.centre().items()} | {"m0s": np.full(5, 0.15)}
    data = basis.project(signal_model.signal(truth).numpy())
    nlls = NLLSEstimator(signal_model, basis, SPACE, NAMES, init=Wild(basis), iterations=2)
    start = nlls.start(data)
    centre = SPACE.centre()
    assert start["m0s"][1] == centre["m0s"] and start["T1"][2] == centre["T1"] and start["T2f"][3] == centre["T2f"]
    assert start["T1"][0] == 1.0 and start["m0s"][4] == 0.2  # in-range starts are kept
    assert "3 of 5 starting estimates outside their range or NaN" in caplog.text
    assert np.isfinite(nlls.predict(data)).all()


def _wild_network(basis) -> NetworkEstimator:
    """A network whose outputs are m0s about -0.05, T1 about 250 s and T2f NaN for any input."""
    net = ResidualMLP(basis.rank * 2, [4], shift=torch.tensor([-0.05, 250.0, float("nan")]),
                      scale=torch.tensor([1e-3, 1e-3, 1e-3]))
    return NetworkEstimator(net.eval(), basis, "unit_norm", NAMES, ("1", "s", "s"),
                            {"n_in": basis.rank * 2, "hidden": [4], "norm": "batch", "skips": "auto"})


def test_cli_fit_writes_out_of_range_and_nan_estimates_as_returned(qmt, tmp_path, capsys):
    _, basis = qmt
    _wild_network(basis).save(tmp_path / "wild.pt")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "c.npy", (rng.normal(size=(3, 4, 8)) + 1j * rng.normal(size=(3, 4, 8))).astype(np.complex64))
    assert main(["fit", "--model", str(tmp_path / "wild.pt"), "--data", str(tmp_path / "c.npy"), "--out",
                 str(tmp_path / "e.npy")]) == 0
    e = np.load(tmp_path / "e.npy").reshape(12, 3)
    assert (e[:, 0] < 0).all() and (e[:, 1] > 100).all() and np.isnan(e[:, 2]).all()
    assert "n_out_of_range=12" in capsys.readouterr().err  # the CLI logs to stderr


def test_tables_count_out_of_range_estimates():
    labels = np.array([[[1], [1], [1], [2]]])  # (1, 4, 1): tissue a has 3 voxels, b 1; no erosion across x
    labels = np.repeat(labels, 3, axis=0)
    truth = {"m0s": np.full(labels.shape, 0.1)}
    est = np.full(labels.shape, 0.1)
    est[1, 1, 0] = -0.02  # interior voxel of tissue a, out of range
    maps = {"mse": {"m0s": est}}
    table = tissue_bias(labels, {1: "a", 2: "b"}, truth, maps)
    row = table[table.tissue == "a"].iloc[0]
    assert row["n_out_of_range"] == 1 and row["mean"] < 0.1  # kept as returned, counted

    pairs = pd.DataFrame({"estimator": "mse", "tissue": "a", "parameter": "m0s",
                          "value": [0.1, -0.02, np.nan], "reference": [0.1, 0.1, 0.1]})
    out = agreement(pairs).iloc[0]
    assert out["n_out_of_range"] == 2 and out["voxels"] == 2


def test_summary_counts_nan_and_out_of_range_monte_carlo_estimates():
    n = 40
    table = pd.DataFrame({"fingerprint": np.arange(n), "parameter": "m0s", "unit": "1", "snr": 50.0,
                          "true": np.linspace(0.05, 0.3, n), "crb": 1e-4, "crb_domain": "coefficients"})
    table["mean"] = table.true + 0.01
    table.loc[3, "mean"] = np.nan  # a NaN estimate in one realization
    table["bias"] = table["mean"] - table.true
    table["variance"] = np.where(table["mean"].isna(), np.nan, 1e-4)
    table["out_of_range"] = 0
    table.loc[[3, 7], "out_of_range"] = [1, 5]
    s = summarize(table).iloc[0]
    assert s.n == n - 1 and s.n_undefined == 1 and s.n_out_of_range == 6
    assert s.crb_loss == pytest.approx(2.0) and np.isfinite(s.spread_ratio)
    head = headline_table({}, {"mse": table})
    assert head.set_index("parameter").loc["all", "n_out_of_range"] == 6


def test_summary_of_an_estimator_whose_every_estimate_is_nan():
    table = pd.DataFrame({"fingerprint": np.arange(5), "parameter": "T2f", "unit": "s", "snr": 50.0,
                          "true": np.linspace(0.05, 0.1, 5), "mean": np.nan, "bias": np.nan, "variance": np.nan,
                          "crb": 1e-4, "crb_domain": "coefficients", "out_of_range": 100})
    s = summarize(table).iloc[0]
    assert s.n == 0 and s.n_undefined == 5 and s.n_out_of_range == 500
    assert np.isnan([s.crb_loss, s.crb_loss_lo, s.spread_ratio]).all()


def _sequence_file(tmp_path, signal_model):
    p = signal_model.sequence.patterns[0]
    np.savez(tmp_path / "p.npz", alpha=p.alpha, TRF=p.TRF)
    (tmp_path / "s.yaml").write_text(f"kind: hybrid_state_qmt\nTR: {signal_model.sequence.TR!r}\n"
                                     "crushed: [1]\npatterns: [{file: p.npz}]\n")
    (tmp_path / "prior.yaml").write_text(
        "parameterization: apparent_t1\nparameters:\n"
        "  m0s: {dist: uniform, lower: 0.0, upper: 0.4}\n  T1: {dist: uniform, lower: 0.3, upper: 3.0}\n"
        "  T2f: {dist: uniform, lower: 0.01, upper: 0.3}\n  Rx: 20.0\n  T2s: 12e-6\n"
        "  omega0: {dist: uniform, lower: -300.0, upper: 300.0}\n  B1: 1.0\n")
    return tmp_path / "s.yaml", tmp_path / "prior.yaml"


def test_cli_fit_refines_even_a_wild_network_from_the_prior_means(qmt, tmp_path, capsys):
    signal_model, basis = qmt
    sequence, prior = _sequence_file(tmp_path, signal_model)
    from crbnet.sequences import load_sequence

    basis = svd_basis([signal_model.signal(SPACE.sample(64, 0)).numpy()], 8, load_sequence(sequence).sha256)
    _wild_network(basis).save(tmp_path / "wild.pt")
    truth = {k: np.full(4, v) for k, v in SPACE.centre().items()} | {"m0s": np.array([0.1, 0.15, 0.2, 0.25]),
                                                                    "omega0": np.array([-200.0, 0.0, 100.0, 250.0])}
    np.save(tmp_path / "c.npy", basis.project(signal_model.signal(truth).numpy()))
    base = ["fit", "--model", str(tmp_path / "wild.pt"), "--data", str(tmp_path / "c.npy"), "--out",
            str(tmp_path / "e.h5")]
    assert main([*base, "--refine", "3", "--sequence", str(sequence), "--prior", str(prior),
                 "--candidates", "omega0=6"]) == 0
    import h5py

    with h5py.File(tmp_path / "e.h5") as f:
        e, steps = f["estimates"][()], f["estimates"].attrs["refine_steps"]
    assert steps == 3 and np.isfinite(e).all()
    assert in_range({k: e[:, i] for i, k in enumerate(NAMES)}).all()  # the wild starts were replaced, then refined
    for extra, phrase in [([], "--refine needs --sequence"),
                          (["--sequence", str(sequence), "--prior", str(prior), "--candidates", "w0=4"],
                           "--candidates: candidates for w0"),
                          (["--sequence", str(sequence), "--prior", str(prior), "--candidates", "omega0"],
                           "expects NAME=COUNT")]:
        capsys.readouterr()
        assert main([*base, "--refine", "2", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert phrase in err and "\n" not in err
