"""The tiny workflow through a real one-node SLURM cluster (slurm_cluster.sh) with profiles/slurm.

Marked ``slurm`` and skipped unless CRBNET_SLURM=1: it needs root, Debian's slurm-wlm and munge (installed by the
script when missing) and snakemake-executor-plugin-slurm (pip install -e ".[slurm]"). Run it with
``CRBNET_SLURM=1 python -m pytest -m slurm tests/integration``.
"""

import os
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

SCRIPT = ROOT / "tests" / "integration" / "slurm_cluster.sh"
PROFILE = ROOT / "profiles" / "slurm"

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(os.environ.get("CRBNET_SLURM") != "1", reason="set CRBNET_SLURM=1 to run the SLURM test"),
]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Start the cluster, yield the environment pointing clients at it, stop it."""
    state = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "CRBNET_SLURM_DIR": str(state)}
    start = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True)
    assert start.returncode == 0, start.stdout + start.stderr
    env["SLURM_CONF"] = start.stdout.strip().split("=", 1)[1]
    yield env
    subprocess.run(["bash", str(SCRIPT), "stop"], env=env)


def _site_overrides() -> list[str]:
    """What a user on a small CPU-only site passes: jobs of at most half this machine's cores (two run at once: every
    job spends seconds starting Python) and memory requests that fit its one node (the profile's are sized for
    paper-scale runs). No GPU: the `--config device=cpu` of the test itself."""
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    resources = [f"{rule}:mem_mb=1500" for rule in profile["set-resources"]]
    return ["--max-threads", str(max(1, (os.cpu_count() or 2) // 2)), "--default-resources", "mem_mb=1000", "runtime=30",
            "--set-resources", *resources]


def test_tiny_workflow_runs_through_sbatch(cluster, tmp_path):
    out = tmp_path / "results"
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", "--profile", str(PROFILE), "--configfile", "tests/config/tiny.yaml",
         "--config", f"results={out}", "device=cpu", "--slurm-no-account", "--slurm-status-command", "squeue",
         "--slurm-keep-successful-logs", "--slurm-init-seconds-before-status-checks", "5",
         "--seconds-between-status-checks", "5", "--slurm-logdir", str(tmp_path / "slurm_logs"), *_site_overrides()],
        cwd=ROOT, env=cluster, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]

    # every output of the local end-to-end test exists
    for exp, figures in (("tiny", ("crb_slice", "grid_bias_std", "sweep_boxplots", "snr_bias_std")),
                         ("tiny_fisp", ("grid_bias_std", "snr_bias_std"))):
        for figure in ("sequence", "loss_curves", *figures):
            assert (out / exp / "figures" / f"{figure}.png").stat().st_size > 1000
        assert (out / exp / "tables" / "summary.csv").exists()
    assert (out / "tiny_fisp" / "models" / "matching.h5").exists()

    # the jobs really went through sbatch. SLURM forgets finished jobs MinJobAge (600 s) after they end, so on a
    # slower machine the early ones are gone from squeue: count what cannot expire, the plugin's per-job logs (one
    # per job, each holding the job's Snakemake output), and require only that the jobs SLURM still lists completed.
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall", "--configfile", "tests/config/tiny.yaml",
                          "--config", f"results={out}", "--quiet", "rules"], cwd=ROOT, capture_output=True, text=True)
    jobs = [line.split() for line in dry.stdout.splitlines() if line.strip().startswith("total")]
    expected = int(jobs[0][1]) - 1  # all but the local target rule
    logs = list((tmp_path / "slurm_logs").rglob("*.log"))
    assert len(logs) >= expected
    text = "\n".join(log.read_text(errors="replace") for log in logs)
    assert all(f"rule {name}" in text for name in ("train_network", "matching_estimator", "simulate_dataset"))
    records = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%T|%k"], env=cluster, capture_output=True,
                             text=True, check=True).stdout.split()
    assert {r.split("|")[1] for r in records} <= {"COMPLETED"}, records
