"""The Snakemake workflow: lint, dry runs of every shipped config, and a tiny end-to-end run."""

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
CONFIGS = sorted((ROOT / "config").glob("*.yaml")) + [ROOT / "tests" / "config" / "tiny.yaml"]


def _snakemake(*args, cwd=ROOT):
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True)


def test_lint():
    run = _snakemake("--lint")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_dry_run(config, tmp_path):
    run = _snakemake("-n", "--cores", "1", "--configfile", str(config), "--config", f"results={tmp_path}")
    assert run.returncode == 0, run.stdout + run.stderr


def test_invalid_config_is_rejected(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments:\n  x:\n    sequence: s.yaml\n    parameter_space: {parameters: {}}\n"
                   "    datasets: {train: {n: 0, seed: 1}}\n")
    run = _snakemake("-n", "--cores", "1", "--configfile", str(bad))
    assert run.returncode != 0 and "0 is less than the minimum of 1" in run.stdout + run.stderr


@pytest.mark.slow
def test_tiny_end_to_end(tmp_path):
    out = tmp_path / "results"
    args = ("--cores", "2", "--configfile", str(ROOT / "tests/config/tiny.yaml"), "--config", f"results={out}")
    run = _snakemake(*args)
    assert run.returncode == 0, run.stdout + run.stderr
    exp = out / "tiny"
    for figure in ("sequence", "crb_slice"):
        for ext in ("png", "pdf"):
            assert (exp / "figures" / f"{figure}.{ext}").stat().st_size > 1000
    with h5py.File(exp / "data" / "train.h5") as f:
        assert f["signals"].shape == (6, 1142) and f["parameters"].shape == (6, 7)
        assert np.all(np.isfinite(f["crb"][()])) and np.all(f["crb"][()] > 0)
        assert list(f["crb"].attrs["names"]) == ["m0s", "T1", "T2f", "Rx", "T2s", "omega0", "B1"]
        assert np.all(f["parameters"][:, 2] <= f["parameters"][:, 1])  # T2f <= T1
    summary = pd.read_csv(exp / "tables" / "crb_summary_train.csv")
    assert np.all(summary["finite_fraction"] == 1) and np.all(summary["sqrt_crb_median"] > 0)
    grid = pd.read_csv(exp / "tables" / "crb_slice.csv")
    assert len(grid) == 9 and np.all(np.isfinite(grid.filter(like="sqrt_crb_")))
    # sqrt(CRB) of T1 at sigma = 0.01 is a plausible fraction of T1 (percent to tens of percent)
    assert np.all((grid["sqrt_crb_T1"] / grid["T1"]).between(1e-3, 1.0))
    again = _snakemake("-n", *args)
    assert "Nothing to be done" in again.stdout + again.stderr
    shutil.rmtree(out)
