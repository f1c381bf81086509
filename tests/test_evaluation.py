"""The summary statistics of a Monte-Carlo table against direct computations on synthetic tables."""

import numpy as np
import pandas as pd
import pytest
from crbnet.tables import headline_table, summarize


def _table(n: int, bias: np.ndarray, variance: np.ndarray, crb: np.ndarray, name: str = "T1") -> pd.DataFrame:
    return pd.DataFrame({"fingerprint": np.arange(n), "parameter": name, "unit": "s", "snr": 50.0, "true": 1.0,
                         "mean": 1.0 + bias, "bias": bias, "variance": variance, "crb": crb,
                         "crb_domain": "coefficients"})


def test_efficient_unbiased_estimator_scores_one_with_a_tight_interval():
    rng = np.random.default_rng(0)
    n = 4000
    crb = 10.0 ** rng.uniform(-6, 2, n)  # weights over eight decades do not matter when variance = CRB
    row = summarize(_table(n, np.zeros(n), crb.copy(), crb)).iloc[0]
    assert row.crb_loss == pytest.approx(1.0) and row.median_std_ratio == pytest.approx(1.0)
    assert row.crb_loss_lo == pytest.approx(1.0) and row.crb_loss_hi == pytest.approx(1.0)
    assert not row.variance_below_crb and row.n == n and row.n_undefined == 0
    assert np.isnan(row.spread_ratio)  # the synthetic truth is constant: no spread to follow


def test_parts_intervals_and_the_below_crb_flag():
    rng = np.random.default_rng(1)
    n = 2000
    crb = rng.uniform(0.5, 2.0, n)
    bias = rng.normal(0, 0.5, n) * np.sqrt(crb)
    variance = 0.25 * crb * rng.uniform(0.5, 1.5, n)  # std at half the bound: only possible with bias
    row = summarize(_table(n, bias, variance, crb), n_boot=500, seed=3).iloc[0]
    assert row.bias_part == pytest.approx(np.mean(bias**2 / crb))
    assert row.variance_part == pytest.approx(np.mean(variance / crb))
    assert row.crb_loss == pytest.approx(row.bias_part + row.variance_part)
    assert row.median_std_ratio == pytest.approx(np.median(np.sqrt(variance / crb)))
    # the interval is about mean +- 1.96 standard errors
    se = np.std(bias**2 / crb + variance / crb) / np.sqrt(n)
    assert row.crb_loss_hi - row.crb_loss_lo == pytest.approx(2 * 1.96 * se, rel=0.2)
    assert row.crb_loss_lo < row.crb_loss < row.crb_loss_hi
    assert row.variance_below_crb
    again = summarize(_table(n, bias, variance, crb), n_boot=500, seed=3).iloc[0]
    assert again.crb_loss_lo == row.crb_loss_lo  # seeded


def test_spread_ratio_detects_a_collapsed_output():
    rng = np.random.default_rng(5)
    true = rng.uniform(0.0, 0.3, 500)
    collapsed = pd.DataFrame({"fingerprint": np.arange(500), "parameter": "m0s", "snr": 50.0, "true": true,
                              "mean": 0.12 + 0.001 * rng.normal(size=500), "variance": 1e-6, "crb": 1e-4})
    collapsed["bias"] = collapsed["mean"] - true
    following = collapsed.assign(mean=true + 0.01 * rng.normal(size=500))
    following["bias"] = following["mean"] - true
    assert summarize(collapsed).spread_ratio.iloc[0] < 0.02
    assert summarize(following).spread_ratio.iloc[0] == pytest.approx(1.0, abs=0.05)


def test_infinite_crbs_are_excluded_and_counted():
    crb = np.array([1.0, np.inf, 4.0, np.nan, 1.0])
    bias = np.array([1.0, 0.5, 2.0, 0.1, 0.0])
    variance = np.array([1.0, 3.0, 4.0, 1.0, 2.0])
    row = summarize(_table(5, bias, variance, crb)).iloc[0]
    assert row.n == 3 and row.n_undefined == 2
    assert row.crb_loss == pytest.approx(np.mean([2.0, 2.0, 2.0]))  # inf CRBs would have counted as 0


