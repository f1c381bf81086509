"""Figures in one consistent style; each reads a small table or the sequence, never training outputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from cmcrameri import cm

from crbnet.io.atomic import atomic_path
from crbnet.parameters import parameter
from crbnet.sequences import FISPSequence, QMTSequence
from crbnet.tables import agreement


def _style() -> None:
    sns.set_theme(context="paper", style="ticks", font_scale=1.1)


def save(fig: plt.Figure, paths: Sequence[str | Path]) -> None:
    """Write the figure to every path (format from the suffix), atomically, and close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(path).suffix[1:])
    plt.close(fig)


def plot_sequence(sequence: QMTSequence | FISPSequence) -> plt.Figure:
    """Flip angle (deg) and pulse duration (us) against time, one column per pattern, crushed pulses marked (qMT);
    flip angle (deg) and TR (ms) against the excitation index (MRF-FISP)."""
    _style()
    if isinstance(sequence, FISPSequence):
        fig, axes = plt.subplots(2, 1, figsize=(6, 4.5), sharex=True)
        axes[0].plot(np.rad2deg(sequence.flip_angle), lw=0.8, color="k")
        axes[1].plot(np.asarray(sequence.TR) * 1e3, lw=0.8, color="C0")
        axes[0].set(ylabel=r"$\alpha$ (deg)", title=f"MRF-FISP, {sequence.n_samples} excitations, "
                    f"TE = {sequence.TE * 1e3:g} ms, TI = {sequence.TI * 1e3:g} ms")
        axes[1].set(ylabel="TR (ms)", xlabel="excitation")
        sns.despine(fig)
        fig.tight_layout()
        return fig
    k = len(sequence.patterns)
    fig, axes = plt.subplots(2, k, figsize=(4.5 * k + 1.5, 4.5), sharex=True, squeeze=False)
    for j, p in enumerate(sequence.patterns):
        t = np.arange(p.n_pulses) * sequence.TR
        axes[0, j].plot(t, np.rad2deg(p.alpha), lw=0.8, color="k")
        axes[0, j].plot(t[p.crushed], np.rad2deg(p.alpha[p.crushed]), "o", color="C3", ms=4, label="crushed")
        axes[1, j].plot(t, p.TRF * 1e6, lw=0.8, color="C0")
        axes[1, j].set_xlabel("time (s)")
        axes[0, j].set_title(f"pattern {j + 1}" if k > 1 else f"{p.n_pulses} pulses, TR = {sequence.TR * 1e3:g} ms")
    axes[0, 0].set_ylabel(r"$\alpha$ (deg)")
    axes[1, 0].set_ylabel(r"$T_\mathrm{RF}$ ($\mu$s)")
    axes[0, 0].legend(frameon=False)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_design(table: pd.DataFrame, sequences: Mapping[str, QMTSequence], draws: bool = False) -> plt.Figure:
    """Top: the flip angles (deg) of every sequence against time (first pattern); bottom: sqrt(CRB) in % of the
    value per tissue and parameter (``draws``, the tissues are prior draws: per parameter, the median and quartiles
    over them), one bar per sequence, RF energy in the legend (table: crbnet.design.crb_table)."""
    _style()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6.5))
    for i, (name, seq) in enumerate(sequences.items()):
        p = seq.patterns[0]
        top.plot(np.arange(p.n_pulses) * seq.TR, np.rad2deg(p.alpha), lw=0.8, color=f"C{i}", label=name)
    top.set(xlabel="time (s)", ylabel=r"$\alpha$ (deg)")
    top.legend(frameon=False, fontsize="small")
    table = table.assign(relative=100 * table.sqrt_crb / table.value)
    key = ["parameter"] if draws else ["tissue", "parameter"]
    groups = table[key].drop_duplicates().apply(" ".join, axis=1).tolist()
    width = 0.8 / len(sequences)
    for i, name in enumerate(sequences):
        rows = table[table.sequence == name]
        x = np.arange(len(groups)) + (i - (len(sequences) - 1) / 2) * width
        label = f"{name} (RF energy {rows.rf_energy.iloc[0]:.3g} rad$^2$/s)"
        if draws:
            q = rows.groupby("parameter", sort=False).relative.quantile([0.25, 0.5, 0.75]).unstack()
            bottom.bar(x, q[0.5], width, yerr=[q[0.5] - q[0.25], q[0.75] - q[0.5]], color=f"C{i}", label=label,
                       capsize=2)
        else:
            bottom.bar(x, rows.relative, width, color=f"C{i}", label=label)
    bottom.set_xticks(np.arange(len(groups)), [g.replace("_", " ") for g in groups], rotation=30, ha="right")
    ylabel = r"$\sqrt{\mathrm{CRB}}$ / value (%)"
    bottom.set(ylabel=f"median over {table.tissue.nunique()} draws of {ylabel}" if draws else ylabel, yscale="log")
    bottom.legend(frameon=False, fontsize="small")
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_crb_slice(table: pd.DataFrame, x: str, y: str, estimate: Sequence[str], sigma: float) -> plt.Figure:
    """Relative sqrt(CRB) (in % of the true value; absolute for omega0) over a 2-D parameter slice."""
    _style()
    fig, axes = plt.subplots(1, len(estimate), figsize=(3.2 * len(estimate), 3.0), squeeze=False)
    for ax, name in zip(axes[0], estimate):
        relative = name != "omega0"
        z = table[f"sqrt_crb_{name}"] * (100 / table[name] if relative else 1)
        grid = table.assign(z=z).pivot(index=y, columns=x, values="z")
        mesh = ax.pcolormesh(grid.columns, grid.index, grid.to_numpy(), cmap=cm.batlow, shading="nearest")
        fig.colorbar(mesh, ax=ax, label="%" if relative else parameter(name).unit)
        ax.set_title(rf"$\sqrt{{\mathrm{{CRB}}}}$({name})")
        ax.set_xlabel(f"{x} ({parameter(x).unit})")
        ax.set_ylabel(f"{y} ({parameter(y).unit})")
    fig.suptitle(rf"$\sigma = {sigma:g}$, $|M_0| = 1$", y=1.02)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------- network evaluation
