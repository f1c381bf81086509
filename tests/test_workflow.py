"""The Snakemake workflow: lint, dry runs of every shipped config, and a tiny end-to-end run."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REFERENCE, ROOT
from crbnet.io.bids import map_path
from crbnet.sequences import load_sequence

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = sorted((ROOT / "config").glob("*.yaml")) + [ROOT / "tests" / "config" / "tiny.yaml"]


def _snakemake(*args, cwd=ROOT):
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)


def test_lint():
    run = _snakemake("--lint")
    assert run.returncode == 0, run.stdout + run.stderr


def test_python_lint():
    """ruff (pinned in the test extra, settings in pyproject.toml) on the package, scripts, benchmarks and tests."""
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "workflow", "benchmarks", "envs", "tests"], cwd=ROOT,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_dry_run(config, tmp_path):
    if config.name.startswith("mao2024") and not (REFERENCE / "mao_6pattern_control.mat").exists():
        pytest.skip("the six-pattern control (../shared/reference) is not available")
    run = _snakemake("-n", "--cores", "1", "--configfile", str(config), "--config", f"results={tmp_path}")
    assert run.returncode == 0, run.stdout + run.stderr


def test_invalid_config_is_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments:\n  x:\n    sequence: s.yaml\n    parameter_space: {parameters: {}}\n"
                   "    datasets: {train: {n: 0, seed: 1}}\n")
    run = _snakemake("-n", "--cores", "1", "--configfile", str(bad))
    assert run.returncode != 0 and "0 is less than the minimum of 1" in run.stdout + run.stderr


@pytest.mark.parametrize("change, phrase", [({"data_from": "nowhere"}, "must be a selected experiment"),
                                            ({"datasets": {"train": {"n": 5, "seed": 1}}}, "needs the same datasets")])
def test_data_from_must_describe_the_same_data(tmp_path, change, phrase):
    tiny = yaml.safe_load((ROOT / "tests/config/tiny.yaml").read_text())
    tiny["experiments"]["tiny_fisp_12"] |= change
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny))
    run = _snakemake("-n", "--cores", "1", "--configfile", str(bad), "--config", f"results={tmp_path}")
    assert run.returncode != 0 and phrase in run.stdout + run.stderr


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path):
    out = tmp_path / "results"
    scan = tmp_path / "scan.yaml"  # a "scan": the FISP phantom's coefficient image, entered as the user's data
    scan.write_text(f"experiments:\n  tiny_fisp:\n    scans:\n      scan:\n"
                    f"        coefficients: {out}/tiny_fisp/phantoms/brain.h5\n"
                    f"  tiny:\n    scans:\n      scanner:\n"  # scanner raw data: the tubes' acquisition as ISMRMRD
                    f"        raw: {out}/tiny/kspace/tubes.ismrmrd.h5\n        virtual_coils: 3\n")
    args = ("--cores", "2", "--configfile", str(ROOT / "tests/config/tiny.yaml"), str(scan), "--config",
            f"results={out}")
    run = _snakemake(*args)
    assert run.returncode == 0, run.stdout + run.stderr
    exp = out / "tiny"
    figures = ("sequence", "crb_slice", "loss_curves", "grid_bias_std", "bias_histograms", "std_histograms",
               "bias_variance_histograms", "parameter_contributions", "snr_contributions", "snr_bias_std", "sweep_boxplots")
    for figure in figures:
        for ext in ("png", "pdf"):
            assert (exp / "figures" / f"{figure}.{ext}").stat().st_size > 1000
    with h5py.File(exp / "data" / "train.h5") as f:
        assert f["signals"].shape == (24, 1142) and f["parameters"].shape == (24, 7)
        assert f["coefficients"].shape == (24, 6)
        for name in ("crb", "crb_coefficients"):
            assert np.all(np.isfinite(f[name][()])) and np.all(f[name][()] > 0)
        # compressing to 6 coefficients can only lose information
        assert np.all(f["crb_coefficients"][()] >= f["crb"][()] * (1 - 1e-9))
        assert list(f["crb"].attrs["names"]) == ["m0s", "T1", "T2f", "Rx", "T2s", "omega0", "B1"]
        assert np.all(f["parameters"][:, 2] <= f["parameters"][:, 1])  # T2f <= T1
    with h5py.File(exp / "data" / "basis.h5") as f:
        assert "crb" not in f and f["signals"].shape == (16, 1142)
    for loss in ("mse", "crb", "bias_reduced"):
        history = pd.read_csv(exp / "models" / f"{loss}_history.csv")
        assert len(history) == (1 if loss == "bias_reduced" else 2)
        assert np.all(np.isfinite(history[["train_mse", "train_crb", "val_mse", "val_crb"]]))
        for split, n in (("test", 6), ("grid_T1_T2f", 9)):
            table = pd.read_csv(exp / "eval" / f"{loss}_{split}.csv")
            assert len(table) == 3 * n and set(table.parameter) == {"m0s", "T1", "T2f"}
            assert np.all(np.isfinite(table[["bias", "variance", "crb"]])) and np.all(table.variance >= 0)
            assert (table.variance > 0).mean() > 0.5  # a 2-epoch network may saturate for a few fingerprints
        raw = pd.read_csv(exp / "eval" / "parameter_sweep" / f"{loss}.csv")  # 3 sweep values x 8 realizations x 3 parameters
        assert len(raw) == 72 and sorted(set(raw.at_T2f)) == pytest.approx([0.04, 0.08, 0.12])
        assert np.all(np.isfinite(raw.estimate))
        sweep = pd.read_csv(exp / "eval" / "snr_sweep" / f"{loss}.csv")  # one point, two SNRs, three parameters
        assert len(sweep) == 6 and sorted(set(sweep.snr)) == [10, 50]
        assert np.all(sweep.at_T1 == 1.0) and np.all(sweep.at_T2f == 0.08) and np.all(sweep.variance >= 0)
        # the CRB scales with 1/SNR^2
        crb = sweep.pivot(index="parameter", columns="snr", values="crb")
        np.testing.assert_allclose(crb[10] / crb[50], 25.0, rtol=1e-9)
    refined_sweep = pd.read_csv(exp / "eval" / "snr_sweep" / "refined.csv")  # its own 2 draws, the sweep's point
    assert len(refined_sweep) == 6 and set(refined_sweep.realizations) == {2} and set(refined_sweep.snr) == {10, 50}
    curve = pd.read_csv(exp / "tables" / "refine_steps.csv")  # 2 splits x (0, 1 steps, NLLS) x 3 parameters
    assert set(zip(curve.estimator, curve.steps)) == {("refined", 0), ("refined", 1), ("nlls_prior", 2)}
    assert set(curve.split) == {"grid_T1_T2f", "test"} and len(curve) == 2 * 3 * 3
    assert (exp / "figures" / "refine_steps.png").stat().st_size > 1000
    failures = pd.read_csv(exp / "tables" / "failures.csv")
    assert set(failures.estimator) == {"mse", "crb", "bias_reduced", "refined"}
    assert set(failures.table) == {"test", "grid_T1_T2f", "snr_sweep"} and len(failures) == 4 * (1 + 1 + 2) * 3
    fractions = failures.filter(like="_fraction").to_numpy()
    assert np.all((fractions >= 0) & (fractions <= 1))
    summary = pd.read_csv(exp / "tables" / "crb_summary_train.csv")
    assert np.all(summary["finite_fraction"] == 1) and np.all(summary["sqrt_crb_median"] > 0)
    grid = pd.read_csv(exp / "tables" / "crb_slice.csv")
    assert len(grid) == 9 and np.all(np.isfinite(grid.filter(like="sqrt_crb_")))
    # sqrt(CRB) of T1 at sigma = 0.01 is a plausible fraction of T1 (percent to tens of percent)
    assert np.all((grid["sqrt_crb_T1"] / grid["T1"]).between(1e-3, 1.0))
    assert (out / "report.html").stat().st_size > 100_000  # written by the onsuccess hook
    headline = pd.read_csv(exp / "tables" / "summary.csv")
    assert list(dict.fromkeys(headline.estimator)) == ["mse", "crb", "bias_reduced", "refined"]
    assert set(headline.parameter) == {"m0s", "T1", "T2f", "all"} and len(headline) == 16
    assert set(headline.crb_domain) == {"coefficients"}  # normalized by the bound of what the network sees
    np.testing.assert_allclose(headline.crb_loss, headline.bias_part + headline.variance_part)
    each = headline[headline.parameter != "all"]
    assert np.all(each.crb_loss_lo <= each.crb_loss_hi) and np.all(each.median_std_ratio_lo <= each.median_std_ratio_hi)
    networks, refined = each[each.estimator != "refined"], each[each.estimator == "refined"]
    assert np.all(networks.n + networks.n_undefined == 6) and np.all(networks.epochs > 0)
    assert np.all(networks.val_crb_loss > 0)
    assert np.all(refined.n + refined.n_undefined == 3) and refined.epochs.isna().all()  # its own 3 fingerprints
    refined_maps = exp / "maps" / "tubes" / "estimates_refined.h5"
    with h5py.File(refined_maps) as f:  # 2 sampled voxels per tissue, the rest NaN
        fitted = np.isfinite(f["estimates"][()]).all(axis=-1).sum()
    assert 0 < fitted <= 2 * 7
    t2f = headline[headline.parameter == "T2f"]
    assert np.all(t2f.grid_mean_abs_bias < 1.0)  # seconds: below the T2f prior range
    _check_tiny_fisp(out / "tiny_fisp")
    # learning curve: tiny_fisp_12 trains on the first 12 of tiny_fisp's 24 fingerprints and simulates nothing itself
    assert not (out / "tiny_fisp_12" / "data").exists() and not (out / "tiny_fisp_12" / "basis.h5").exists()
    curve = pd.read_csv(out / "learning_curves" / "tiny_fisp.csv")
    test_rows = curve[curve.split == "test"]
    assert sorted(set(test_rows.train_fingerprints)) == [12, 24] and set(curve.estimator) >= {"mse", "crb"}
    assert len(test_rows) == (2 + 3) * 2  # networks (12: mse, crb; 24: mse, crb, bias_reduced) x (T1, T2)
    assert (out / "learning_curves" / "tiny_fisp.png").stat().st_size > 1000
    design = pd.read_csv(out / "designs" / "tiny_design_crb.csv").set_index(["sequence", "parameter"])
    assert set(design.index.get_level_values(0)) == {"start", "designed", "zhang2022_published"}
    assert design.loc["designed"].relative_crb.sum() < design.loc["start"].relative_crb.sum()  # two steps help
    assert load_sequence(out / "designs" / "tiny_design.yaml").n_samples == 1142
    assert (out / "designs" / "tiny_design_crb.png").stat().st_size > 1000
    comparison = pd.read_csv(out / "sequence_comparisons" / "tiny_fisp.csv")
    assert set(comparison.experiment) == {"tiny_fisp", "tiny_fisp_12"} and comparison.crb_loss.notna().all()
    assert (out / "sequence_comparisons" / "tiny_fisp.png").stat().st_size > 1000
    _check_maps(exp, "tubes", ("mse", "crb", "bias_reduced"), ("m0s", "T1", "T2f"), sqrt_crb=("mse",))
    import nibabel as nib

    nlls = np.asarray(nib.load(exp / "bids" / map_path("tubes", "nlls", "T1")).dataobj)
    labels = np.isfinite(np.asarray(nib.load(exp / "bids" / map_path("tubes", "truth", "T1")).dataobj))
    assert np.sum(np.isfinite(nlls)) == 7 * 2 and np.all(labels[np.isfinite(nlls)])  # two interior voxels per tissue
    _check_bids(exp / "bids")
    agreement = pd.read_csv(exp / "tables" / "nlls_agreement_tubes.csv")  # every source against NLLS, 14 voxels
    overall = agreement[agreement.tissue == "all"]
    assert len(overall) == 5 * 3 and set(overall.voxels) == {14}  # truth, 3 networks, refined (same sample)
    assert np.all(overall.median_abs_rel_diff_pct >= 0)
    _check_recon(exp)
    _check_maps(out / "tiny_fisp", "brain", ("mse", "crb", "bias_reduced", "matching"), ("T1", "T2"),
                sqrt_crb=("matching",))
    for figure in ("tiny/figures/maps_tubes", "tiny/figures/roi_boxplots_tubes", "tiny/figures/nlls_agreement_tubes",
                   "tiny_fisp/figures/maps_brain"):
        assert (out / f"{figure}.png").stat().st_size > 1000

    for source in ("crb", "matching"):  # the scan path gives the phantom path's maps inside the object
        a, b = (np.asarray(nib.load(out / "tiny_fisp/bids" / map_path(name, source, "T2")).dataobj)
                for name in ("brain", "scan"))
        inside = np.isfinite(a)
        assert inside.any()
        np.testing.assert_array_equal(a[inside], b[inside])
    # the raw-data path (import, prewhitening, 3 of 4 virtual coils, reconstruction) maps the tubes as the direct one
    with h5py.File(exp / "raw" / "scanner" / "coefficients.h5") as f:
        assert f["coefficients"].shape[-1] == 6
    a, b = (np.asarray(nib.load(exp / "bids" / map_path(name, "crb", "T1")).dataobj) for name in ("tubes_recon", "scanner"))
    inside = np.isfinite(a) & np.isfinite(b)
    assert inside.mean() > 0.2 and np.median(np.abs(b[inside] / a[inside] - 1)) < 0.1
    again = _snakemake("-n", *args)
    assert "Nothing to be done" in again.stdout + again.stderr
    claims = pd.read_csv(out / "claims.csv")
    assert {"crb_loss_near_one", "crb_grid_bias_below_mse", "networks_near_matching"} <= set(claims.claim)
    assert set(claims.verdict) <= {"holds", "does not hold", "not tested"} and (out / "claims.png").exists()
    _check_wild_network(exp, args)
    shutil.rmtree(out)


def _wild(path):
    """Make the network at ``path`` return what an unconstrained network may: m0s below 0, T1 far above its range,
    T2f NaN (inf x 0) where a last hidden unit is inactive and +inf where all are active."""
    import torch
    from crbnet.estimator import NetworkEstimator

    est = NetworkEstimator.load(path)
    with torch.no_grad():
        est.net.shift[0] -= 1.0
        est.net.scale[1] *= 1e4
        est.net.head.weight[2] = float("inf")
    est.save(path)


def _check_wild_network(exp, args):
    """Out-of-range and NaN estimates flow through every rule downstream of the network (evaluation, summary,
    claims, maps with sqrt(CRB), NLLS started from it, tables, figures) without an exception, and are counted."""
    _wild(exp / "models" / "mse.pt")
    run = _snakemake(*args)
    assert run.returncode == 0, run.stdout + run.stderr
    with h5py.File(exp / "maps" / "tubes" / "estimates_mse.h5") as f:
        estimates, sqrt_crb = f["estimates"][()], f["sqrt_crb"][()]
        assert f.attrs["n_out_of_range"] > 0
    negative = estimates[..., 0] < 0  # m0s
    assert negative.any() and np.all(np.isnan(sqrt_crb[negative]))
    summary = pd.read_csv(exp / "tables" / "summary.csv").set_index(["estimator", "parameter"])
    assert summary.loc[("mse", "m0s"), "n_out_of_range"] > 0 and summary.loc[("crb", "m0s"), "n_out_of_range"] == 0
    agreement = pd.read_csv(exp / "tables" / "nlls_agreement_tubes.csv")
    assert agreement[agreement.estimator == "mse"].n_out_of_range.sum() > 0


def _check_maps(exp, image, estimators, names, sqrt_crb):
    """The BIDS tree's maps with sidecars for the truth and every estimator, sqrt(CRB) maps where configured;
    estimates are finite and positive inside the object, NaN outside."""
    import json

    import nibabel as nib

    root = exp / "bids"

    def load(source, name, kind="map"):
        path = root / map_path(image, source, name, kind)
        return np.asarray(nib.load(path).dataobj), json.loads(path.with_name(path.name[:-7] + ".json").read_text())

    inside = np.isfinite(load("truth", names[-1])[0])
    assert inside.any() and not inside.all()
    for source in estimators:
        for n in names:
            data, sidecar = load(source, n)
            assert data.shape == inside.shape and np.all(np.isnan(data[~inside])) and np.all(np.isfinite(data[inside]))
            assert np.mean(data[inside] > 0) > 0.99
            assert sidecar["Units"] == "s" or n == "m0s"
            assert sidecar["EstimationAlgorithm"] and (root / sidecar["Sources"][0]).is_file()
            assert (root / map_path(image, source, n, "sqrtcrb")).exists() == (source in sqrt_crb)
    for source in sqrt_crb:
        s = load(source, names[-1], "sqrtcrb")[0]
        # a voxel whose estimate is outside its range (a 2-epoch network's negative m0s in the bath) has no bound
        assert np.mean(s[inside] > 0) > 0.5 and np.all(np.isnan(s[~inside]))


def _check_bids(root):
    """BIDS's own schema-based validator (bids-validator-deno, from PyPI in the test extra) finds no error in the
    derivatives tree; the custom-suffix files it cannot know are in .bidsignore, the standard ones are validated."""
    import json

    validator = shutil.which("bids-validator-deno", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    assert validator, "bids-validator-deno is not installed: pip install -e '.[test]' -c requirements-lock.txt"
    run = subprocess.run([validator, "--format", "json", "--datasetTypes", "derivative", str(root)],
                         capture_output=True, text=True)
    report = json.loads(run.stdout)
    errors = [i for i in report["issues"]["issues"] if i["severity"] == "error"]
    assert not errors, errors
    description = json.loads((root / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "crbnet"
    ignored = (root / ".bidsignore").read_text().split()
    assert "*_m0smap.*" in ignored and not any("T1map" in line for line in ignored)
    standard = [p for p in root.rglob("*.nii.gz") if not any(p.match(pattern) for pattern in ignored)]
    assert len(standard) > 10 and report["summary"]["totalFiles"] >= 2 * len(standard)  # maps and sidecars checked
    assert "README_FILE_MISSING" not in {i["code"] for i in report["issues"]["issues"]}


def _check_recon(exp):
    """The tubes' simulated acquisition: reconstructed, mapped by every estimator like the phantom, compared."""
    _check_maps(exp, "tubes_recon", ("mse", "crb", "bias_reduced"), ("m0s", "T1", "T2f"), sqrt_crb=())
    errors = pd.read_csv(exp / "tables" / "recon_error_tubes.csv", dtype={"coefficient": str})
    by = errors.set_index(["source", "region", "coefficient"]).relative_error
    units = errors.set_index(["source", "region", "coefficient"]).rms_times_snr
    assert len(errors) == 4 * 8 * 7  # 4 sources x (all + 7 tissues) x (6 coefficients + all)
    assert by[("recon", "all", "1")] < 0.3  # the object is found: 2 spokes per frame, 4 estimated coil maps
    assert by[("recon", "all", "all")] > by[("gaussian", "all", "all")]  # undersampling adds error
    assert units[("gaussian", "all", "all")] == pytest.approx(1.0, abs=0.1)  # the phantom's noise: 1/snr
    # the error budget: noiseless and noise-only reconstructions each below the whole (the same maps and steps)
    assert 0 < by[("recon_noise_only", "all", "all")] < by[("recon", "all", "all")]
    assert 0 < by[("recon_noiseless", "all", "all")] < by[("recon", "all", "all")]
    bias = pd.read_csv(exp / "tables" / "recon_bias_tubes.csv")
    assert set(bias.estimator) == {"mse", "crb", "bias_reduced", "nlls", "refined"}
    assert set(bias.parameter) == {"m0s", "T1", "T2f"}
    assert len(bias[bias.estimator == "crb"]) == 7 * 3 and np.all(bias.count_recon > 0)
    np.testing.assert_allclose(bias.bias_change, bias.mean_recon - bias.mean_gaussian, rtol=1e-6, atol=1e-8)  # CSV digits
    # the error curve (tiny: checkpoints 5, 20 (the recon's own count), 40, and LLR lambda 0.01 with 3 ADMM steps)
    curve = pd.read_csv(exp / "tables" / "recon_steps_tubes.csv", dtype={"coefficient": str})
    whole = curve[curve.coefficient == "all"].set_index(["method", "source", "steps"]).relative_error
    assert len(curve) == (3 * 3 + 1) * 7  # (3 sources x 3 checkpoints + 1 LLR) x (6 coefficients + all)
    for source in ("recon", "recon_noiseless", "recon_noise_only"):  # the recon's own count is the error table's
        assert whole[("cg", source, 20)] == pytest.approx(by[(source, "all", "all")], rel=1e-5)
    assert whole[("cg", "recon_noiseless", 40)] < whole[("cg", "recon_noiseless", 5)]  # more steps: less blur
    assert whole[("cg", "recon_noise_only", 40)] > whole[("cg", "recon_noise_only", 5)]  # and more noise
    assert ("llr", "recon", 15) in whole.index
    for figure in ("recon_bias_tubes", "maps_tubes_recon", "recon_steps_tubes"):
        assert (exp / "figures" / f"{figure}.png").stat().st_size > 1000