def test_headline_has_a_row_per_parameter_and_the_mean():
    n = 50
    rng = np.random.default_rng(2)
    tables = [_table(n, rng.normal(size=n), rng.uniform(1, 2, n), np.ones(n), name) for name in ("m0s", "T2f")]
    test = pd.concat(tables, ignore_index=True)
    grid = test.assign(bias=-test.bias, variance=4.0 * test.crb)
    grid.loc[n: n + 29, "crb"] = np.inf  # 30 of T2f's 50 bounds undefined: left out, not counted as std ratio 0
    history = pd.DataFrame({"epoch": [1, 2], "train_crb": [3.0, 2.0], "val_crb": [4.0, 2.5], "val_mse": [1.0, 0.5]})
    h = headline_table({"crb": history}, {"crb": test, "matching": test}, {"crb": grid})
    assert list(h.parameter) == ["m0s", "T2f", "all"] * 2
    crb = h[h.estimator == "crb"].set_index("parameter")
    assert crb.loc["all", "crb_loss"] == pytest.approx(crb.loc[["m0s", "T2f"], "crb_loss"].mean())
    assert crb.loc["T2f", "grid_mean_abs_bias"] == pytest.approx(tables[1].bias.abs().mean())
    assert crb.loc["T2f", "grid_median_std_ratio"] == pytest.approx(2.0)  # std twice sqrt(CRB) on the grid
    assert crb.val_crb_loss.eq(2.5).all() and h[h.estimator == "matching"].val_crb_loss.isna().all()


def test_learning_curve_table_and_figure():
    from crbnet.plotting import plot_learning_curve
    from crbnet.tables import learning_curve_table

    rng = np.random.default_rng(4)
    runs = []
    for n, steps, scale in ((3072, 900, 4.0), (12288, 3600, 2.0)):
        for split in ("train", "test"):
            crb = np.ones(64)
            runs.append((n, steps, "crb", split,
                         _table(64, np.zeros(64), scale * crb * rng.uniform(0.9, 1.1, 64), crb)))
    table = learning_curve_table(runs)
    assert list(table.columns[:5]) == ["train_fingerprints", "steps", "estimator", "split", "parameter"]
    by = table.set_index(["train_fingerprints", "split"]).crb_loss
    assert by[(3072, "test")] == pytest.approx(4.0, rel=0.05) and by[(12288, "test")] == pytest.approx(2.0, rel=0.05)
    for x, ticks in (("fingerprints", [3072, 12288]), ("steps", [900, 3600])):
        fig = plot_learning_curve(table, x)
        assert len(fig.axes[0].get_lines()) >= 2 + 1  # a line per split and the efficient value
        assert list(fig.axes[0].get_xticks()) == ticks


def test_sequence_comparison_table_reports_each_sequences_bound_and_loss():
    from crbnet.plotting import plot_sequence_comparison
    from crbnet.tables import sequence_comparison_table

    n = 200
    crb_a, crb_b = np.full(n, 0.04), np.full(n, 0.01)  # sequence b halves sqrt(CRB): 20 % -> 10 % of true = 1
    efficient = _table(n, np.zeros(n), crb_b.copy(), crb_b)
    biased = _table(n, np.full(n, 0.2), crb_a.copy(), crb_a)  # bias^2/CRB = 1, variance part 1
    table = sequence_comparison_table([("a", "seq_a", "crb", biased), ("b", "seq_b", "crb", efficient)])
    rows = table.set_index("experiment")
    assert list(table.columns[:5]) == ["experiment", "sequence", "estimator", "snr", "parameter"]
    assert rows.loc["a", "median_relative_sqrt_crb"] == pytest.approx(0.2)
    assert rows.loc["b", "median_relative_sqrt_crb"] == pytest.approx(0.1)
    assert rows.loc["a", "crb_loss"] == pytest.approx(2.0) and rows.loc["b", "crb_loss"] == pytest.approx(1.0)
    assert rows.loc["a", "sequence"] == "seq_a"
    # one scale across sequences: sqrt(bias^2 + variance) / true, 0.2 * sqrt(2) against 0.1
    assert rows.loc["a", "median_relative_rmse"] == pytest.approx(0.2 * np.sqrt(2))
    assert rows.loc["b", "median_relative_rmse"] == pytest.approx(0.1)
    fig = plot_sequence_comparison(table)
    heights = sorted(round(p.get_height(), 6) for p in fig.axes[1].patches)  # bottom row: bound, then RMSE
    assert heights == pytest.approx(sorted([20.0, 10.0, 100 * 0.2 * np.sqrt(2), 10.0]))


class _Linear:
    """A linear estimator of (m0s, T1, T2f) from the real and imaginary parts of the coefficients: W^T x + b."""

    names, units = ("m0s", "T1", "T2f"), ("1", "s", "s")

    def __init__(self, basis, W, b):
        self.basis, self.W, self.b = basis, W, b

    def predict(self, data, **_):
        y = np.asarray(data)
        return np.concatenate([y.real, y.imag], 1) @ self.W + self.b


