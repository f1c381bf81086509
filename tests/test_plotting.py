from __future__ import annotations

import numpy as np
import pytest

from crbnet.plotting import display_window, mean_std_text, plot_maps, tissues_of_interest

TISSUES = {1: "csf", 2: "grey_matter", 3: "white_matter", 4: "pallidum", 5: "thalamus"}
T2F = {1: 1.0, 2: 0.09, 3: 0.075, 4: 0.06, 5: 0.07}


def labelled_slice(size: int = 40) -> np.ndarray:
    """A 2-D label image (one z slice): CSF in a quarter, the other four tissues in stripes, background at the rim."""
    labels = np.zeros((size, size, 1), dtype=np.int16)
    labels[2:-2, 2:-2] = 1 + np.arange(size - 4)[:, None, None] * 5 // (size - 4)
    return labels


def truth_map(labels: np.ndarray, values: dict[int, float]) -> np.ndarray:
    return np.where(labels > 0, np.vectorize(lambda k: values.get(k, np.nan))(labels), np.nan)


def test_display_window_ignores_csf():
    labels = labelled_slice()
    truth = truth_map(labels, T2F)
    lo, hi = display_window(truth, labels, tissues_of_interest(TISSUES, ["white_matter", "grey_matter",
                                                                          "pallidum", "thalamus"]))
    assert 0.04 <= lo < 0.06 and 0.09 < hi <= 0.12


def test_tissues_of_interest_fall_back_to_all_labels():
    assert tissues_of_interest(TISSUES, ["white_matter", "thalamus", "putamen"]) == [3, 5]
    assert tissues_of_interest({1: "bath", 2: "BSA10"}, ["white_matter"]) == [1, 2]


def test_display_window_symmetric_for_differences():
    labels = labelled_slice()
    errors = np.random.default_rng(1).uniform(-0.01, 0.004, labels.shape)
    diff = np.where(labels == 1, 5.0, np.where(labels > 1, errors, np.nan))   # CSF errors far outside
    lo, hi = display_window(np.stack([diff, np.zeros_like(diff)]), labels, [2, 3, 4, 5], symmetric=True)
    assert lo == -hi and 0.009 < hi < 0.012


@pytest.mark.parametrize(("mean", "std", "text"), [
    (0.212, 5.6e-17, "0.212"),          # a constant's float noise
    (0.0, 0.0, "0"),
    (76.93, 5.64, "76.9 ± 5.6"),
    (0.21184, 0.01234, "0.212 ± 0.012"),
    (0.5, 0.0996, "0.50 ± 0.10"),   # the std rounds up to the next decade
    (-0.0004, 0.047, "0.000 ± 0.047"),  # no "-0.000"
    (76543.0, 123.0, "76540 ± 120"),
])
def test_mean_std_text(mean, std, text):
    assert mean_std_text(mean, std) == text


def test_plot_maps_explicit_windows_and_difference_rows():
    labels = labelled_slice()
    rng = np.random.default_rng(0)
    truth = {"T2f": truth_map(labels, T2F), "m0s": truth_map(labels, {1: 0.0, 2: 0.098, 3: 0.212, 4: 0.164, 5: 0.158})}
    mse = {k: v * (1 + 0.05 * rng.standard_normal(v.shape)) for k, v in truth.items()}
    nlls = {k: np.where(rng.random(v.shape) < 0.03, v, np.nan) for k, v in truth.items()}
    maps = {"truth": truth, "mse": mse, "nlls": nlls}
    fig = plot_maps(maps, labels, TISSUES, windows={"T2f": [0.05, 0.1]}, difference_windows={"m0s": 0.02})
    axes = np.array(fig.axes[:12]).reshape(4, 3)
    # rows: T2f maps, T2f - truth, m0s maps, m0s - truth; columns: truth, MSE, NLLS
    assert axes[0, 0].images[0].get_clim() == pytest.approx((50.0, 100.0))   # ms
    assert axes[3, 1].images[0].get_clim() == pytest.approx((-0.02, 0.02))
    assert "truth" in axes[1, 1].get_title() and "truth" in axes[3, 2].get_title()
    lo, hi = axes[2, 0].images[0].get_clim()
    assert 0.08 < lo < 0.098 and 0.212 < hi < 0.23                           # from the tissues of interest
    lo, hi = axes[1, 1].images[0].get_clim()
    assert lo == -hi and hi < 0.2 * 90                                      # CSF errors (50 ms) saturate
    nlls_dots = axes[0, 2].collections[0]
    assert len(nlls_dots.get_offsets()) == np.isfinite(nlls["T2f"][..., 0]).sum() > 0
    assert "0.212" in axes[2, 0].get_title() and "±" not in axes[2, 0].get_title()
    assert "pallidum" in axes[1, 0].get_title() and not axes[3, 0].images    # the window tissues, shown once