def _check_tiny_fisp(exp):
    """The MRF-FISP experiment: networks and dictionary matching evaluated alike, figures with both."""
    for figure in ("sequence", "loss_curves", "grid_bias_std", "snr_bias_std", "sweep_boxplots", "bias_histograms"):
        assert (exp / "figures" / f"{figure}.png").stat().st_size > 1000
    with h5py.File(exp / "models" / "matching.h5") as f:
        grid = f["parameters"][()]
        assert list(f["parameters"].attrs["names"]) == ["T1", "T2", "B1"] and np.all(grid[:, 1] <= grid[:, 0])
        T1, T2 = np.meshgrid(np.geomspace(0.2, 3.0, 8), np.geomspace(0.01, 0.3, 8))
        assert len(grid) == 3 * np.sum(T2 <= T1) and f["atoms"].shape == (len(grid), 6)
    for estimator in ("mse", "crb", "bias_reduced", "matching"):
        table = pd.read_csv(exp / "eval" / f"{estimator}_test.csv")
        assert len(table) == 2 * 6 and set(table.parameter) == {"T1", "T2"} and np.all(table.variance >= 0)
        sweep = pd.read_csv(exp / "eval" / "snr_sweep" / f"{estimator}.csv")
        assert len(sweep) == 4 and np.all(sweep.at_T1 == 0.85)
        raw = pd.read_csv(exp / "eval" / "parameter_sweep" / f"{estimator}.csv")
        assert len(raw) == 3 * 8 * 2 and np.all(np.isfinite(raw.estimate))
    raw = pd.read_csv(exp / "eval" / "parameter_sweep" / "matching.csv")
    estimates = raw[raw.parameter == "T1"].estimate.to_numpy()  # matching returns grid values (CSV: 10 digits)
    assert np.all(np.abs(estimates[:, None] / np.geomspace(0.2, 3.0, 8) - 1).min(axis=1) < 1e-9)
    headline = pd.read_csv(exp / "tables" / "summary.csv")
    assert list(dict.fromkeys(headline.estimator)) == ["mse", "crb", "bias_reduced", "matching", "refined"]
    by = headline.set_index(["estimator", "parameter"])
    assert np.isnan(by.loc[("matching", "T1"), "val_crb_loss"]) and by.loc[("mse", "T1"), "val_crb_loss"] > 0
    assert np.isfinite(by.loc[("matching", "T2"), "grid_mean_abs_bias"])


