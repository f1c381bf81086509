"""Figures in one consistent style; each reads a small table or the sequence, never training outputs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from cmcrameri import cm  # noqa: E402

from crbnet.io import atomic_path  # noqa: E402
from crbnet.parameters import parameter  # noqa: E402
from crbnet.sequences import QMTSequence  # noqa: E402


def _style() -> None:
    sns.set_theme(context="paper", style="ticks", font_scale=1.1)


def save(fig: plt.Figure, paths: Sequence[str | Path]) -> None:
    """Write the figure to every path (format from the suffix), atomically, and close it."""
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150, bbox_inches="tight", format=Path(path).suffix[1:])
    plt.close(fig)


def plot_sequence(sequence: QMTSequence) -> plt.Figure:
    """Flip angle (deg) and pulse duration (us) against time, one column per pattern; crushed pulses marked."""
    _style()
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
