"""Monte-Carlo bias/variance evaluation of an estimator against the CRB (Zhang 2022 eqs. 2-5)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from crbnet.datasets import FingerprintSet, NoiseModel, generator, load_examples, read_parameters
from crbnet.estimator import Estimator
from crbnet.losses import bias_variance
from crbnet.runtime import progress as progress_bar


def noisy_estimates(estimator: Estimator, examples: FingerprintSet, snr: float, realizations: int, seed: int,
                    rows_per_batch: int = 262144, progress: bool = False
                    ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield (rows, estimates (R, b, Pe), CRBs (b, Pe)) over chunks of the examples at SNR = |M0| / sigma.

    Each fingerprint gets |M0| = 1 with a random phase and ``realizations`` noise draws, seeded by (seed, snr)."""
    if list(estimator.names) != list(examples.names):
        raise ValueError(f"estimator outputs {estimator.names} but the examples hold {examples.names}")
    gen = generator(seed, f"monte_carlo/{snr:g}")
    M0, sigma = NoiseModel(snr=(snr, snr)).draw(len(examples), gen)
    step = max(1, rows_per_batch // realizations)
    for start in progress_bar(range(0, len(examples), step), desc=f"monte carlo snr={snr:g}", disable=not progress):
        rows = slice(start, min(start + step, len(examples)))
        y, crb = examples.subset(rows).noisy(M0[rows], sigma[rows], gen, realizations)
        yield rows, torch.as_tensor(estimator.predict(y.flatten(0, 1).numpy())).unflatten(0, y.shape[:2]), crb


def monte_carlo(estimator: Estimator, examples: FingerprintSet, snr: float, realizations: int, seed: int,
                rows_per_batch: int = 262144, progress: bool = False) -> pd.DataFrame:
    """Bias, variance and CRB per fingerprint and estimated parameter at SNR = |M0| / sigma.

    Returns a long table (fingerprint, parameter, unit, snr, true, mean, bias, variance, crb, crb_domain) with
    variance over the realizations (1/R), so bias^2 + variance is the mean squared error."""
    frames = []
    for rows, est, crb in noisy_estimates(estimator, examples, snr, realizations, seed, rows_per_batch, progress):
        truth = examples.parameters[rows]
        bv = bias_variance(est, truth)
        for k, name in enumerate(examples.names):
            frames.append(pd.DataFrame({
                "fingerprint": np.arange(rows.start, rows.stop), "parameter": name, "unit": examples.units[k],
                "snr": snr, "true": truth[:, k].numpy(), "mean": bv.mean[:, k].numpy(), "bias": bv.bias[:, k].numpy(),
                "variance": bv.variance[:, k].numpy(), "crb": crb[:, k].numpy(), "crb_domain": examples.crb_domain,
            }))
    return pd.concat(frames, ignore_index=True)


def estimates_table(estimator: Estimator, examples: FingerprintSet, snr: float, realizations: int,
                    seed: int) -> pd.DataFrame:
    """Every estimate: a long table (fingerprint, realization, parameter, snr, true, estimate, crb) for box plots
    and tests on the raw distribution (Mao Fig. 1). Meant for small sets."""
    frames = []
    for rows, est, crb in noisy_estimates(estimator, examples, snr, realizations, seed):
        r, b, p = est.shape
        index = np.indices((r, b, p)).reshape(3, -1)
        frames.append(pd.DataFrame({
            "fingerprint": index[1] + rows.start, "realization": index[0],
            "parameter": np.asarray(examples.names)[index[2]], "snr": snr,
            "true": examples.parameters[rows].numpy()[index[1], index[2]], "estimate": est.numpy().ravel(),
            "crb": crb.numpy()[index[1], index[2]],
        }))
    return pd.concat(frames, ignore_index=True)


BOOTSTRAP = 1000  # resamples of the fingerprints for the 95 % intervals


def _bootstrap(values: np.ndarray, statistic, rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
    """95 % percentile interval of ``statistic`` (mean or median along axis 1) over fingerprints resampled with
    replacement."""
    if len(values) == 0:
        return np.nan, np.nan
    resampled = statistic(values[rng.integers(0, len(values), (n_boot, len(values)))], axis=1)
    lo, hi = np.percentile(resampled, [2.5, 97.5])
    return float(lo), float(hi)


def _spread_ratio(mean: np.ndarray, true: np.ndarray) -> float:
    """Std over fingerprints of the mean estimates over that of the true values: near 0 when the estimator
    returns about the same value whatever the truth (a collapsed output), 1 when it follows the truth's spread."""
    spread = np.std(true)
    return float(np.std(mean) / spread) if spread > 1e-9 * np.abs(true).max() else np.nan  # constant: float noise


def summarize(table: pd.DataFrame, n_boot: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """Per parameter and SNR: the CRB-loss and its bias and variance parts (means of bias^2/CRB and variance/CRB
    over fingerprints), the median std/sqrt(CRB) and |bias|/sqrt(CRB), each with a seeded bootstrap 95 % interval
    (``_lo``, ``_hi``) over fingerprints.

    Fingerprints whose CRB is infinite or undefined (the parameter is not identifiable there) cannot be normalized:
    they are excluded and counted in ``n_undefined``. ``variance_below_crb`` flags a variance part whose interval
    lies below 1: only a biased estimator gets there (a CRB-loss below 1 says the same of the whole loss).
    ``spread_ratio`` (std of the mean estimates over that of the truth, all fingerprints) shows a collapsed output."""
    rng = np.random.default_rng(seed)
    rows = []
    for (snr, name), g in table.groupby(["snr", "parameter"], sort=False):
        ok = np.isfinite(g.crb.to_numpy()) & (g.crb.to_numpy() > 0)
        crb, bias, variance = g.crb.to_numpy()[ok], g.bias.to_numpy()[ok], g.variance.to_numpy()[ok]
        parts = {"bias_part": bias**2 / crb, "variance_part": variance / crb}
        parts["crb_loss"] = parts["bias_part"] + parts["variance_part"]
        row = {"snr": snr, "parameter": name, "n": int(ok.sum()), "n_undefined": int((~ok).sum())}
        for key, values in parts.items():
            row[key] = values.mean() if len(values) else np.nan
            row[f"{key}_lo"], row[f"{key}_hi"] = _bootstrap(values, np.mean, rng, n_boot)
        for key, values in (("median_std_ratio", np.sqrt(parts["variance_part"])),
                            ("median_bias_ratio", np.abs(bias) / np.sqrt(crb))):
            row[key] = float(np.median(values)) if len(values) else np.nan
            row[f"{key}_lo"], row[f"{key}_hi"] = _bootstrap(values, np.median, rng, n_boot)
        row["variance_below_crb"] = bool(row["variance_part_hi"] < 1.0)
        row["spread_ratio"] = _spread_ratio(g["mean"].to_numpy(), g["true"].to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_file(estimator: Estimator, path: str | Path, snrs: Sequence[float], realizations: int, seed: int,
                  fingerprints: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Monte-Carlo table of the first ``fingerprints`` (all by default) of a dataset file at each SNR, with every
    parameter value of the fingerprint as ``at_{name}`` columns (for grids and sweeps)."""
    examples = load_examples(path, estimator.basis, estimator.names)
    if fingerprints is not None:
        examples = examples.subset(slice(0, fingerprints))
    tables = [monte_carlo(estimator, examples, snr, realizations, seed, progress=progress) for snr in snrs]
    return _with_values(pd.concat(tables, ignore_index=True), path)


def _with_values(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Every parameter value of each row's fingerprint as ``at_{name}`` columns."""
    return table.join(read_parameters(path).add_prefix("at_"), on="fingerprint")


def estimates_file(estimator: Estimator, path: str | Path, snr: float, realizations: int, seed: int) -> pd.DataFrame:
    """``estimates_table`` of a dataset file with every parameter value as ``at_{name}`` columns."""
    examples = load_examples(path, estimator.basis, estimator.names)
    return _with_values(estimates_table(estimator, examples, snr, realizations, seed), path)


def headline_table(histories: dict[str, pd.DataFrame], tests: dict[str, pd.DataFrame],
                   grids: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per estimator in ``tests`` and estimated parameter, plus a row ``all`` (mean over parameters):
    the test set's ``summarize`` figures at the evaluation SNR (CRB-loss, bias and variance parts and median
    std/sqrt(CRB) with 95 % intervals, excluded fingerprints, the below-CRB flag), the mean |bias| over the grid
    (SI units) where ``grids`` has the estimator, and for networks the final training/validation figures from
    ``histories``."""
    rows = []
    for name, test in tests.items():
        s = summarize(test).drop(columns="snr")
        means = s[["crb_loss", "bias_part", "variance_part"]].mean()
        overall = {"parameter": "all", **means, "n": s.n.min(), "n_undefined": s.n_undefined.max(),
                   "variance_below_crb": bool(s.variance_below_crb.any())}
        s = pd.concat([s, pd.DataFrame([overall])], ignore_index=True)
        s.insert(0, "estimator", name)
        s["snr"] = test.snr.iloc[0]
        s["crb_domain"] = test.crb_domain.iloc[0]
        if grids and name in grids:
            g = grids[name]
            s["grid_mean_abs_bias"] = s.parameter.map(g.assign(b=g.bias.abs()).groupby("parameter").b.mean())
        if name in histories:
            last = histories[name].iloc[-1]
            s = s.assign(epochs=int(last.epoch), train_crb_loss=last.train_crb, val_crb_loss=last.val_crb,
                         val_mse=last.val_mse)
        rows.append(s)
    return pd.concat(rows, ignore_index=True)


def learning_curve_table(runs: Sequence[tuple[int, int, str, str, pd.DataFrame]]) -> pd.DataFrame:
    """Learning curve: the ``summarize`` figures of each run, one row per (training fingerprints, optimizer steps,
    estimator, split, parameter). ``runs`` holds (training fingerprints, steps, estimator, split, Monte-Carlo table)
    tuples; comparing a split the network trained on with held-out ones separates under-fitting (both high) from
    over-fitting, and networks that differ only in steps show whether longer training would help."""
    frames = [summarize(table).assign(train_fingerprints=n, steps=steps, estimator=name, split=split)
              for n, steps, name, split, table in runs]
    out = pd.concat(frames, ignore_index=True)
    first = ["train_fingerprints", "steps", "estimator", "split", "parameter"]
    return out[first + [c for c in out.columns if c not in first]].sort_values(first[:4], kind="stable")


def welch_tests(a: pd.DataFrame, b: pd.DataFrame, swept: str) -> pd.DataFrame:
    """Welch's unequal-variances t-test of the errors (estimate - true) of two estimators at each value of the swept
    parameter and each estimated parameter: (value, parameter, t, p). Tables come from ``estimates_file``."""
    rows = []
    key = f"at_{swept}"
    for (value, name), ga in a.groupby([key, "parameter"], sort=True):
        gb = b[(b[key] == value) & (b.parameter == name)]
        t, p = stats.ttest_ind(ga.estimate - ga.true, gb.estimate - gb.true, equal_var=False)
        rows.append({"value": value, "parameter": name, "t": t, "p": p})
    return pd.DataFrame(rows)
