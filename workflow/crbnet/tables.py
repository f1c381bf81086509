"""Tables from estimates, free of torch (plotting and summary scripts use them): the Monte-Carlo summaries (CRB-loss,
bias and variance parts with bootstrap intervals), the headline and learning-curve tables, Welch's tests over a
parameter sweep, where the estimators fail, and the per-tissue tables of parameter maps and their agreement with a reference estimator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from crbnet.io.maps import read_maps
from crbnet.parameters import in_range

BOOTSTRAP = 1000  # resamples of the fingerprints for the 95 % intervals


def bootstrap_interval(values: np.ndarray, statistic, rng: np.random.Generator, n_boot: int) -> tuple[float, float]:
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
    if len(true) < 2:  # nothing to spread (every mean estimate NaN)
        return np.nan
    spread = np.std(true)
    return float(np.std(mean) / spread) if spread > 1e-9 * np.abs(true).max() else np.nan  # constant: float noise


def summarize(table: pd.DataFrame, n_boot: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """Per parameter and SNR: the CRB-loss and its bias and variance parts (means of bias^2/CRB and variance/CRB
    over fingerprints), the median std/sqrt(CRB) and |bias|/sqrt(CRB), each with a seeded bootstrap 95 % interval
    (``_lo``, ``_hi``) over fingerprints.

    Fingerprints whose CRB is infinite or undefined (the parameter is not identifiable there) cannot be normalized:
    they are excluded and counted in ``n_undefined``, as are fingerprints whose mean estimate is NaN (a NaN
    estimate). ``n_out_of_range`` counts the estimates (fingerprints x realizations) that were NaN or outside the
    parameter's range (column ``out_of_range`` of the Monte-Carlo table). ``variance_below_crb`` flags a variance
    part whose interval lies below 1: only a biased estimator gets there (a CRB-loss below 1 says the same of the
    whole loss). ``spread_ratio`` (std of the mean estimates over that of the truth, all fingerprints) shows a collapsed output."""
    rng = np.random.default_rng(seed)
    rows = []
    for (snr, name), g in table.groupby(["snr", "parameter"], sort=False):
        ok = (np.isfinite(g.crb.to_numpy()) & (g.crb.to_numpy() > 0) & np.isfinite(g.bias.to_numpy())
              & np.isfinite(g.variance.to_numpy()))
        crb, bias, variance = g.crb.to_numpy()[ok], g.bias.to_numpy()[ok], g.variance.to_numpy()[ok]
        parts = {"bias_part": bias**2 / crb, "variance_part": variance / crb}
        parts["crb_loss"] = parts["bias_part"] + parts["variance_part"]
        row = {"snr": snr, "parameter": name, "n": int(ok.sum()), "n_undefined": int((~ok).sum()),
               "n_out_of_range": int(g["out_of_range"].sum()) if "out_of_range" in g else 0}
        for key, values in parts.items():
            row[key] = values.mean() if len(values) else np.nan
            row[f"{key}_lo"], row[f"{key}_hi"] = bootstrap_interval(values, np.mean, rng, n_boot)
        for key, values in (("median_std_ratio", np.sqrt(parts["variance_part"])),
                            ("median_bias_ratio", np.abs(bias) / np.sqrt(crb))):
            row[key] = float(np.median(values)) if len(values) else np.nan
            row[f"{key}_lo"], row[f"{key}_hi"] = bootstrap_interval(values, np.median, rng, n_boot)
        row["variance_below_crb"] = bool(row["variance_part_hi"] < 1.0)
        finite = np.isfinite(g["mean"].to_numpy())
        row["spread_ratio"] = _spread_ratio(g["mean"].to_numpy()[finite], g["true"].to_numpy()[finite])
        rows.append(row)
    return pd.DataFrame(rows)


def headline_table(histories: dict[str, pd.DataFrame], tests: dict[str, pd.DataFrame],
                   grids: dict[str, pd.DataFrame] | None = None) -> pd.DataFrame:
    """One row per estimator in ``tests`` and estimated parameter, plus a row ``all`` (mean over parameters):
    the test set's ``summarize`` figures at the evaluation SNR (CRB-loss, bias and variance parts and median
    std/sqrt(CRB) with 95 % intervals, excluded fingerprints, the below-CRB flag), the mean |bias| over the grid
    (SI units) and the median std/sqrt(CRB) there (typical tissue rather than the whole prior) where ``grids`` has
    the estimator, and for networks the final training/validation figures from
    ``histories``."""
    rows = []
    for name, test in tests.items():
        s = summarize(test).drop(columns="snr")
        means = s[["crb_loss", "bias_part", "variance_part"]].mean()
        overall = {"parameter": "all", **means, "n": s.n.min(), "n_undefined": s.n_undefined.max(),
                   "n_out_of_range": s.n_out_of_range.sum(), "variance_below_crb": bool(s.variance_below_crb.any())}
        s = pd.concat([s, pd.DataFrame([overall])], ignore_index=True)
        s.insert(0, "estimator", name)
        s["snr"] = test.snr.iloc[0]
        s["crb_domain"] = test.crb_domain.iloc[0]
        if grids and name in grids:
            g = grids[name]
            ratio = np.sqrt(g.variance / g.crb.where(np.isfinite(g.crb)))  # undefined CRBs left out, as in summarize
            by = g.assign(b=g.bias.abs(), r=ratio).groupby("parameter")  # NaN estimates left out (skipna)
            s["grid_mean_abs_bias"] = s.parameter.map(by.b.mean())
            s["grid_median_std_ratio"] = s.parameter.map(by.r.median())
        if name in histories:
            last = histories[name].iloc[-1]
            s = s.assign(epochs=int(last.epoch), train_crb_loss=last.train_crb, val_crb_loss=last.val_crb,
                         val_mse=last.val_mse)
        rows.append(s)
    return pd.concat(rows, ignore_index=True)


def failure_table(tables: Mapping[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """Where estimators fail, per (estimator, evaluated split or sweep) Monte-Carlo table, SNR and parameter: the
    fractions of estimates NaN or outside the parameter's range (``out_of_range``), on or beyond an edge of the
    prior's range (``at_prior_edge``: where NLLS and the refined estimator stop), and of fingerprints whose CRB is
    undefined (not finite) or whose mean estimate is NaN. Nothing is dropped: these are the rows other tables count."""
    rows = []
    for (estimator, source), table in tables.items():
        for (snr, parameter), g in table.groupby(["snr", "parameter"], sort=False):
            draws = int(g["realizations"].sum())
            rows.append({"estimator": estimator, "table": source, "snr": snr, "parameter": parameter,
                         "fingerprints": len(g), "realizations": int(g["realizations"].iloc[0]),
                         "out_of_range_fraction": g["out_of_range"].sum() / draws,
                         "at_prior_edge_fraction": g["at_prior_edge"].sum() / draws,
                         "undefined_crb_fraction": float((~np.isfinite(g["crb"])).mean()),
                         "nan_mean_fraction": float(g["mean"].isna().mean())})
    return pd.DataFrame(rows)


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


def sequence_comparison_table(runs: Sequence[tuple[str, str, str, pd.DataFrame]]) -> pd.DataFrame:
    """The ``summarize`` figures of every (experiment, sequence, estimator, Monte-Carlo table) run, plus the medians
    over the fingerprints of sqrt(CRB) and of the RMSE, sqrt(bias^2 + variance), relative to the true value, one row
    per run, SNR and parameter: which sequence gives the lower bound, and which estimator errs least with each. The
    CRB-loss is relative to each sequence's own bound; the relative RMSE compares sequences on one scale."""
    frames = []
    for experiment, sequence, estimator, table in runs:
        by = [table.snr, table.parameter]
        bound = (np.sqrt(table.crb) / table.true.abs()).groupby(by, sort=False).median()
        error = (np.hypot(table.bias, np.sqrt(table.variance)) / table.true.abs()).groupby(by, sort=False).median()
        s = summarize(table).assign(experiment=experiment, sequence=sequence, estimator=estimator)
        keys = list(zip(s.snr, s.parameter))
        frames.append(s.assign(median_relative_sqrt_crb=[bound[k] for k in keys],
                               median_relative_rmse=[error[k] for k in keys]))
    out = pd.concat(frames, ignore_index=True)
    first = ["experiment", "sequence", "estimator", "snr", "parameter"]
    return out[first + [c for c in out.columns if c not in first]]


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