# Estimators: the networks by training loss, dictionary matching, NLLS and the refined estimator.
LABELS = {"mse": "MSE", "crb": "CRB-weighted", "bias_reduced": "bias-reduced", "matching": "dictionary matching",
          "nlls": "NLLS", "refined": "refined (Gauss-Newton)"}
COLORS = {"mse": "C0", "crb": "C3", "bias_reduced": "C2", "matching": "C1", "nlls": "C4", "refined": "C5"}
# Display units: times in ms or us, the rest in SI.
DISPLAY = {"T1": (1.0, "s"), "T2f": (1e3, "ms"), "T2": (1e3, "ms"), "T2s": (1e6, "us"), "R1f": (1.0, "1/s"),
           "R2f": (1.0, "1/s")}


def _display(name: str) -> tuple[float, str]:
    return DISPLAY.get(name, (1.0, parameter(name).unit))


def _map_cmap(name: str):
    """cmcrameri maps for qMRI: lipari for T1/R1, navia for T2/R2, batlow otherwise."""
    if name in ("T1", "R1f", "R1s"):
        return cm.lipari
    if name in ("T2f", "T2", "R2f", "T2s"):
        return cm.navia
    return cm.batlow


def plot_loss_curves(histories: dict[str, pd.DataFrame]) -> plt.Figure:
    """Zhang Fig. 3: training (dashed) and validation (solid) MSE and CRB-loss per epoch for each network."""
    _style()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for loss, h in histories.items():
        for ax, metric in zip(axes, ("mse", "crb")):
            ax.plot(h.epoch, h[f"train_{metric}"], ls="--", lw=1, color=COLORS[loss])
            ax.plot(h.epoch, h[f"val_{metric}"], lw=1.3, color=COLORS[loss], label=f"{LABELS[loss]} network")
    axes[0].set_ylabel("MSE (scaled parameters)")
    axes[1].set_ylabel("CRB-loss")
    axes[1].axhline(1.0, color="k", lw=0.8, ls=":")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
    axes[0].legend(frameon=False)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_grid_bias_std(tables: dict[str, pd.DataFrame], x: str, y: str, names: Sequence[str]) -> plt.Figure:
    """Zhang Fig. 4: bias and standard deviation of each of ``names`` over a 2-D grid for each estimator, next to
    sqrt(CRB); one row per parameter and estimator, colour ranges shared per parameter."""
    _style()
    fig, axes = plt.subplots(len(tables) * len(names), 3, figsize=(10.5, 3.0 * len(tables) * len(names)),
                             squeeze=False)

    def show(ax, rows, values, cmap, vmin, vmax, title, unit):
        grid = rows.assign(z=values).pivot(index=f"at_{y}", columns=f"at_{x}", values="z")
        mesh = ax.pcolormesh(grid.columns * _display(x)[0], grid.index * _display(y)[0], grid.to_numpy(), cmap=cmap,
                             vmin=vmin, vmax=vmax, shading="nearest")
        fig.colorbar(mesh, ax=ax, label=unit)
        ax.set_title(title)
        ax.set_xlabel(f"{x} ({_display(x)[1]})")
        ax.set_ylabel(f"{y} ({_display(y)[1]})")

    rows_of = iter(axes)
    for name in names:
        scale, unit = _display(name)
        sel = {k: t[t.parameter == name] for k, t in tables.items()}
        crb = np.sqrt(next(iter(sel.values())).crb) * scale
        spread_max = max(max(np.sqrt(r.variance).max() for r in sel.values()) * scale, crb.max())
        bias_max = max(r.bias.abs().max() for r in sel.values()) * scale
        for key, rows in sel.items():
            row, label = next(rows_of), LABELS[key]
            show(row[0], rows, rows.bias * scale, cm.vik, -bias_max, bias_max, f"{label}: bias({name})", unit)
            show(row[1], rows, np.sqrt(rows.variance) * scale, _map_cmap(name), 0, spread_max,
                 f"{label}: std({name})", unit)
            show(row[2], rows, np.sqrt(rows.crb) * scale, _map_cmap(name), 0, spread_max,
                 rf"$\sqrt{{\mathrm{{CRB}}}}$({name})", unit)
    fig.tight_layout()
    return fig


