"""GPU smoke test: every GPU path of crbnet against the CPU, with the timings that matter, in a few minutes.

Paths: qMT simulation with Jacobians (rtol 1e-9 against the CPU torch reference), a dataset chunk (coefficients and
CRBs), two epochs of each loss in fp32 and (where native) bf16 with resume equality on the device, inference fp32 and
bf16 against the CPU, NLLS on 8 voxels against the CPU, the refined estimator (3 steps) against the CPU, the
subspace reconstruction's normal operator against the CPU on the brain slice's geometry, and with ``--workflow``
the tiny workflow's network training with ``--resources gpu=1``. Prints PASS/FAIL/SKIP per path, then the
timings: epoch at 92,160 samples, inference voxels/s, NLLS speed-up over the CPU, refined voxels/s and the brain
slice's reconstruction (50 CG steps) in seconds. ``--device cpu`` runs every path on the CPU (about a minute on 2 cores), so
the script stays alive without a GPU. Exit code 1 if any path fails.

    python benchmarks/gpu_smoke.py                 # on a GPU machine
    python benchmarks/gpu_smoke.py --device cpu    # anywhere
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from crbnet.fitting import NLLSEstimator
from crbnet.signals.qmt import QMTSignalModel
from crbnet.parameters import PARAMETERIZATIONS, ParameterSpace
from crbnet.runtime import cpu_description
from crbnet.devices import bf16_native, pick_device
from crbnet.sequences import load_sequence
from crbnet.simulation import write_dataset
from crbnet.training import TrainConfig, build_estimator, train

sys.path.insert(0, str(Path(__file__).parent))
from train import synthetic  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PZ = PARAMETERIZATIONS["apparent_t1"]
SPACE = ParameterSpace.from_config({"parameterization": "apparent_t1", "parameters": {
    "m0s": {"dist": "uniform", "lower": 0.05, "upper": 0.3}, "T1": {"dist": "uniform", "lower": 0.6, "upper": 2.5},
    "T2f": {"dist": "uniform", "lower": 0.03, "upper": 0.15}, "Rx": {"dist": "uniform", "lower": 5, "upper": 60},
    "T2s": {"dist": "uniform", "lower": 6e-6, "upper": 20e-6},
    "omega0": {"dist": "uniform", "lower": -900, "upper": 900},
    "B1": {"dist": "uniform", "lower": 0.7, "upper": 1.3}}})
RESULTS: dict[str, str] = {}
TIMINGS: dict[str, str] = {}


def check(name: str, fn: Callable[[], str | None]) -> None:
    """Run one path; record PASS (with its detail), SKIP (fn returns 'skip: ...') or FAIL (an exception)."""
    tic = time.perf_counter()
    try:
        detail = fn() or ""
        status = "SKIP" if detail.startswith("skip") else "PASS"
    except Exception as err:  # noqa: BLE001 - every failure is reported, the other paths still run
        traceback.print_exc()
        status, detail = "FAIL", f"{type(err).__name__}: {err}"
    RESULTS[name] = status
    print(f"{status:4s} {name} ({time.perf_counter() - tic:.1f} s) {detail}", flush=True)


def simulation(device: torch.device) -> str:
    seq = load_sequence(ROOT / "config/sequences/zhang2022_published.yaml")
    values = SPACE.sample(5, seed=0)  # an odd batch
    s, j = QMTSignalModel(seq, PZ, device).simulate(values, PZ.names)
    s0, j0 = QMTSignalModel(seq, PZ, "cpu", kernel="torch").simulate(values, PZ.names)
    err_s = float((s.cpu() - s0).abs().max() / s0.abs().max())
    err_j = float(((j.cpu() - j0).abs().amax(dim=(0, 1)) / j0.abs().amax(dim=(0, 1))).max())
    assert err_s <= 1e-9 and err_j <= 1e-9, (err_s, err_j)
    return f"max relative error signal {err_s:.1e}, Jacobian {err_j:.1e}"


def dataset_chunk(device: torch.device, tmp: Path) -> str:
    from crbnet.basis import dataset_basis

    seq = load_sequence(ROOT / "config/sequences/hybrid_state_default.yaml")
    values = SPACE.sample(24, seed=1)
    write_dataset(tmp / "basis.h5", QMTSignalModel(seq, PZ, "cpu"), values, crb=False)
    basis = dataset_basis(tmp / "basis.h5", 8)
    import h5py

    out = {}
    for name, dev in (("device", device), ("cpu", torch.device("cpu"))):
        write_dataset(tmp / f"{name}.h5", QMTSignalModel(seq, PZ, dev), values, basis=basis)
        with h5py.File(tmp / f"{name}.h5") as f:
            out[name] = f["coefficients"][()], f["crb_coefficients"][()]
    np.testing.assert_allclose(out["device"][0], out["cpu"][0], rtol=1e-5, atol=1e-7)  # stored as complex64
    np.testing.assert_allclose(out["device"][1], out["cpu"][1], rtol=1e-6)
    assert np.all(np.isfinite(out["device"][1]))
    return "24 fingerprints: coefficients and coefficient CRBs agree with the CPU"


def training(device: torch.device, loss: str, precision: str, tmp: Path) -> str:
    if precision == "bf16" and not bf16_native(device):
        return f"skip: bf16 is emulated on this {device.type}"
    n = 512 if loss == "bias_reduced" else 2048
    examples, basis = synthetic(n + 512, 13)
    tr, va = examples.subset(slice(0, n)), examples.subset(slice(n, None))
    extra = {"realizations": 8, "batch_size": 64} if loss == "bias_reduced" else {}
    cfg = TrainConfig.from_mapping({"loss": loss, "epochs": 2, "checkpoint_every": 1, "precision": precision,
                                    "hidden": [128, 256, 256, 128, 32], **extra})  # small: resume equality is the check
    weights = []
    for epochs, ckpt in ((2, None), (1, tmp / f"{loss}_{precision}.ckpt"), (2, tmp / f"{loss}_{precision}.ckpt")):
        run = dataclasses.replace(cfg, epochs=epochs)
        est = build_estimator(tr, basis, run)
        train(est, tr, va, run, device, checkpoint_path=ckpt, progress=False)
        weights.append(torch.cat([p.flatten() for p in est.net.state_dict().values()]))
    assert torch.equal(weights[0], weights[2]), "resumed run differs from the uninterrupted one"
    return "2 epochs; resumed run bitwise equal to the uninterrupted one"


def inference(device: torch.device) -> str:
    examples, basis = synthetic(2048, 13)
    est = build_estimator(examples, basis, TrainConfig(epochs=1))  # Zhang's network
    train(est, examples, examples.subset(slice(0, 512)), TrainConfig(epochs=1), torch.device("cpu"), progress=False)
    c = examples.coefficients.numpy()
    ref = est.predict(c)
    spread = ref.std(axis=0)
    details = []
    for precision in ("fp32", "bf16"):
        if precision == "bf16" and not bf16_native(device):
            details.append("bf16 skipped (emulated)")
            continue
        diff = np.median(np.abs(est.predict(c, precision=precision, device=device) - ref), axis=0) / spread
        limit = 1e-4 if precision == "fp32" else 0.02
        assert np.all(diff < limit), (precision, diff)
        details.append(f"{precision} median |diff|/spread {diff.max():.1e}")
    voxels = np.resize(c, (262144 if device.type == "cuda" else 65536, c.shape[1]))
    est.predict(voxels[:4096], device=device)
    sync(device)
    tic = time.perf_counter()
    est.predict(voxels, device=device)
    sync(device)
    TIMINGS["infer_voxels_per_s"] = f"{len(voxels) / (time.perf_counter() - tic):.3g}"
    return "; ".join(details)


def epoch_time(device: torch.device) -> str:
    n = 16384 if device.type == "cuda" else 4096
    examples, basis = synthetic(n, 13)
    cfg = TrainConfig(epochs=2, checkpoint_every=100)  # Zhang's network and batch size
    est = build_estimator(examples, basis, cfg)
    tic = time.perf_counter()
    history = train(est, examples, examples.subset(slice(0, 512)), cfg, device, progress=False)
    per_sample = float(history.seconds.iloc[-1]) / len(examples)
    TIMINGS["epoch_s_at_92160"] = f"{per_sample * 92160:.3g}"
    return f"{time.perf_counter() - tic:.1f} s for 2 epochs of {n:,} (the second timed)"


def nlls(device: torch.device) -> str:
    from crbnet.basis import svd_basis

    seq = load_sequence(ROOT / "config/sequences/hybrid_state_default.yaml")
    cpu_model = QMTSignalModel(seq, PZ, "cpu")
    truth = SPACE.sample(8, seed=2)
    basis = svd_basis([cpu_model.signal(SPACE.sample(256, seed=3)).numpy()], 13, "smoke")
    rng = np.random.default_rng(0)
    data = basis.project(cpu_model.signal(truth).numpy())
    data = data + 0.005 * (rng.normal(size=data.shape) + 1j * rng.normal(size=data.shape))
    fits, seconds = {}, {}
    for name, signal_model in (("device", QMTSignalModel(seq, PZ, device)), ("cpu", cpu_model)):
        est = NLLSEstimator(signal_model, basis, SPACE, ("m0s", "T1", "T2f"), iterations=5)
        tic = time.perf_counter()
        fits[name] = est.predict(data)
        seconds[name] = time.perf_counter() - tic
    rel = np.median(np.abs(fits["device"] / fits["cpu"] - 1))
    assert rel < 1e-4, rel
    TIMINGS["nlls_speedup"] = f"{seconds['cpu'] / seconds['device']:.3g}"
    return f"8 voxels, 5 iterations: median relative difference {rel:.1e}"


class _NearTruth:
    """A start estimator for the refinement path: the true m0s, T1, T2f times 1.1 (the protocol's minimum)."""

    names = ("m0s", "T1", "T2f")

    def __init__(self, basis, truth: dict) -> None:
        self.basis, self.truth = basis, truth

    def predict(self, data: np.ndarray, precision: str = "fp32", device: str = "cpu") -> np.ndarray:
        rows = np.resize(np.arange(len(self.truth["m0s"])), len(data))
        return 1.1 * np.stack([self.truth[k][rows] for k in self.names], axis=1)


def refinement(device: torch.device) -> str:
    """The refined estimator (3 Gauss-Newton steps, omega0 from 8 candidates) on the device against the CPU, and
    its voxels/s on the device (the CPU runs the numba kernel, a GPU the torch path)."""
    from crbnet.basis import svd_basis
    from crbnet.fitting import RefinedEstimator, spread_candidates

    seq = load_sequence(ROOT / "config/sequences/zhang2022_published.yaml")
    cpu_model = QMTSignalModel(seq, PZ, "cpu")
    truth = SPACE.sample(8, seed=4)
    basis = svd_basis([cpu_model.signal(SPACE.sample(256, seed=3)).numpy()], 13, "smoke")
    data = basis.project(cpu_model.signal(truth).numpy())
    data = data + 0.002 * np.random.default_rng(1).normal(size=data.shape)
    start, candidates = _NearTruth(basis, truth), spread_candidates(SPACE, {"omega0": 8})
    fits = {name: RefinedEstimator(start, model, SPACE, 3, candidates).predict(data)
            for name, model in (("device", QMTSignalModel(seq, PZ, device)), ("cpu", cpu_model))}
    rel = np.median(np.abs(fits["device"] / fits["cpu"] - 1))
    assert rel < 1e-4, rel
    voxels = np.resize(data, (4096 if device.type == "cuda" else 128, data.shape[1]))
    refined = RefinedEstimator(start, QMTSignalModel(seq, PZ, device), SPACE, 3, candidates)
    sync(device)
    tic = time.perf_counter()
    refined.predict(voxels)
    sync(device)
    TIMINGS["refine_voxels_per_s"] = f"{len(voxels) / (time.perf_counter() - tic):.3g}"
    return f"8 voxels: median relative difference {rel:.1e}; {len(voxels)} voxels timed"


def reconstruction(device: torch.device) -> str:
    """The subspace reconstruction on the default brain slice's geometry (197 x 233, 1,142 frames of 1 spoke, rank
    13, 8 coils): the normal operator on the device against the CPU, then 50 CG steps timed on the device with
    the Toeplitz kernels, coil-combined adjoint and transfers (crbnet.recon.reconstruct)."""
    from crbnet.acquisition import coil_sensitivities, radial_trajectory
    from crbnet.recon import SubspaceNormal, reconstruct

    shape, frames, r, coils = (197, 233), 1142, 13, 8
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.normal(size=(frames, r)) + 1j * rng.normal(size=(frames, r)))[0]
    trajectory, maps = radial_trajectory(frames, 1, 2 * max(shape)), coil_sensitivities(shape, coils)
    c = torch.as_tensor((rng.normal(size=(r, *shape)) + 1j * rng.normal(size=(r, *shape))).astype(np.complex64))
    outputs = [SubspaceNormal.build(trajectory, U, maps, d)(c.to(d)).cpu() for d in (device, torch.device("cpu"))]
    rel = float((outputs[0] - outputs[1]).norm() / outputs[1].norm())
    assert rel < 1e-4, rel
    kspace = (rng.normal(size=(coils, frames, 1, 2 * max(shape))) * (1 + 1j)).astype(np.complex64)
    tic = time.perf_counter()
    reconstruct(kspace, trajectory, U, maps, iterations=10, cg_iterations=5, device=device)
    TIMINGS["recon_brain_s"] = f"{time.perf_counter() - tic:.3g}"
    return f"normal operator: relative difference {rel:.1e} from the CPU; 50 CG steps timed"