@pytest.mark.slow
def test_between_workflow_cache(tmp_path):
    """With --cache, a second working directory takes the simulated data and the trained network from Snakemake's
    output cache instead of recomputing them; a change to the package code would change the key (code digest)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    target = "tiny_fisp/models/mse.pt"
    for name in ("first", "second"):
        out = tmp_path / name
        run = subprocess.run([*SNAKEMAKE, str(out / target), "--cores", "2", "--cache", "--configfile",
                              "tests/config/tiny.yaml", "--config", f"results={out}"], cwd=ROOT, capture_output=True,
                             text=True, env={**os.environ, "SNAKEMAKE_OUTPUT_CACHE": str(cache)})
        assert run.returncode == 0, run.stdout + run.stderr
    first, second = tmp_path / "first" / "tiny_fisp", tmp_path / "second" / "tiny_fisp"
    # the job ran in the first root (its log ends with the wall time); the second only took its outputs (empty log)
    for log in ("train_mse.log", "simulate_train.log"):
        assert "done in" in (first / "logs" / log).read_text() and (second / "logs" / log).stat().st_size == 0
    assert (second / "models" / "mse.pt").is_symlink() and (second / "models" / "mse.pt").resolve().parent == cache
    for path in ("models/mse.pt", "models/mse_history.csv", "data/train.h5", "basis.h5"):
        assert (second / path).read_bytes() == (first / path).read_bytes()
    assert len(list(cache.iterdir())) == 5  # basis set, train, val, network and history (the basis rule is cheap)


def test_readme_worked_example_dry_runs(tmp_path):
    """The worked example runs out of the box: our parametric pattern ships with the project."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```yaml\n# my.yaml", 1)[1].split("\n", 1)[1].split("```", 1)[0]
    (tmp_path / "my.yaml").write_text(block)
    run = _snakemake("-n", "--cores", "1", "--configfile", str(tmp_path / "my.yaml"), "--config", f"results={tmp_path}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "parametric" in run.stdout and "/default/" not in run.stdout  # only the example's experiment


def test_profiles_name_only_rules_that_exist():
    """A renamed rule must not leave a profile's threads or resources pointing at nothing (Snakemake ignores them)."""
    import re

    rules = {m for smk in (ROOT / "rules").glob("*.smk") for m in re.findall(r"^rule (\w+):", smk.read_text(), re.M)}
    for profile in (ROOT / "profiles").glob("*/config.yaml"):
        settings = yaml.safe_load(profile.read_text())
        for key in ("set-threads", "set-resources"):
            assert set(settings.get(key, {})) <= rules, f"{profile}: {key} names {set(settings[key]) - rules}"


def _gpu_rules(tmp_path, *config) -> set[str]:
    """Rules whose jobs reserve a GPU in a dry run of the whole tiny workflow with the SLURM profile's resources."""
    import re

    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    resources = [f"{rule}:{key}={value}" for rule, entries in profile["set-resources"].items()
                 for key, value in entries.items()]
    run = _snakemake("-n", "--forceall", "--cores", "1", "--configfile", "tests/config/tiny.yaml",
                     "--config", f"results={tmp_path}", *config, "--set-resources", *resources)
    assert run.returncode == 0, run.stdout + run.stderr
    reserving, rule = set(), None
    for line in run.stdout.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line):
            rule = match[1]
        elif (gpus := re.search(r"resources:.*\bgpu=(\d+)", line)) and int(gpus[1]) > 0:
            reserving.add(rule)
    return reserving


def test_device_cpu_is_the_one_switch_for_a_cluster_without_gpus(tmp_path):
    """`device: cpu` leaves no job reserving a GPU (sbatch refuses --gpus where a cluster has none), whatever rule
    or profile entry reserves one otherwise."""
    assert {"train_network", "reconstruct"} <= _gpu_rules(tmp_path, "device=auto")  # the tiny config says cpu
    assert _gpu_rules(tmp_path, "device=cpu") == set()