def test_the_biased_bound_of_linear_estimators_in_closed_form():
    """For a linear estimator W^T x the bound is sigma^2 |P_A w|^2 (A the real Jacobian of the data): equal to its
    variance sigma^2 |w|^2 when w lies in the span of A (least squares: the CRB), below it otherwise."""
    import torch
    from conftest import short_sequence
    from crbnet.basis import svd_basis
    from crbnet.evaluation import biased_bound
    from crbnet.parameters import PARAMETERIZATIONS, ParameterSpace
    from crbnet.signals.qmt import QMTSignalModel

    space = ParameterSpace.from_config({"parameterization": "apparent_t1", "parameters": {
        "m0s": {"dist": "uniform", "lower": 0.05, "upper": 0.3}, "T1": {"dist": "uniform", "lower": 0.6, "upper": 2.0},
        "T2f": {"dist": "uniform", "lower": 0.03, "upper": 0.15}, "Rx": {"dist": "uniform", "lower": 20, "upper": 60},
        "T2s": {"dist": "uniform", "lower": 8e-6, "upper": 16e-6},
        "omega0": {"dist": "uniform", "lower": -300, "upper": 300}, "B1": {"dist": "uniform", "lower": 0.8, "upper": 1.2}}})
    model = QMTSignalModel(short_sequence(120, seed=2), PARAMETERIZATIONS["apparent_t1"])
    basis = svd_basis([model.signal(space.sample(256, 0)).numpy()], 10, "s")
    point = space.sample(1, 5)
    names = model.parameterization.names
    s, j = model.simulate(point, names)
    U = torch.as_tensor(basis.U, dtype=torch.complex128)
    c = (s @ U.conj())[0]
    cols = torch.cat([c[:, None], 1j * c[:, None], (j[0].mT @ U.conj()).mT], 1)
    A = torch.cat([cols.real, cols.imag], 0).numpy()  # (2r, 9)
    snr = 40.0
    pick = np.zeros((9, 3))
    pick[[2 + names.index(k) for k in _Linear.names], [0, 1, 2]] = 1
    least_squares = A @ np.linalg.solve(A.T @ A, pick)  # (2r, 3): unbiased to first order, variance = CRB
    crb = np.diag(pick.T @ np.linalg.solve(A.T @ A, pick)) / snr**2
    rng = np.random.default_rng(0)
    perp = rng.normal(size=(20, 3))
    perp -= A @ np.linalg.lstsq(A, perp, rcond=None)[0]  # orthogonal to the span of A
    perp *= np.sqrt(crb) * snr / np.linalg.norm(perp, axis=0)  # adds one CRB of variance
    for W, expected_bound, expected_variance in [(least_squares, crb, crb), (0.5 * least_squares + perp, 0.25 * crb,
                                                                              1.25 * crb)]:
        table = biased_bound(_Linear(basis, W, 0.1), model, point, snr, realizations=4000, seed=1)
        np.testing.assert_allclose(table.crb, crb, rtol=1e-6)
        np.testing.assert_allclose(table.biased_bound, expected_bound, rtol=1e-5)
        np.testing.assert_allclose(table.variance, expected_variance, rtol=0.12)


class _Stuck:
    """An estimator stuck at the lower edge of R2f's prior range, with NaN omega0 estimates."""

    names, units = ("R2f", "omega0"), ("1/s", "rad/s")

    def __init__(self, basis):
        self.basis = basis

    def predict(self, data, **options):
        return np.tile([10.0, np.nan], (len(data), 1))


def test_failures_are_counted_per_table_snr_and_parameter():
    from conftest import toy_examples
    from crbnet.evaluation import monte_carlo
    from crbnet.tables import failure_table

    basis, examples = toy_examples(n=12)
    ranges = {"R2f": (10.0, 40.0), "omega0": (-20.0, 20.0)}
    tables = {("stuck", "test"): pd.concat([monte_carlo(_Stuck(basis), examples, snr, 5, 0, ranges=ranges)
                                            for snr in (10.0, 50.0)])}
    raw = tables["stuck", "test"]
    assert set(raw.realizations) == {5}
    assert (raw[raw.parameter == "R2f"].at_prior_edge == 5).all() and (raw[raw.parameter == "R2f"].out_of_range == 0).all()
    assert (raw[raw.parameter == "omega0"].at_prior_edge == 0).all()  # NaN is out of range, not at an edge
    assert (raw[raw.parameter == "omega0"].out_of_range == 5).all()
    table = failure_table(tables).set_index(["snr", "parameter"])
    assert len(table) == 4 and set(table.fingerprints) == {12} and set(table.estimator) == {"stuck"}
    assert (table.xs("R2f", level="parameter").at_prior_edge_fraction == 1.0).all()
    omega0 = table.xs("omega0", level="parameter")
    assert (omega0.out_of_range_fraction == 1.0).all() and (omega0.nan_mean_fraction == 1.0).all()
    assert (table.undefined_crb_fraction == 0).all()
    without = monte_carlo(_Stuck(basis), examples, 10.0, 5, 0)  # no ranges: nothing is at an edge
    assert (without.at_prior_edge == 0).all()
