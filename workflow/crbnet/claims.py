"""The papers' claims, tested on the configured experiments: one row per claim, experiment, estimator and parameter
with the measured figure, its bootstrap 95 % interval, the paper's figure, the criterion and the verdict (holds /
does not hold / not tested). Reads only the Monte-Carlo tables (crbnet.evaluation), so a change here reruns no
training. Torch-free."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from crbnet.tables import BOOTSTRAP, bootstrap_interval, summarize

HOLDS, FAILS, UNTESTED = "holds", "does not hold", "not tested"
COLUMNS = ["claim", "paper", "statement", "experiment", "estimator", "parameter", "measured", "lo", "hi",
           "paper_value", "criterion", "verdict"]
CRB_LOSS_LIMIT, CRB_LOSS_UPPER_LIMIT = 1.3, 1.5  # "near 1": the CRB-loss and the upper end of its interval
REFINED_STD_RATIO, REFINED_BIAS_PART = (0.8, 1.2), 0.2  # "at the bound" on the grid (issue 29)


@dataclass(frozen=True)
class Evidence:
    """One experiment's Monte-Carlo tables: ``test`` {estimator: table} on the random test split, ``grid``
    {estimator: table} on the 2-D grid split (may be empty) and the grid parameters the figures show."""

    test: Mapping[str, pd.DataFrame]
    grid: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    grid_parameters: tuple[str, ...] = ()


def _paired(a: pd.DataFrame, b: pd.DataFrame, parameter: str) -> pd.DataFrame:
    """Rows of two Monte-Carlo tables of the same split for one parameter, aligned by fingerprint (suffixes _a, _b);
    fingerprints either estimator leaves undefined (infinite CRB, NaN estimate) are dropped."""
    keys = ["fingerprint", "parameter", "snr"]
    pick = [*keys, "true", "bias", "variance", "crb"]
    m = a.loc[a.parameter == parameter, pick].merge(b.loc[b.parameter == parameter, pick], on=keys,
                                                    suffixes=("_a", "_b"))
    ok = np.isfinite(m[["crb_a", "crb_b", "bias_a", "variance_a", "bias_b", "variance_b"]].to_numpy()).all(axis=1)
    return m[ok & (m.crb_a > 0)]


def _ratio_of_means(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Mean of column 0 over the mean of column 1 of (..., n, 2) values along the fingerprint ``axis``."""
    m = np.mean(values, axis=axis)
    return m[..., 0] / m[..., 1]


def _interval(values: np.ndarray, rng: np.random.Generator, statistic=np.mean) -> tuple[float, float, float]:
    lo, hi = bootstrap_interval(values, statistic, rng, BOOTSTRAP)
    return (float(statistic(values)) if len(values) else np.nan), lo, hi


def _row(claim: Claim, experiment: str, estimator: str, parameter: str, measured: tuple[float, float, float],
         verdict: bool, paper_value: str | None = None) -> dict:
    return {"claim": claim.name, "paper": claim.paper, "statement": claim.statement, "experiment": experiment,
            "estimator": estimator, "parameter": parameter, "measured": measured[0], "lo": measured[1],
            "hi": measured[2], "paper_value": paper_value or claim.paper_value, "criterion": claim.criterion,
            "verdict": HOLDS if verdict else FAILS}


def _crb_loss_near_one(claim, name, ev, rng):
    if "crb" not in ev.test:
        return []
    s = summarize(ev.test["crb"], seed=int(rng.integers(2**31)))
    return [_row(claim, name, "crb", r.parameter, (r.crb_loss, r.crb_loss_lo, r.crb_loss_hi),
                 r.crb_loss <= CRB_LOSS_LIMIT and r.crb_loss_hi <= CRB_LOSS_UPPER_LIMIT) for r in s.itertuples()]


def _grid_bias_below_mse(claim, name, ev, rng):
    if not {"mse", "crb"} <= set(ev.grid):
        return []
    rows = []
    for parameter in ev.grid_parameters:
        pairs = _paired(ev.grid["mse"], ev.grid["crb"], parameter)
        both = np.abs(pairs[["bias_a", "bias_b"]].to_numpy())  # |bias| of the MSE and of the CRB network
        measured = _interval(both, rng, _ratio_of_means)
        paper = "2.7 (14.1 / 5.23 ms)" if parameter == "T2f" else None
        rows.append(_row(claim, name, "mse/crb", parameter, measured, measured[1] > 1, paper))
    return rows


def _mse_loss_bias_dominated(claim, name, ev, rng):
    if "mse" not in ev.test:
        return []
    rows = []
    for parameter in ev.test["mse"].parameter.unique():
        m = _paired(ev.test["mse"], ev.test["mse"], parameter)
        measured = _interval(((m.bias_a**2 - m.variance_a) / m.crb_a).to_numpy(), rng)
        rows.append(_row(claim, name, "mse", parameter, measured, measured[1] > 0))
    return rows


def _bias_reduced_pairs(ev: Evidence) -> list[tuple[str, pd.DataFrame]]:
    if not {"crb", "bias_reduced"} <= set(ev.test):
        return []
    names = ev.test["crb"].parameter.unique()
    return [(p, _paired(ev.test["bias_reduced"], ev.test["crb"], p)) for p in names]


