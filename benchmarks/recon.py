"""Acquisition and subspace reconstruction at the brain slice's scale (issue 18): prints the wall time of each step.

197 x 233 voxels (the MNI152 grid's axial slice), 1142 frames (the hybrid-state pattern), one golden-angle spoke per
frame (1/366 of Nyquist), 2x oversampled readout, 8 coils, rank-13 basis. The time series are a random orthonormal
basis times piecewise-constant coefficient images (the phantom's tissues), so only the sizes are realistic.

    python benchmarks/recon.py [--lam 0] [--iterations 10] [--cg-iterations 5]   (the workflow default: 50 CG steps)
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

from crbnet.acquisition import acquire, coil_sensitivities, noise_sigma, radial_trajectory  # noqa: E402
from crbnet.recon import reconstruct  # noqa: E402
from crbnet.runtime import cpu_description  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--lam", type=float, default=0.0, help="locally-low-rank weight (0: CG, the default)")
parser.add_argument("--iterations", type=int, default=10)
parser.add_argument("--cg-iterations", type=int, default=5)
parser.add_argument("--threads", type=int, default=2)
args = parser.parse_args()
torch.set_num_threads(args.threads)

shape, frames, rank, coils = (197, 233), 1142, 13, 8
rng = np.random.default_rng(0)
U = np.linalg.qr(rng.normal(size=(frames, rank)) + 1j * rng.normal(size=(frames, rank)))[0]
x, y = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
labels = np.where(x**2 + y**2 < 0.8, 1 + (np.hypot(x, y) < 0.5) + (np.abs(x) < 0.2), 0)
tissue = rng.normal(size=(4, rank)) + 1j * rng.normal(size=(4, rank))
tissue[0] = 0
truth = np.moveaxis(tissue[labels], -1, 0)
traj = radial_trajectory(frames, 1, 2 * max(shape))
maps = coil_sensitivities(shape, coils)
print(f"{cpu_description()}; torch {torch.__version__}, {args.threads} threads")
start = time.perf_counter()
kspace = acquire(truth, U.T, traj, maps, noise_sigma(50.0, traj.shape[1] * traj.shape[2], shape), seed=1)
print(f"acquire: {time.perf_counter() - start:.1f} s for {kspace.size:,} samples")
start = time.perf_counter()
c = reconstruct(kspace, traj, U, maps, lam=args.lam, iterations=args.iterations, cg_iterations=args.cg_iterations,
                show_progress=True)
error = np.linalg.norm(c.transpose(2, 0, 1) - truth) / np.linalg.norm(truth)
print(f"reconstruct (lambda {args.lam}, {args.iterations} x {args.cg_iterations} CG): "
      f"{time.perf_counter() - start:.1f} s; relative error {error:.3f}")