def workflow(tmp: Path) -> str:
    target = f"{tmp}/wf/tiny_fisp/models/mse.pt"
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "all", "--resources", "gpu=1",
                          "--configfile", "tests/config/tiny.yaml", "--config", f"results={tmp}/wf", target],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    log = (tmp / "wf" / "tiny_fisp" / "logs" / "train_mse.log").read_text()
    return log.splitlines()[0]  # "training the mse network on <device>"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--workflow", action="store_true", help="also train a tiny network through Snakemake")
    args = parser.parse_args()
    device = pick_device(args.device, gpus=1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    print(f"device={device} ({name}) torch={torch.__version__} threads={torch.get_num_threads()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        check("simulation with Jacobians", lambda: simulation(device))
        check("dataset chunk", lambda: dataset_chunk(device, tmp))
        for loss in ("mse", "crb", "bias_reduced"):
            for precision in ("fp32", "bf16"):
                check(f"training {loss} {precision}", lambda: training(device, loss, precision, tmp))
        check("inference", lambda: inference(device))
        check("epoch timing", lambda: epoch_time(device))
        check("NLLS", lambda: nlls(device))
        check("refined estimator", lambda: refinement(device))
        check("subspace reconstruction", lambda: reconstruction(device))
        if args.workflow:
            check("tiny workflow with --resources gpu=1", lambda: workflow(tmp))
    failed = [k for k, v in RESULTS.items() if v == "FAIL"]
    print(" ".join(f"{k}={v}" for k, v in TIMINGS.items()) + f" failed={len(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