def _bias_reduced_lowers_bias(claim, name, ev, rng):
    rows = []
    for parameter, m in _bias_reduced_pairs(ev):
        diff = (m.bias_a**2 - m.bias_b**2).to_numpy() / m.crb_a.to_numpy()
        measured = _interval(diff, rng)
        rows.append(_row(claim, name, "bias_reduced - crb", parameter, measured, measured[2] < 0))
    return rows


def _bias_reduced_variance_towards_crb(claim, name, ev, rng):
    rows = []
    for parameter, m in _bias_reduced_pairs(ev):
        v_br, v_crb = m.variance_a.to_numpy() / m.crb_a.to_numpy(), m.variance_b.to_numpy() / m.crb_a.to_numpy()
        measured = _interval(np.abs(v_crb - 1) - np.abs(v_br - 1), rng)
        rows.append(_row(claim, name, "bias_reduced vs crb", parameter, measured, measured[1] > 0))
    return rows


def _networks_against_matching(claim, name, ev, rng):
    if "matching" not in ev.test:
        return []
    reference = summarize(ev.test["matching"]).set_index("parameter").crb_loss
    rows = []
    for estimator in [e for e in ev.test if e != "matching"]:
        for r in summarize(ev.test[estimator], seed=int(rng.integers(2**31))).itertuples():
            rows.append(_row(claim, name, estimator, r.parameter, (r.crb_loss, r.crb_loss_lo, r.crb_loss_hi),
                             r.crb_loss <= CRB_LOSS_LIMIT and r.crb_loss_hi <= CRB_LOSS_UPPER_LIMIT,
                             f"matching here: {reference[r.parameter]:.2f}"))
    return rows


def _refined_at_the_bound(claim, name, ev, rng):
    if "refined" not in ev.grid:
        return []
    rows = []
    for r in summarize(ev.grid["refined"], seed=int(rng.integers(2**31))).itertuples():
        measured = (r.median_std_ratio, r.median_std_ratio_lo, r.median_std_ratio_hi)
        rows.append(_row(claim, name, "refined", r.parameter, measured,
                         REFINED_STD_RATIO[0] <= r.median_std_ratio <= REFINED_STD_RATIO[1]
                         and r.bias_part <= REFINED_BIAS_PART, f"bias part here: {r.bias_part:.2f}"))
    return rows


@dataclass(frozen=True)
class Claim:
    name: str
    paper: str
    statement: str
    paper_value: str
    criterion: str
    test: Callable[[Claim, str, Evidence, np.random.Generator], list[dict]]


CLAIMS = (
    Claim("crb_loss_near_one", "Zhang 2022", "the CRB network's CRB-loss is near 1 on the test set",
          "about 1 (Fig. 3)", f"CRB-loss <= {CRB_LOSS_LIMIT} and its upper 95 % end <= {CRB_LOSS_UPPER_LIMIT}",
          _crb_loss_near_one),
    Claim("crb_grid_bias_below_mse", "Zhang 2022", "the CRB network's mean |bias| on the grid is below the MSE "
          "network's (measured: their ratio, MSE over CRB)", "lower", "ratio > 1: lower 95 % end above 1",
          _grid_bias_below_mse),
    Claim("mse_loss_bias_dominated", "Zhang 2022", "the MSE network's loss is dominated by its bias (measured: "
          "bias part - variance part, the mean of (bias^2 - variance)/CRB)", "bias-dominated (Fig. 7)",
          "lower 95 % end above 0", _mse_loss_bias_dominated),
    Claim("bias_reduced_lowers_bias", "Mao", "the bias-reduced network's bias part is below the CRB network's "
          "(measured: paired mean difference of bias^2/CRB)", "lower (Fig. 3)", "upper 95 % end below 0",
          _bias_reduced_lowers_bias),
    Claim("bias_reduced_variance_towards_crb", "Mao", "the bias-reduced network's variance is closer to the CRB "
          "than the CRB network's (measured: paired mean of |v_crb - 1| - |v_br - 1|, v = variance/CRB)",
          "closer (Fig. 3)", "lower 95 % end above 0", _bias_reduced_variance_towards_crb),
    Claim("networks_near_matching", "Mao", "on MRF-FISP the networks' CRB-loss is near 1, as dictionary matching's",
          "about 1 (Figs. 2, S)", f"CRB-loss <= {CRB_LOSS_LIMIT} and its upper 95 % end <= {CRB_LOSS_UPPER_LIMIT}",
          _networks_against_matching),
    Claim("refined_at_the_bound", "crbnet (beyond both)", "a network's estimates refined by Gauss-Newton steps are "
          "at the bound on the grid (measured: median std/sqrt(CRB); bias part in paper_value)", "not in the papers",
          f"median std/sqrt(CRB) in [{REFINED_STD_RATIO[0]}, {REFINED_STD_RATIO[1]}] and bias part <= "
          f"{REFINED_BIAS_PART}", _refined_at_the_bound),
)


def claims_table(evidence: Mapping[str, Evidence], seed: int = 0) -> pd.DataFrame:
    """Every claim on every experiment that can test it (seeded bootstrap intervals); a claim that no experiment
    can test gets one row with verdict ``not tested``."""
    rng = np.random.default_rng(seed)
    rows = []
    for claim in CLAIMS:
        found = [row for name, ev in evidence.items() for row in claim.test(claim, name, ev, rng)]
        rows += found or [{"claim": claim.name, "paper": claim.paper, "statement": claim.statement,
                           "paper_value": claim.paper_value, "criterion": claim.criterion, "verdict": UNTESTED}]
    return pd.DataFrame(rows, columns=COLUMNS)
