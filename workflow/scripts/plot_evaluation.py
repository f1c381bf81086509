"""Adapter for the network figures: read the small evaluation tables, call crbnet.plotting, save PNG and PDF."""
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from crbnet import plotting  # noqa: E402
from crbnet.runtime import logged  # noqa: E402
from crbnet.tables import summarize  # noqa: E402

sm = snakemake  # noqa: F821


def tables() -> dict[str, pd.DataFrame]:
    """Input files named by loss (the rule's input is a dict loss -> CSV)."""
    return {loss: pd.read_csv(path) for loss, path in sm.input.items()}


FIGURES = {
    "fig_loss_curves": lambda: plotting.plot_loss_curves(tables()),
    "fig_grid_bias_std": lambda: plotting.plot_grid_bias_std(tables(), sm.params.x, sm.params.y, sm.params.parameter),
    "fig_bias_histograms": lambda: plotting.plot_bias_histograms(tables()),
    "fig_std_histograms": lambda: plotting.plot_std_ratio_histograms(tables()),
    "fig_bias_variance_histograms": lambda: plotting.plot_bias_variance_histograms(tables()),
    "fig_snr_contributions": lambda: plotting.plot_snr_contributions(
        {loss: summarize(t) for loss, t in tables().items()}),
    "fig_snr_bias_std": lambda: plotting.plot_snr_bias_std(tables()),
    "fig_sweep_boxplots": lambda: plotting.plot_sweep_boxplots(tables(), sm.params.swept),
    "fig_parameter_contributions": lambda: plotting.plot_parameter_contributions(
        {loss: summarize(t) for loss, t in tables().items()}),
}

with logged(sm.log[0]):
    plotting.save(FIGURES[sm.rule](), [sm.output.png, sm.output.pdf])