def eroded(labels: np.ndarray) -> np.ndarray:
    """Labels with every voxel that has an in-plane neighbour of another label set to 0 (partial-volume edge)."""
    keep = labels.copy()
    for axis in (0, 1):
        for shift in (-1, 1):
            keep[np.roll(labels, shift, axis=axis) != labels] = 0
    return keep


def phantom_maps(phantom, paths: Mapping[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """The true maps of a ``crbnet.phantoms.Phantom`` (source ``truth``) and every estimator's maps (files of
    crbnet.io.maps.save_maps, keyed by estimator), each over the estimated parameters."""
    estimates = {name: read_maps(path)[0] for name, path in paths.items()}
    names = list(next(iter(estimates.values())))
    return {"truth": {k: phantom.maps[k] for k in names}} | estimates


def roi_table(labels: np.ndarray, tissues: Mapping[int, str], maps: Mapping[str, Mapping[str, np.ndarray]],
              erode: bool = False) -> pd.DataFrame:
    """Long table (estimator, tissue, parameter, value) of every voxel of every tissue; ``erode`` drops voxels with a
    neighbour of another label in the image plane (the CRB paper's tube analysis)."""
    keep = eroded(labels) if erode else labels
    frames = []
    for source, images in maps.items():
        for label, tissue in tissues.items():
            inside = keep == label
            for name, image in images.items():
                frames.append(pd.DataFrame({"estimator": source, "tissue": tissue, "parameter": name,
                                            "value": image[inside]}))
    return pd.concat(frames, ignore_index=True)


def paired_table(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Voxel pairs (estimator, tissue, parameter, reference, value) of a ``roi_table``: every other source's value
    next to the ``reference`` estimator's in the same voxel, wherever that is finite (NLLS maps a sample of voxels)."""
    keys = ["tissue", "parameter", "voxel"]
    table = table.assign(voxel=table.groupby(["estimator", "tissue", "parameter"], sort=False).cumcount())
    ref = table[table.estimator == reference].dropna(subset=["value"])[keys + ["value"]]
    pairs = table[table.estimator != reference].merge(ref.rename(columns={"value": "reference"}), on=keys)
    return pairs.drop(columns="voxel")


def agreement(pairs: pd.DataFrame, by: Sequence[str] = ("estimator", "parameter")) -> pd.DataFrame:
    """Median signed and absolute relative difference (%) from the reference, the voxel count and
    ``n_out_of_range`` (the other estimator's values NaN or outside the parameter's range; NaN ones are not in the
    medians), per group of a ``paired_table``."""
    rel = 100 * (pairs.value - pairs.reference) / pairs.reference.abs()
    return (pairs.assign(rel=rel, abs_rel=rel.abs(), outside=_out_of_range(pairs)).groupby(list(by), sort=False)
            .agg(median_rel_diff_pct=("rel", "median"), median_abs_rel_diff_pct=("abs_rel", "median"),
                 voxels=("rel", "count"), n_out_of_range=("outside", "sum")).reset_index())


def _out_of_range(table: pd.DataFrame) -> pd.Series:
    """Rows of a long table (parameter, value) whose value is NaN or outside the parameter's range
    (``crbnet.parameters.in_range``)."""
    outside = pd.Series(False, index=table.index)
    for name, g in table.groupby("parameter", sort=False):
        outside[g.index] = ~in_range({name: g.value.to_numpy()})
    return outside


def tissue_bias(labels: np.ndarray, tissues: Mapping[int, str], truth: Mapping[str, np.ndarray],
                maps: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """Per estimator, tissue and parameter of ``maps`` ({estimator: {parameter: image}}): the true value, the mean,
    std and count of the estimates over the tissue's interior voxels (``eroded``; NaN voxels, those NLLS did not
    fit, left out), the bias (mean - truth) and the relative bias in % (NaN where the truth is 0), and
    ``n_out_of_range``: the finite estimates outside the parameter's range, which enter the mean as returned."""
    table = roi_table(labels, tissues, maps, erode=True).dropna(subset=["value"])
    keys = ["estimator", "tissue", "parameter"]
    table = table.assign(outside=_out_of_range(table))
    stats = (table.groupby(keys, sort=False).agg(mean=("value", "mean"), std=("value", "std"),
                                                  count=("value", "count"), n_out_of_range=("outside", "sum"))
             .reset_index())
    names = stats.parameter.unique()
    true = (roi_table(labels, tissues, {"truth": {k: truth[k] for k in names}}, erode=True)
            .groupby(["tissue", "parameter"]).value.median().rename("truth").reset_index())
    stats = stats.merge(true, on=["tissue", "parameter"])
    stats["bias"] = stats["mean"] - stats["truth"]
    stats["rel_bias_pct"] = 100 * stats["bias"] / stats["truth"].abs().where(stats["truth"] != 0)
    return stats


def recon_bias_table(labels: np.ndarray, tissues: Mapping[int, str], truth: Mapping[str, np.ndarray],
                     gaussian: Mapping[str, Mapping[str, np.ndarray]],
                     recon: Mapping[str, Mapping[str, np.ndarray]]) -> pd.DataFrame:
    """``tissue_bias`` of every estimator with Gaussian-noise coefficients and with reconstructed ones side by side
    (suffixes _gaussian, _recon; NaN where one side has no finite estimate in the tissue), and the change of the
    bias and of the relative bias (recon - gaussian)."""
    keys = ["estimator", "tissue", "parameter", "truth"]
    table = tissue_bias(labels, tissues, truth, gaussian).merge(tissue_bias(labels, tissues, truth, recon), on=keys,
                                                                how="outer", sort=False, suffixes=("_gaussian", "_recon"))
    table["bias_change"] = table.bias_recon - table.bias_gaussian
    table["rel_bias_change_pct"] = table.rel_bias_pct_recon - table.rel_bias_pct_gaussian
    return table


def coefficient_errors(errors: Mapping[str, np.ndarray], reference: np.ndarray, labels: np.ndarray,
                       tissues: Mapping[int, str], snr: float) -> pd.DataFrame:
    """Errors e (X, Y, Z, r) of coefficient images against the noiseless projection ``reference``, per source of
    ``errors``, region (each tissue the image has, and 'all' of the mask) and coefficient (1..r, and 'all'):
    ``relative_error`` sqrt(sum |e|^2 / sum |reference|^2) and ``rms_times_snr``, the RMS of e per real channel in
    units of the noise std 1/``snr`` (about 1 for complex Gaussian noise at that SNR; for the reconstruction of the
    acquisition's noise alone, its noise amplification factor)."""
    regions = {"all": labels > 0} | {name: labels == label for label, name in tissues.items() if np.any(labels == label)}
    rows = []
    for source, error in errors.items():
        for region, inside in regions.items():
            err, ref = np.abs(error[inside]) ** 2, np.abs(reference[inside]) ** 2
            per = zip(np.sqrt(err.sum(axis=0) / ref.sum(axis=0)), snr * np.sqrt(err.mean(axis=0) / 2))
            rows += [{"source": source, "region": region, "coefficient": str(k + 1), "relative_error": e,
                      "rms_times_snr": n} for k, (e, n) in enumerate(per)]
            rows.append({"source": source, "region": region, "coefficient": "all",
                         "relative_error": float(np.sqrt(err.sum() / ref.sum())),
                         "rms_times_snr": float(snr * np.sqrt(err.mean() / 2))})
    return pd.DataFrame(rows)
