"""Training and inference throughput of the default (Zhang 2022) network.

Times whole training epochs of the real loop (fresh M0 and noise, normalization, CRB loss, Adam; batch 512) on
synthetic coefficients, and ``NetworkEstimator.predict`` (folded BatchNorm, inference mode, 4096-voxel batches) in fp32 and bf16
(median of repeats).
Ends with ``train_samples_per_s=<x> infer_voxels_per_s=<y>`` (fp32).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from crbnet.basis import svd_basis
from crbnet.datasets import FingerprintSet, NoiseModel
from crbnet.runtime import bf16_native, cpu_description, pick_device
from crbnet.training import TrainConfig, _epoch, build_estimator


def synthetic(n: int, rank: int, seed: int = 0) -> tuple[FingerprintSet, object]:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, 64)) + 1j * rng.normal(size=(n, 64))
    basis = svd_basis([s[:2048]], rank, "benchmark")
    p = rng.uniform(0.5, 1.5, size=(n, 3))
    crb = rng.uniform(1e-3, 1e-1, size=(n, 3))
    return FingerprintSet(("m0s", "T1", "T2f"), ("1", "s", "s"), torch.as_tensor(p),
                          torch.as_tensor(basis.project(s).astype(np.complex64)), torch.as_tensor(crb)), basis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=16384, help="examples per timed epoch")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after one warm-up epoch)")
    parser.add_argument("--n-infer", type=int, default=262144, help="voxels per timed inference")
    parser.add_argument("--batch", type=int, default=512, help="training batch size")
    parser.add_argument("--repeats", type=int, default=3, help="timed inference repeats (median reported)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device, gpus=1)
    examples, basis = synthetic(args.n_train, 13)
    cfg = TrainConfig(batch_size=args.batch, epochs=args.epochs)
    est = build_estimator(examples, basis, cfg)
    net = est.net.to(device).train()
    on_device = examples.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    noise = NoiseModel.from_config(cfg.noise)
    _epoch(net, opt, on_device, cfg, noise, 0)
    sync()
    tic = time.perf_counter()
    for epoch in range(args.epochs):
        _epoch(net, opt, on_device, cfg, noise, epoch + 1)
    sync()
    train_rate = args.epochs * args.n_train / (time.perf_counter() - tic)
    net.eval().cpu()

    coefficients = examples.coefficients.numpy()
    voxels = np.resize(coefficients, (args.n_infer, coefficients.shape[1]))
    rates = {"bf16": float("nan")}
    for precision in ("fp32", "bf16") if bf16_native(device) else ("fp32",):  # emulated bf16 is not worth timing
        est.predict(voxels[:4096], precision=precision, device=device)  # warm-up
        times = []
        for _ in range(args.repeats):
            tic = time.perf_counter()
            est.predict(voxels, precision=precision, device=device)
            times.append(time.perf_counter() - tic)
        rates[precision] = args.n_infer / float(np.median(times))
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch} n_train={args.n_train}")
    bf16 = f"{rates['bf16']:.0f}" if bf16_native(device) else "not_timed(emulated_here)"
    print(f"cpu={cpu_description()}")
    print(f"epoch_s_at_92160={92160 / train_rate:.2f} bf16_voxels_per_s={bf16} "
          "(bf16 accuracy of trained networks: benchmarks/efficiency.py)")
    print(f"train_samples_per_s={train_rate:.0f} infer_voxels_per_s={rates['fp32']:.0f}")


if __name__ == "__main__":
    main()