def test_plotting_and_tables_import_without_torch():
    """Figures and summary tables work from small tables alone: a fresh interpreter that imports them has not
    loaded torch (a plotting environment or a reader's laptop need not have it)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; import crbnet.plotting, crbnet.tables, crbnet.io.maps, crbnet.io.nifti; "
            "print('torch' in sys.modules)")
    workflow = Path(__file__).resolve().parents[1] / "workflow"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(workflow), "PATH": ""})
    assert out.stdout.strip() == "False"


def test_design_figure_over_prior_draws_shows_median_and_quartiles_per_parameter():
    import pandas as pd

    from crbnet.plotting import plot_design
    from crbnet.sequences import Pattern, QMTSequence

    seq = QMTSequence(TR=3.5e-3, patterns=(Pattern(np.full(8, 0.5), np.full(8, 3e-4), np.zeros(8, bool)),))
    rel = np.arange(1.0, 7.0)  # 100 sqrt(CRB) / value of six draws
    table = pd.DataFrame({"sequence": "s", "tissue": [f"draw{i}" for i in range(6)] * 2,
                          "parameter": ["T1"] * 6 + ["m0s"] * 6, "value": 1.0, "sqrt_crb": np.tile(rel, 2) / 100,
                          "rf_energy": 1e6})
    bars = plot_design(table, {"s": seq}, draws=True).axes[1].patches
    assert len(bars) == 2 and [b.get_height() for b in bars] == pytest.approx([3.5, 3.5])  # medians of 1..6
    assert len(plot_design(table, {"s": seq}).axes[1].patches) == 12  # tissues: one bar each


def test_importing_the_plotting_module_leaves_the_backend_to_the_user():
    import os
    import subprocess
    import sys

    code = "import matplotlib, crbnet.plotting; print(matplotlib.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], env=os.environ | {"MPLBACKEND": "svg"}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "svg"


def test_steps_curve_figure_has_a_panel_per_split_and_parameter_and_marks_nlls():
    import pandas as pd

    from crbnet.plotting import plot_refine_steps

    rows = [{"split": split, "estimator": est, "steps": k, "parameter": p, **{
        f"{key}{end}": v for key, v in (("median_std_ratio", 0.5 + 0.1 * k), ("median_bias_ratio", 0.3 / (1 + k)))
        for end in ("", "_lo", "_hi")}}
        for split in ("grid", "test") for p in ("T1", "T2") for est, k in (("refined", 0), ("refined", 2), ("nlls_prior", 20))]
    fig = plot_refine_steps(pd.DataFrame(rows))
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "T1 (grid)" and fig.axes[3].get_title() == "T2 (test)"
    # NLLS's two values drawn as horizontal lines at its medians in every panel
    levels = {round(line.get_ydata()[0], 6) for line in fig.axes[0].lines if len(set(line.get_ydata())) == 1}
    assert {round(0.5 + 0.1 * 20, 6), round(0.3 / 21, 6), 1.0} <= levels


def test_recon_steps_figure_draws_each_source_llr_and_the_default():
    import pandas as pd

    from crbnet.plotting import plot_recon_steps

    rows = [{"method": "cg", "lambda": 0.0, "steps": k, "source": src, "coefficient": c,
             "relative_error": e * k ** (-0.3 if src != "recon_noise_only" else 0.5), "rms_times_snr": 0.1 * k}
            for k in (10, 50, 100) for src, e in (("recon", 0.2), ("recon_noiseless", 0.18), ("recon_noise_only", 0.01))
            for c in ("1", "all")]
    rows.append({"method": "llr", "lambda": 0.01, "steps": 250, "source": "recon", "coefficient": "all",
                 "relative_error": 0.05, "rms_times_snr": 2.0})
    recon = {"engine": "torch", "lambda": 0.0, "iterations": 10, "cg_iterations": 5}
    fig = plot_recon_steps(pd.DataFrame(rows), recon)
    left, right = fig.axes
    drawn = [line for line in left.lines if len(line.get_xdata()) == 3]
    assert len(drawn) == 3 and len(right.lines) >= 2
    assert any(list(line.get_xdata()) == [250] for line in left.lines)  # the LLR star
    assert any(list(line.get_xdata()) == [50, 50] for line in left.lines)  # the default's 50 steps
    labels = [t.get_text() for t in left.get_legend().get_texts()]
    assert "LLR lambda 0.01 (250 CG steps in all)" in labels
    regularized = plot_recon_steps(pd.DataFrame(rows), recon | {"lambda": 0.01})
    assert not any(list(line.get_xdata()) == [50, 50] for line in regularized.axes[0].lines)