def _hist_row(axes: Sequence[plt.Axes], tables: dict[str, pd.DataFrame], value, xlabel: str,
              reference: float | None, log: bool = False) -> None:
    """One histogram panel per parameter, one step curve per network."""
    names = list(dict.fromkeys(next(iter(tables.values())).parameter))
    for ax, name in zip(axes, names):
        for loss, t in tables.items():
            t = t[(t.parameter == name) & np.isfinite(t.crb)]  # undefined CRBs are excluded, as in the summaries
            v = np.asarray(value(t), dtype=float)
            v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
            if not len(v):
                continue
            bins = np.geomspace(v.min(), v.max(), 40) if log and v.min() < v.max() else 40
            ax.hist(v, bins=bins, histtype="step", lw=1.3, color=COLORS[loss], label=LABELS[loss],
                    density=True)
        if reference is not None:
            ax.axvline(reference, color="k", lw=0.8, ls=":")
        if log:
            ax.set_xscale("log")
        ax.set_title(name)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("density")


def _hist_figure(tables: dict[str, pd.DataFrame], rows: Sequence[tuple]) -> plt.Figure:
    _style()
    n = len(set(next(iter(tables.values())).parameter))
    fig, axes = plt.subplots(len(rows), n, figsize=(3.4 * n, 3.0 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        _hist_row(ax_row, tables, *row)
    axes[0, 0].legend(frameon=False)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_bias_histograms(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Zhang Fig. 5: histograms of the bias in units of sqrt(CRB) over the test set."""
    return _hist_figure(tables, [(lambda t: t.bias / np.sqrt(t.crb), r"bias / $\sqrt{\mathrm{CRB}}$", 0.0)])


def plot_std_ratio_histograms(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Zhang Fig. 6: histograms of std / sqrt(CRB) over the test set (1 = efficient)."""
    return _hist_figure(tables, [(lambda t: np.sqrt(t.variance / t.crb), r"std / $\sqrt{\mathrm{CRB}}$", 1.0, True)])


def plot_bias_variance_histograms(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Mao Fig. 3: histograms of the CRB-weighted squared bias (top) and variance (bottom) per parameter."""
    return _hist_figure(tables, [(lambda t: t.bias**2 / t.crb, r"bias$^2$ / CRB", None, True),
                                 (lambda t: t.variance / t.crb, "variance / CRB", 1.0, True)])


def plot_snr_contributions(sweeps: dict[str, pd.DataFrame]) -> plt.Figure:
    """Zhang Fig. 7: bias and variance parts of the CRB-loss (mean over parameters) versus SNR per network."""
    _style()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for loss, s in sweeps.items():
        mean = s.groupby("snr")[["bias_part", "variance_part"]].mean()
        ax.plot(mean.index, mean.bias_part, "--o", ms=3, color=COLORS[loss], label=f"{LABELS[loss]}: bias")
        ax.plot(mean.index, mean.variance_part, "-s", ms=3, color=COLORS[loss],
                label=f"{LABELS[loss]}: variance")
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel=r"SNR $|M_0|/\sigma$", ylabel="contribution to the CRB-loss")
    ax.legend(frameon=False, fontsize=7)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_parameter_contributions(summaries: dict[str, pd.DataFrame]) -> plt.Figure:
    """Zhang Fig. 8: per-parameter bias (hatched) and variance parts of the CRB-loss for each network, with the
    bootstrap 95 % interval of the CRB-loss."""
    _style()
    names = list(dict.fromkeys(next(iter(summaries.values())).parameter))
    fig, ax = plt.subplots(figsize=(1.2 * len(names) * len(summaries) + 2, 3.6))
    width = 0.8 / len(summaries)
    for k, (loss, s) in enumerate(summaries.items()):
        s = s.set_index("parameter").loc[names]
        pos = np.arange(len(names)) + (k - (len(summaries) - 1) / 2) * width
        ax.bar(pos, s.variance_part, width, color=COLORS[loss], label=f"{LABELS[loss]}: variance")
        ax.bar(pos, s.bias_part, width, bottom=s.variance_part, color=COLORS[loss], alpha=0.45, hatch="//",
               label=f"{LABELS[loss]}: bias")
        ax.errorbar(pos, s.crb_loss, yerr=[s.crb_loss - s.crb_loss_lo, s.crb_loss_hi - s.crb_loss], fmt="none",
                    ecolor="k", elinewidth=0.8, capsize=2)
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xticks(np.arange(len(names)), names)
    ax.set(yscale="log", ylabel="CRB-loss part")
    ax.legend(frameon=False, fontsize=7, ncol=2)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_learning_curve(table: pd.DataFrame, x: str = "fingerprints") -> plt.Figure:
    """CRB-loss per estimated parameter against the number of training fingerprints (``x="fingerprints"``) or of
    optimizer steps (``x="steps"``), one line per network and split (the training split dashed, the test split
    solid, others dash-dotted, ...) with bootstrap 95 % intervals; ``table`` comes from
    crbnet.tables.learning_curve_table."""
    _style()
    column, label = {"fingerprints": ("train_fingerprints", "training fingerprints"),
                     "steps": ("steps", "optimizer steps")}[x]
    names = list(dict.fromkeys(table.parameter))
    held_out = sorted(set(table.split) - {"train"}, key=lambda s: s != "test")  # the random test set solid
    styles = dict(zip(["train", *held_out], ["--", "-", "-.", ":"] * len(held_out) + ["--"]))
    ticks = sorted(set(table[column]))
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        for (estimator, split), g in table[table.parameter == name].groupby(["estimator", "split"], sort=False):
            g = g.sort_values(column)
            ax.errorbar(g[column], g.crb_loss, yerr=[g.crb_loss - g.crb_loss_lo, g.crb_loss_hi - g.crb_loss],
                        color=COLORS.get(estimator), ls=styles[split], marker="o", ms=3, capsize=2,
                        label=f"{LABELS.get(estimator, estimator)}: {split}")
        ax.axhline(1.0, color="k", lw=0.8, ls=":")
        ax.set(xscale="log", yscale="log", title=name, xlabel=label)
        ax.set_xticks(ticks, [f"{n:,}" for n in ticks], rotation=30)
        ax.minorticks_off()
    axes[0, 0].set_ylabel("CRB-loss")
    axes[0, -1].legend(frameon=False, fontsize=7)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_sequence_comparison(table: pd.DataFrame) -> plt.Figure:
    """Top: CRB-loss (bootstrap 95 % intervals) per estimated parameter, one group per experiment (sequence), one bar
    per estimator; bottom: the median sqrt(CRB) (grey) and each estimator's median RMSE in % of the true value with
    each sequence (table: crbnet.tables.sequence_comparison_table)."""
    _style()
    names = list(dict.fromkeys(table.parameter))
    groups = list(dict.fromkeys(zip(table.experiment, table.sequence)))
    estimators = list(dict.fromkeys(table.estimator))
    fig, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names), 6.2), squeeze=False)
    width = 0.8 / len(estimators)
    for j, name in enumerate(names):
        rows = table[table.parameter == name].set_index(["experiment", "estimator"])
        for i, est in enumerate(estimators):
            x = np.arange(len(groups)) + (i - (len(estimators) - 1) / 2) * width
            r = rows.reindex([(g[0], est) for g in groups])
            axes[0, j].bar(x, r.crb_loss, width, yerr=[r.crb_loss - r.crb_loss_lo, r.crb_loss_hi - r.crb_loss],
                           color=COLORS.get(est), label=LABELS.get(est, est), capsize=2)
        axes[0, j].axhline(1.0, color="k", lw=0.8, ls=":")
        axes[0, j].set(yscale="log", title=name, ylabel="CRB-loss" if j == 0 else None)
        crb = rows.groupby(level="experiment").median_relative_sqrt_crb.first().reindex([g[0] for g in groups])
        slot = 0.8 / (len(estimators) + 1)
        offsets = (np.arange(len(estimators) + 1) - len(estimators) / 2) * slot
        axes[1, j].bar(np.arange(len(groups)) + offsets[0], 100 * crb.to_numpy(), slot, color="0.6",
                       label=r"$\sqrt{\mathrm{CRB}}$")
        for i, est in enumerate(estimators):
            r = rows.reindex([(g[0], est) for g in groups])
            axes[1, j].bar(np.arange(len(groups)) + offsets[i + 1], 100 * r.median_relative_rmse.to_numpy(), slot,
                           color=COLORS.get(est), label=f"RMSE, {LABELS.get(est, est)}")
        axes[1, j].set(ylabel="median / true value (%)" if j == 0 else None)
        for ax in axes[:, j]:
            ax.set_xticks(np.arange(len(groups)), [f"{e}\n({s})" for e, s in groups], rotation=30, ha="right",
                          fontsize=7)
    for ax in axes[:, -1]:
        ax.legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_snr_bias_std(sweeps: dict[str, pd.DataFrame]) -> plt.Figure:
    """Mao Fig. 2: bias (dashed) and standard deviation (solid) relative to the true value versus SNR, median over
    the sweep's fingerprints, per network; black: an efficient estimator (no bias, std = sqrt(CRB))."""
    _style()
    first = next(iter(sweeps.values()))
    names = list(dict.fromkeys(first.parameter))
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for loss, t in sweeps.items():
            rows = t[t.parameter == name].assign(rel_bias=lambda r: r.bias / r.true,
                                                 rel_std=lambda r: np.sqrt(r.variance) / r.true)
            m = rows.groupby("snr")[["rel_bias", "rel_std"]].median()
            ax.plot(m.index, 100 * m.rel_bias, "--", color=COLORS[loss])
            ax.plot(m.index, 100 * m.rel_std, "-", color=COLORS[loss], label=LABELS[loss])
        rows = first[first.parameter == name]
        eff = (np.sqrt(rows.crb) / rows.true).groupby(rows.snr).median()
        ax.plot(eff.index, 100 * eff, "-", color="k", lw=1, label="efficient")
        ax.axhline(0, color="k", lw=0.6, ls=":")
        ax.set(xscale="log", title=name, xlabel=r"SNR $|M_0|/\sigma$")
    axes[0, 0].set_ylabel("% of the true value\n(bias dashed, std solid)")
    axes[0, 0].legend(frameon=False, fontsize=7)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_refine_steps(table: pd.DataFrame) -> plt.Figure:
    """The refined estimator's steps curve (``crbnet.evaluation.refinement_curve``): median std/sqrt(CRB) (solid)
    and |bias|/sqrt(CRB) (dashed) with 95 % intervals against the number of Gauss-Newton steps (0: the start
    alone), one row per split and one column per parameter; NLLS from the prior means in grey at its value, and
    an efficient estimator's std (1) dotted."""
    _style()
    splits, names = list(dict.fromkeys(table.split)), list(dict.fromkeys(table.parameter))
    fig, axes = plt.subplots(len(splits), len(names), figsize=(2.9 * len(names), 2.6 * len(splits)), squeeze=False,
                             sharex=True)
    for row, split in zip(axes, splits):
        for ax, name in zip(row, names):
            t = table[(table.split == split) & (table.parameter == name)]
            refined, nlls = t[t.estimator == "refined"].sort_values("steps"), t[t.estimator == "nlls_prior"]
            for key, style, label in (("median_std_ratio", "-o", "std"), ("median_bias_ratio", "--s", "|bias|")):
                ax.plot(refined.steps, refined[key], style, color=COLORS["refined"], ms=3, label=f"refined, {label}")
                ax.fill_between(refined.steps, refined[f"{key}_lo"], refined[f"{key}_hi"], color=COLORS["refined"],
                                alpha=0.15, lw=0)
                for n in nlls.itertuples():
                    ax.axhline(getattr(n, key), color="0.5", ls=style[:-1],
                               label=f"NLLS from prior ({n.steps} it.), {label}")
            ax.axhline(1.0, color="k", lw=0.6, ls=":")
            ax.set(yscale="log", title=f"{name} ({split})")
        row[0].set_ylabel("median / sqrt(CRB)")
    for ax in axes[-1]:
        ax.set_xlabel("Gauss-Newton steps from the start")
    axes[0, 0].legend(frameon=False, fontsize=6)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_recon_steps(table: pd.DataFrame, recon: Mapping) -> plt.Figure:
    """The reconstruction's error curve (``crbnet.recon.error_budget``): relative RMS coefficient error of the whole
    mask over CG steps for the reconstruction, its noiseless part and its noise alone (left: all coefficients,
    right: the noise-only RMS x SNR, the noise amplification), locally low rank as stars at its CG-step count,
    and the reconstruction's own step count (``recon``: the config's settings) as a dotted line when it is CG."""
    _style()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    everything = table[table.coefficient == "all"]
    cg = everything[everything.method == "cg"].sort_values("steps")
    for source, style, label in (("recon", "-o", "reconstruction"), ("recon_noiseless", "--s", "noiseless part"),
                                 ("recon_noise_only", ":^", "noise alone")):
        t = cg[cg.source == source]
        left.plot(t.steps, t.relative_error, style, ms=4, label=label)
        if source == "recon_noise_only":
            right.plot(t.steps, t.rms_times_snr, style, ms=4, color="C2", label="CG, noise alone")
    for _, r in everything[everything.method == "llr"].iterrows():
        left.plot(r["steps"], r["relative_error"], "*", ms=10,
                  label=f"LLR lambda {r['lambda']:g} ({r['steps']} CG steps in all)")
    if recon["lambda"] == 0 and recon["engine"] == "torch":
        for ax in (left, right):
            ax.axvline(recon["iterations"] * recon["cg_iterations"], color="0.5", ls=":", lw=1)
    right.axhline(1.0, color="k", lw=0.6, ls=":", label="Gaussian noise (1)")
    left.set(xscale="log", xlabel="CG steps", ylabel="relative RMS error, all coefficients")
    right.set(xscale="log", xlabel="CG steps", ylabel="noise RMS x SNR")
    left.legend(frameon=False, fontsize=7)
    right.legend(frameon=False, fontsize=7)
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_sweep_boxplots(tables: dict[str, pd.DataFrame], swept: str, alpha: float = 1e-3) -> plt.Figure:
    """Mao Fig. 1: box plots of the estimates over a 1-D sweep of ``swept``, per network, with the true values
    (red) and an asterisk where Welch's t-test finds the errors of the CRB and bias-reduced networks (else the first
    two) different at p < ``alpha``."""
    from crbnet.tables import welch_tests

    _style()
    losses = list(tables)
    first = tables[losses[0]]
    names = list(dict.fromkeys(first.parameter))
    values = np.sort(first[f"at_{swept}"].unique())
    pair = ("crb", "bias_reduced") if {"crb", "bias_reduced"} <= set(losses) else tuple(losses[:2])
    tests = welch_tests(tables[pair[0]], tables[pair[1]], swept) if len(pair) == 2 else None
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    width = 0.8 / len(losses)
    sx, sunit = _display(swept)
    for ax, name in zip(axes[0], names):
        scale, unit = _display(name)
        for k, loss in enumerate(losses):
            t = tables[loss][tables[loss].parameter == name]
            data = [t[t[f"at_{swept}"] == v].estimate * scale for v in values]
            pos = np.arange(len(values)) + (k - (len(losses) - 1) / 2) * width
            ax.boxplot(data, positions=pos, widths=width * 0.9, showfliers=False, patch_artist=True,
                       boxprops={"facecolor": COLORS[loss], "alpha": 0.5}, medianprops={"color": "k"})
        truth = [first[(first[f"at_{swept}"] == v) & (first.parameter == name)].true.iloc[0] * scale for v in values]
        ax.hlines(truth, np.arange(len(values)) - 0.45, np.arange(len(values)) + 0.45, color="C3", lw=1.2)
        if tests is not None:
            top = ax.get_ylim()[1]
            for i, v in enumerate(values):
                p = tests[(tests.value == v) & (tests.parameter == name)].p.iloc[0]
                if p < alpha:
                    ax.text(i, top, "*", ha="center", va="bottom")
        ax.set_xticks(np.arange(len(values)), [f"{v * sx:.3g}" for v in values], rotation=45)
        ax.set_title(name, pad=14)
        ax.set(xlabel=f"{swept} ({sunit})", ylabel=f"{name} ({unit})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[loss], alpha=0.5) for loss in losses]
    axes[0, 0].legend(handles, [LABELS[loss] for loss in losses], frameon=False, fontsize=7)
    sns.despine(fig)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------- maps
# Tissues whose truth sets the colour windows of the map figures (CSF may saturate): the point of the CRB paper's
# Fig. 10 is the short T2f of the iron-rich deep grey matter.
WINDOW_TISSUES = ("white_matter", "grey_matter", "pallidum", "thalamus")


def tissues_of_interest(tissues: Mapping[int, str], names: Sequence[str]) -> list[int]:
    """Labels of those of the tissues ``names`` that the phantom has; all its labels when it has none of them."""
    return [label for label, tissue in tissues.items() if tissue in names] or list(tissues)


def display_window(values: np.ndarray, labels: np.ndarray, tissue_labels: Sequence[int],
                   percentiles: tuple[float, float] = (1.0, 99.0), margin: float = 0.1,
                   symmetric: bool = False) -> tuple[float, float]:
    """Colour window (lo, hi) from the ``percentiles`` of the finite ``values`` (trailing axes shaped like
    ``labels``) in the voxels of ``tissue_labels``, widened by ``margin`` of its width on each side (of the value
    when the width is 0); ``symmetric``: (-w, w) for differences, w the larger absolute percentile widened by
    ``margin``."""
    inside = np.asarray(values)[..., np.isin(labels, tissue_labels)]
    lo, hi = np.percentile(inside[np.isfinite(inside)], percentiles)
    if symmetric:
        w = max(abs(lo), abs(hi)) * (1 + margin) or 1.0
        return -float(w), float(w)
    pad = margin * ((hi - lo) or abs(hi) or 1.0)
    return float(lo - pad), float(hi + pad)


def mean_std_text(mean: float, std: float, exact: float = 1e-6) -> str:
    """"mean ± std" with 2 significant digits on the std and the mean rounded to the same decimal place; the mean
    alone (4 significant digits) when the std is below ``exact`` times it (a constant's float noise)."""
    if not std > exact * abs(mean):
        return f"{mean:.4g}"
    decimals = 1 - int(np.floor(np.log10(float(f"{std:.2g}"))))
    places = max(decimals, 0)
    return f"{round(mean, decimals) + 0.0:.{places}f} ± {round(std, decimals):.{places}f}"  # + 0.0: no "-0.0"


def _map_panel(ax: plt.Axes, image: np.ndarray, inside: np.ndarray, cmap, lo: float, hi: float,
               sparse: float) -> None:
    """One slice inside the mask; a map with fewer than ``sparse`` of its voxels finite (NLLS fits a sample) as dots
    on the grey mask, so that single voxels stay visible."""
    finite = inside & np.isfinite(image)
    if finite.sum() >= sparse * inside.sum():
        ax.imshow(np.where(inside, image, np.nan).T, origin="lower", cmap=cmap, vmin=lo, vmax=hi)
    else:
        ax.imshow(np.where(inside, 0.85, np.nan).T, origin="lower", cmap="gray", vmin=0, vmax=1)
        x, y = np.nonzero(finite)
        ax.scatter(x, y, c=image[finite], cmap=cmap, vmin=lo, vmax=hi, s=14, edgecolors="k", linewidths=0.4)


def _roi_text(image: np.ndarray, labels: np.ndarray, rois: Mapping[str, int], unit: str) -> str:
    """Title lines "tissue mean ± std unit" for each of ``rois`` (name -> label) where the image has values."""
    values = {roi: image[labels == label] for roi, label in rois.items()}
    unit = "" if unit == "1" else f" {unit}"
    return "".join(f"\n{roi.replace('_', ' ')} {mean_std_text(np.nanmean(v), np.nanstd(v))}{unit}"
                   for roi, v in values.items() if np.isfinite(v).any())


def plot_maps(maps: dict[str, dict[str, np.ndarray]], labels: np.ndarray, tissues: dict[int, str],
              rois: Sequence[str] = ("white_matter", "pallidum"), window_tissues: Sequence[str] = WINDOW_TISSUES,
              windows: Mapping[str, Sequence[float]] | None = None,
              difference_windows: Mapping[str, float] | None = None, sparse: float = 0.2) -> plt.Figure:
    """Zhang Fig. 10 / Mao Figs. 4-5 on one axial slice (through the pallidum where the phantom has one): per
    parameter a row of maps (truth first, then the estimators) and under it a row of estimate - truth. Colour windows
    per parameter from the truth and (symmetric) the differences in the ``window_tissues`` (CSF may saturate), or the
    (lo, hi) of ``windows`` and the half-width of ``difference_windows`` (SI units); mean ± std over each of
    ``rois`` in the titles; maps with fewer than ``sparse`` of the slice finite (NLLS) as dots."""
    _style()
    windows, difference_windows = windows or {}, difference_windows or {}
    sources, names, truth = list(maps), list(next(iter(maps.values()))), next(iter(maps.values()))
    label_of = {v: k for k, v in tissues.items()}
    roi_labels = {roi: label_of[roi] for roi in rois if roi in label_of}
    of_interest = tissues_of_interest(tissues, window_tissues)
    # the slice through most of the pallidum when there is one (whole-brain volumes), else the middle one
    z = int(np.argmax((labels == label_of["pallidum"]).sum(axis=(0, 1)))) if "pallidum" in label_of \
        else labels.shape[2] // 2
    inside = labels[..., z] > 0
    fig, axes = plt.subplots(2 * len(names), len(sources), figsize=(2.2 * len(sources) + 1.2, 5.2 * len(names)),
                             squeeze=False, layout="constrained")
    for j, name in enumerate(names):
        scale, unit = _display(name)
        differences = {source: maps[source][name] - truth[name] for source in sources[1:]}
        lo, hi = windows.get(name) or display_window(truth[name], labels, of_interest)
        w = difference_windows.get(name) or display_window(np.stack(list(differences.values())), labels,
                                                           of_interest, symmetric=True)[1]
        units = "" if unit == "1" else f" ({unit})"
        rows = [(axes[2 * j], {s: maps[s][name] for s in sources}, _map_cmap(name), lo, hi, f"{name}{units}", ""),
                (axes[2 * j + 1], differences, cm.vik, -w, w, f"Δ{name}{units}", " − truth")]
        for row, images, cmap, vmin, vmax, label, suffix in rows:
            for ax, source in zip(row, sources):
                ax.set_axis_off()
                if source not in images:
                    continue
                _map_panel(ax, images[source][..., z] * scale, inside, cmap, vmin * scale, vmax * scale, sparse)
                ax.set_title(f"{LABELS.get(source, source)}{suffix}: {name}"
                             + _roi_text(images[source] * scale, labels, roi_labels, unit), fontsize=7)
            norm = matplotlib.colors.Normalize(vmin * scale, vmax * scale)
            fig.colorbar(matplotlib.cm.ScalarMappable(norm, cmap), ax=row.tolist(), label=label, shrink=0.8)
        if j == 0:
            ax = axes[1, 0]
            ax.imshow(np.where(inside, np.isin(labels[..., z], of_interest), np.nan).T, origin="lower",
                      cmap="Greys", vmin=-0.5, vmax=1.5)
            ax.set_title("window tissues (dark):\n" + ", ".join(tissues[k].replace("_", " ") for k in of_interest),
                         fontsize=7, wrap=True)
    return fig


def plot_roi_boxplots(table: pd.DataFrame) -> plt.Figure:
    """Zhang Fig. 9 / Mao Fig. 5G: box plots per tissue (tube) of each parameter, one box per estimator, with the
    true value in red. ``table`` comes from crbnet.tables.roi_table (sources: ``truth`` and the estimators)."""
    _style()
    names = list(dict.fromkeys(table.parameter))
    tissues = list(dict.fromkeys(table.tissue))
    estimators = [s for s in dict.fromkeys(table.estimator) if s != "truth"]
    fig, axes = plt.subplots(len(names), 1, figsize=(1.1 * len(tissues) * len(estimators) / 2 + 3, 3.0 * len(names)),
                             squeeze=False)
    width = 0.8 / len(estimators)
    for ax, name in zip(axes[:, 0], names):
        scale, unit = _display(name)
        rows = table[table.parameter == name]
        for k, est in enumerate(estimators):
            data = [rows[(rows.estimator == est) & (rows.tissue == t)].value.dropna() * scale for t in tissues]
            pos = np.arange(len(tissues)) + (k - (len(estimators) - 1) / 2) * width
            ax.boxplot(data, positions=pos, widths=width * 0.9, showfliers=False, patch_artist=True,
                       boxprops={"facecolor": COLORS.get(est, "C7"), "alpha": 0.5}, medianprops={"color": "k"})
        truth = [rows[(rows.estimator == "truth") & (rows.tissue == t)].value.median() * scale for t in tissues]
        ax.hlines(truth, np.arange(len(tissues)) - 0.45, np.arange(len(tissues)) + 0.45, color="C3", lw=1.2)
        ax.set_xticks(np.arange(len(tissues)), [t.replace("_", " ") for t in tissues], rotation=30)
        ax.set_ylabel(f"{name} ({unit})")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS.get(e, "C7"), alpha=0.5) for e in estimators]
    axes[0, 0].legend(handles, [LABELS.get(e, e) for e in estimators], frameon=False, fontsize=7, ncol=len(estimators))
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_agreement(pairs: pd.DataFrame, reference: str = "nlls") -> plt.Figure:
    """Mao Fig. 4 / Zhang Fig. 9 in numbers: every source's estimate against the ``reference`` estimator's in the
    same voxel (one row per parameter, one column per source, colour by tissue; log axes for a parameter spanning
    more than a decade), the identity line, and the median absolute relative difference. ``pairs`` comes from
    crbnet.tables.paired_table."""
    _style()
    names = list(dict.fromkeys(pairs.parameter))
    sources = list(dict.fromkeys(pairs.estimator))
    tissues = list(dict.fromkeys(pairs.tissue))
    summary = agreement(pairs).set_index(["estimator", "parameter"])
    fig, axes = plt.subplots(len(names), len(sources), figsize=(2.8 * len(sources) + 1.5, 2.7 * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        scale, unit = _display(name)
        rows = pairs[pairs.parameter == name]
        both = np.r_[rows.reference, rows.value] * scale
        both = both[np.isfinite(both)]  # NaN and infinite estimates are not drawn
        lo, hi = (both.min(), both.max()) if len(both) else (0.0, 1.0)
        log = lo > 0 and hi > 10 * lo  # e.g. T2f of tissue and of CSF or the bath
        lo, hi = (lo / 1.1, hi * 1.1) if log else (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        for j, source in enumerate(sources):
            ax = axes[i, j]
            for k, tissue in enumerate(tissues):
                part = rows[(rows.estimator == source) & (rows.tissue == tissue)]
                ax.plot(part.reference * scale, part.value * scale, "o", ms=3, alpha=0.7, color=f"C{k % 10}",
                        label=tissue.replace("_", " "))
            ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
            ax.set(xlim=(lo, hi), ylim=(lo, hi))
            if log:
                ax.set(xscale="log", yscale="log")
                for axis in (ax.xaxis, ax.yaxis):
                    axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
                    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.text(0.04, 0.96, f"median |diff| {summary.loc[(source, name), 'median_abs_rel_diff_pct']:.3g} %",
                    transform=ax.transAxes, va="top", fontsize=7)
            ax.set_xlabel(f"{LABELS.get(reference, reference)} {name} ({unit})", fontsize=8)
            ax.set_ylabel(f"{LABELS.get(source, source)} {name} ({unit})", fontsize=8)
    axes[0, -1].legend(frameon=False, fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    sns.despine(fig)
    fig.tight_layout()
    return fig


def plot_recon_bias(table: pd.DataFrame) -> plt.Figure:
    """Relative bias (%) per tissue of every estimator with Gaussian-noise coefficients (open circles) and with
    reconstructed ones (filled), joined by a line, one panel per parameter (table: crbnet.tables.recon_bias_table;
    tissues with a true value of 0 have no relative bias and are left out of their panel)."""
    _style()
    names = list(dict.fromkeys(table.parameter))
    tissues = list(dict.fromkeys(table.tissue))
    estimators = list(dict.fromkeys(table.estimator))
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 0.45 * len(tissues) * len(estimators) / 3 + 2),
                             sharey=True, squeeze=False)
    step = 0.8 / len(estimators)
    for ax, name in zip(axes[0], names):
        rows = table[table.parameter == name].set_index(["estimator", "tissue"])
        for k, est in enumerate(estimators):
            r = rows.reindex([(est, t) for t in tissues])
            y = np.arange(len(tissues)) + (k - (len(estimators) - 1) / 2) * step
            color = COLORS.get(est, "C7")
            ax.hlines(y, r.rel_bias_pct_gaussian, r.rel_bias_pct_recon, color=color, lw=1)
            ax.scatter(r.rel_bias_pct_gaussian, y, s=18, facecolors="none", edgecolors=color)
            ax.scatter(r.rel_bias_pct_recon, y, s=18, color=color, label=LABELS.get(est, est))
        ax.axvline(0.0, color="k", lw=0.8, ls=":")
        ax.set(title=name, xlabel="bias / true value (%)")
    axes[0, 0].set_yticks(np.arange(len(tissues)), [t.replace("_", " ") for t in tissues])
    axes[0, 0].invert_yaxis()
    axes[0, -1].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                       title="open: Gaussian noise\nfilled: reconstructed", title_fontsize=7)
    sns.despine(fig)
    fig.tight_layout()
    return fig


VERDICT_COLORS = {"holds": "#1b7837", "does not hold": "#b2182b", "not tested": "0.6"}
CLAIM_REFERENCE = {"crb_loss_near_one": 1.0, "crb_grid_bias_below_mse": 1.0, "mse_loss_bias_dominated": 0.0,
                   "bias_reduced_lowers_bias": 0.0, "bias_reduced_variance_towards_crb": 0.0,
                   "networks_near_matching": 1.0, "refined_at_the_bound": 1.0}


def plot_claims(table: pd.DataFrame) -> plt.Figure:
    """One panel per claim (crbnet.claims): each tested row's measured figure with its 95 % interval, coloured by
    its verdict, against the claim's reference line (1 for ratios and CRB-losses, 0 for paired differences)."""
    _style()
    claims = list(dict.fromkeys(table.claim))
    heights = [max(1, (table.claim == c).sum()) for c in claims]
    fig, axes = plt.subplots(len(claims), 1, figsize=(7.5, 0.9 + 0.28 * sum(heights) + 0.5 * len(claims)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    for ax, claim in zip(axes[:, 0], claims):
        rows = table[table.claim == claim].reset_index(drop=True)
        y = np.arange(len(rows))[::-1]
        for yi, r in zip(y, rows.itertuples()):
            color = VERDICT_COLORS[r.verdict]
            if r.verdict == "not tested":
                ax.text(0.5, yi, "not tested by the configured experiments", color=color, ha="center", va="center",
                        transform=ax.get_yaxis_transform())
                continue
            xerr = [[max(0.0, r.measured - r.lo)], [max(0.0, r.hi - r.measured)]]  # round-off of tight intervals
            ax.errorbar(r.measured, yi, xerr=xerr, fmt="o", color=color, capsize=2, ms=4)
        ax.axvline(CLAIM_REFERENCE.get(claim, 0.0), color="k", lw=0.8, ls=":")
        labels = [" ".join(str(v) for v in (r.experiment, r.estimator, r.parameter) if isinstance(v, str))
                  for r in rows.itertuples()]
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_title(f"{rows.paper.iloc[0]}: {claim.replace('_', ' ')}", fontsize=8, loc="left")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in VERDICT_COLORS.items()]
    fig.legend(handles=handles, frameon=False, fontsize=7, loc="upper right", ncol=3)
    sns.despine(fig)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig
