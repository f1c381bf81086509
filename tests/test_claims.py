"""The claims table against synthetic Monte-Carlo tables whose answers are known in closed form."""

import numpy as np
import pandas as pd
import pytest
from crbnet.claims import CLAIMS, Evidence, claims_table
from crbnet.plotting import plot_claims


def _table(bias: np.ndarray, variance: np.ndarray, crb: np.ndarray, name: str = "T2f") -> pd.DataFrame:
    n = len(bias)
    true = np.linspace(0.05, 0.15, n)
    return pd.DataFrame({"fingerprint": np.arange(n), "parameter": name, "unit": "s", "snr": 50.0, "true": true,
                         "mean": true + bias, "bias": bias, "variance": variance, "crb": crb,
                         "crb_domain": "coefficients", "out_of_range": 0})


def _row(table: pd.DataFrame, claim: str, **where) -> pd.Series:
    rows = table[table.claim == claim]
    for k, v in where.items():
        rows = rows[rows[k] == v]
    assert len(rows) == 1
    return rows.iloc[0]


@pytest.fixture(scope="module")
def evidence():
    rng = np.random.default_rng(0)
    n = 400
    crb = rng.uniform(0.5, 2.0, n)
    efficient = _table(np.zeros(n), crb.copy(), crb)  # CRB network: unbiased, efficient
    shrunk = _table(rng.normal(0, 1, n) * np.sqrt(crb), 0.3 * crb, crb)  # MSE network: biased, variance below
    # bias-reduced against a biased CRB network: half its bias, variance moved from 0.5 to 0.9 of the bound
    crb_net = _table(0.8 * np.sqrt(crb), 0.5 * crb, crb)
    br_net = _table(0.4 * np.sqrt(crb), 0.9 * crb, crb)
    grid_mse = _table(np.full(144, 0.006), np.full(144, 1e-6), np.full(144, 1e-6))
    grid_crb = _table(np.full(144, 0.002), np.full(144, 1e-6), np.full(144, 1e-6))
    return {"qmt": Evidence({"mse": shrunk, "crb": efficient}, {"mse": grid_mse, "crb": grid_crb}, ("T2f",)),
            "mao": Evidence({"crb": crb_net, "bias_reduced": br_net, "matching": efficient})}


def test_measured_figures_and_verdicts_against_closed_forms(evidence):
    table = claims_table(evidence)
    near = _row(table, "crb_loss_near_one", experiment="qmt")
    assert near.measured == pytest.approx(1.0) and near.verdict == "holds"
    ratio = _row(table, "crb_grid_bias_below_mse", experiment="qmt")
    assert ratio.measured == pytest.approx(3.0) and ratio.lo == pytest.approx(3.0) and ratio.verdict == "holds"
    assert ratio.paper_value.startswith("2.7")
    # the MSE network: bias^2 / CRB ~ chi2(1) (mean 1 over the draws) against a variance part of 0.3
    dominated = _row(table, "mse_loss_bias_dominated", experiment="qmt")
    shrunk = evidence["qmt"].test["mse"]
    assert dominated.measured == pytest.approx(((shrunk.bias**2 - shrunk.variance) / shrunk.crb).mean())
    assert dominated.lo > 0 and dominated.verdict == "holds"
    lowers = _row(table, "bias_reduced_lowers_bias", experiment="mao")
    assert lowers.measured == pytest.approx(0.16 - 0.64) and lowers.hi < 0 and lowers.verdict == "holds"
    towards = _row(table, "bias_reduced_variance_towards_crb", experiment="mao")
    assert towards.measured == pytest.approx(0.5 - 0.1) and towards.verdict == "holds"
    # the biased CRB network of "mao": bias part 0.64 + variance part 0.5
    assert _row(table, "crb_loss_near_one", experiment="mao").measured == pytest.approx(1.14)
    matched = table[table.claim == "networks_near_matching"]
    assert set(matched.estimator) == {"crb", "bias_reduced"} and (matched.paper_value == "matching here: 1.00").all()


def test_a_claim_that_fails_and_one_that_nothing_tests():
    n = 300
    crb = np.ones(n)
    worse = _table(np.full(n, 2.0), crb, crb)  # CRB-loss 5
    table = claims_table({"e": Evidence({"crb": worse, "bias_reduced": worse.assign(bias=2.5)})})
    assert _row(table, "crb_loss_near_one").verdict == "does not hold"
    assert _row(table, "bias_reduced_lowers_bias").verdict == "does not hold"  # more bias, not less
    untested = table[table.verdict == "not tested"]
    assert set(untested.claim) == {"crb_grid_bias_below_mse", "mse_loss_bias_dominated", "networks_near_matching",
                                   "refined_at_the_bound"}
    assert set(table.claim) == {c.name for c in CLAIMS}


def test_an_unbiased_mse_network_is_not_bias_dominated():
    n = 300
    crb = np.linspace(0.5, 2.0, n)
    unbiased = _table(np.full(n, 0.1) * np.sqrt(crb), crb.copy(), crb)  # bias part 0.01, variance part 1
    row = _row(claims_table({"e": Evidence({"mse": unbiased})}), "mse_loss_bias_dominated")
    assert row.measured == pytest.approx(0.01 - 1.0) and row.verdict == "does not hold"


def test_the_refined_estimator_at_the_bound_on_the_grid():
    n = 144
    crb = np.linspace(0.5, 2.0, n)
    at = _table(np.full(n, 0.3) * np.sqrt(crb), crb.copy(), crb)  # std = sqrt(CRB), bias part 0.09
    shrunk = _table(np.full(n, 0.3) * np.sqrt(crb), 0.25 * crb, crb)  # std half the bound
    biased = _table(np.full(n, 0.6) * np.sqrt(crb), crb.copy(), crb)  # bias part 0.36
    for grid, ratio, verdict in [(at, 1.0, "holds"), (shrunk, 0.5, "does not hold"), (biased, 1.0, "does not hold")]:
        row = _row(claims_table({"e": Evidence({}, {"refined": grid}, ("T2f",))}), "refined_at_the_bound")
        assert row.measured == pytest.approx(ratio) and row.verdict == verdict


def test_undefined_bounds_and_nan_estimates_are_left_out_of_the_pairs():
    n = 200
    crb = np.ones(n)
    crb_net, br = _table(np.ones(n), crb, crb), _table(np.full(n, 0.5), crb, crb)
    crb_net.loc[:9, "crb"] = np.inf
    br.loc[10:19, ["bias", "variance", "mean"]] = np.nan
    lowers = _row(claims_table({"e": Evidence({"crb": crb_net, "bias_reduced": br})}), "bias_reduced_lowers_bias")
    assert lowers.measured == pytest.approx(0.25 - 1.0) and np.isfinite([lowers.lo, lowers.hi]).all()


def test_the_figure_draws_every_row(evidence):
    table = claims_table(evidence)
    fig = plot_claims(table)
    assert len(fig.axes) == len(CLAIMS)
    assert sum(len(ax.get_yticks()) for ax in fig.axes) == len(table)
