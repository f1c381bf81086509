"""Training and inference throughput of the networks the default workflow trains, against the machine's roofline.

For each network of config/config.yaml (its hidden widths and basis rank) this times whole training epochs of the
real loop (fresh M0 and noise, normalization, CRB loss, fused Adam; batch 512) on synthetic coefficients with 1
thread and with all threads, and two 1-thread jobs at once (what `snakemake --cores 2` runs). The fraction of the
roofline is the network's fp32 products (forward and backward, 3 x 2 x sum of in x out per sample) per second over
the fp32 GEMM rate this machine reaches (a 2048 x 1024 x 1024 product) with the same threads. A profile of one
epoch's steps says where the rest of a step goes. Then ``NetworkEstimator.predict`` (folded BatchNorm, inference
mode) in fp32 and, where native, bf16.
Ends with ``train_samples_per_s=<x> roofline_fraction=<y> infer_voxels_per_s=<z>`` for the default qMT network with
two 1-thread jobs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from crbnet.basis import svd_basis
from crbnet.datasets import FingerprintSet, NoiseModel
from crbnet.experiment import Plan
from crbnet.runtime import cpu_description
from crbnet.devices import bf16_native
from crbnet.training import TrainConfig, _epoch, build_estimator, optimizer

ROOT = Path(__file__).resolve().parents[1]


def synthetic(n: int, rank: int, seed: int = 0) -> tuple[FingerprintSet, object]:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, 64)) + 1j * rng.normal(size=(n, 64))
    basis = svd_basis([s[:2048]], rank, "benchmark")
    p = rng.uniform(0.5, 1.5, size=(n, 3))
    crb = rng.uniform(1e-3, 1e-1, size=(n, 3))
    return FingerprintSet(("m0s", "T1", "T2f"), ("1", "s", "s"), torch.as_tensor(p),
                          torch.as_tensor(basis.project(s).astype(np.complex64)), torch.as_tensor(crb)), basis


def default_networks() -> dict[str, tuple[tuple[int, ...], int]]:
    """{experiment: (hidden widths, basis rank)} of the default config's networks."""
    plan = Plan.from_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
    return {name: (tuple(exp["training"]["hidden"]), exp.basis["rank"]) for name, exp in plan.experiments.items()
            if exp.trains}


def flops_per_sample(hidden: tuple[int, ...], rank: int, outputs: int = 3) -> float:
    widths = [2 * rank, *hidden, outputs]
    return 3 * 2 * sum(a * b for a, b in zip(widths[:-1], widths[1:]))


def gemm_rate(threads: int) -> float:
    """fp32 FLOP/s of a large matrix product with ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    tic, n = time.perf_counter(), 30
    for _ in range(n):
        a @ b
    return 2 * 2048 * 1024 * 1024 * n / (time.perf_counter() - tic)


def train_rate(hidden: tuple[int, ...], rank: int, threads: int, n: int, epochs: int, profile: bool = False) -> float:
    """Training samples per second of the real epoch loop."""
    torch.set_num_threads(threads)
    examples, basis = synthetic(n, rank)
    cfg = TrainConfig(batch_size=512, epochs=epochs, hidden=hidden)
    net = build_estimator(examples, basis, cfg).net.train()
    opt = optimizer(net, cfg.lr)
    noise = NoiseModel.from_config(cfg.noise)
    _epoch(net, opt, examples, cfg, noise, 0)  # warm-up
    tic = time.perf_counter()
    for epoch in range(epochs):
        _epoch(net, opt, examples, cfg, noise, epoch + 1)
    rate = epochs * n / (time.perf_counter() - tic)
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            _epoch(net, opt, examples, cfg, noise, epochs + 1)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return rate


def _job(args: tuple) -> float:
    return train_rate(*args)


def infer_rate(hidden: tuple[int, ...], rank: int, n: int, precision: str) -> float:
    examples, basis = synthetic(4096, rank)
    est = build_estimator(examples, basis, TrainConfig(hidden=hidden))
    voxels = np.resize(examples.coefficients.numpy(), (n, rank))
    est.predict(voxels[:4096], precision=precision)
    tic = time.perf_counter()
    est.predict(voxels, precision=precision)
    return n / (time.perf_counter() - tic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=16384, help="examples per timed epoch")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--n-infer", type=int, default=262144, help="voxels per timed inference")
    parser.add_argument("--profile", action="store_true", help="print the profile of one epoch's steps")
    args = parser.parse_args()
    cores = torch.get_num_threads()
    print(f"cpu={cpu_description()} cores={cores}")
    peak = {t: gemm_rate(t) for t in sorted({1, cores})}
    print("fp32_gemm_gflops=" + " ".join(f"{t}thread:{r / 1e9:.0f}" for t, r in peak.items()))
    headline = None
    for name, (hidden, rank) in default_networks().items():
        flops = flops_per_sample(hidden, rank)
        rates = {f"{t}thread": train_rate(hidden, rank, t, args.n_train, args.epochs, args.profile and t == 1)
                 for t in sorted({1, cores})}
        with mp.get_context("spawn").Pool(2) as pool:
            pair = sum(pool.map(_job, [(hidden, rank, 1, args.n_train, args.epochs)] * 2))
        rates["2jobs_x_1thread"] = pair
        for label, rate in rates.items():
            roof = 2 * peak[1] if label == "2jobs_x_1thread" else peak[int(label.removesuffix("thread"))]
            print(f"{name} hidden={list(hidden)} {label}: train_samples_per_s={rate:.0f} "
                  f"steps_per_s={rate / 512:.0f} roofline_fraction={rate * flops / roof:.2f}")
        infer = infer_rate(hidden, rank, args.n_infer, "fp32")
        bf16 = f"{infer_rate(hidden, rank, args.n_infer, 'bf16'):.0f}" if bf16_native(torch.device("cpu")) else \
            "not_timed(emulated_here)"
        print(f"{name} infer_voxels_per_s={infer:.0f} bf16_voxels_per_s={bf16}")
        if headline is None:
            headline = (pair, pair * flops / (2 * peak[1]), infer)
    print(f"train_samples_per_s={headline[0]:.0f} roofline_fraction={headline[1]:.2f} "
          f"infer_voxels_per_s={headline[2]:.0f}")


if __name__ == "__main__":
    main()
