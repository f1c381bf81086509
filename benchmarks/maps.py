"""Map-fitting throughput on the whole 1 mm MNI152 brain phantom (about 1.9 million voxels).

Builds the brain phantom volume with the default experiment's tissue values, simulates its noisy coefficient image
(13 coefficients of our default qMT sequence; each tissue simulated once) and times the paper network
(``NetworkEstimator.predict``, fp32 and bf16; an untrained network of the same size costs the same) on every brain voxel,
then NLLS (crbnet.fitting, all 7 parameters, at most ``--nlls-iterations`` Levenberg-Marquardt steps from the
prior means, a voxel stopping once a step lowers its cost by less than 1e-8 relative) on ``--nlls-voxels``
white-matter voxels, the refined estimator (the network's estimates, omega0 from the best of 8 candidates, then
``--refine-steps`` Gauss-Newton steps of all 7 parameters; crbnet.fitting.RefinedEstimator) on ``--refine-voxels``
of them, then dictionary matching on the MRF-FISP brain (20 coefficients,
46,280 atoms of the default grid) on a slice.

Ends with ``nn_brain_s=<x> nlls_s_per_voxel=<y> refine_voxels_per_s=<r> dm_voxels_per_s=<z>``, and ``nlls_gpu_speedup=<w>`` (CPU seconds per
voxel over GPU seconds per voxel, the GPU fitting as many voxels as one batch holds) when a GPU is present.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from crbnet.basis import svd_basis
from crbnet.estimator import NetworkEstimator
from crbnet.fitting import NLLSEstimator, RefinedEstimator, spread_candidates
from crbnet.matching import MatchingEstimator
from crbnet.nets import ZHANG_HIDDEN, ResidualMLP
from crbnet.parameters import ParameterSpace
from crbnet.phantoms import brain_phantom, coefficient_image
from crbnet.runtime import cpu_description
from crbnet.devices import bf16_native
from crbnet.sequences import load_sequence
from crbnet.signals import signal_model_for
from crbnet.simulation import grid_axes

ROOT = Path(__file__).resolve().parents[1]


def experiment(name: str) -> tuple[dict, ParameterSpace, object]:
    """Config block, parameter space and signal model of an experiment of config/config.yaml."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"][name]
    space = ParameterSpace.from_config(cfg["parameter_space"])
    return cfg, space, signal_model_for(load_sequence(ROOT / cfg["sequence"]), space.parameterization)


def basis_for(signal_model, space: ParameterSpace, rank: int, n: int = 1024):
    """An SVD basis of n prior draws (signals only)."""
    return svd_basis([signal_model.signal(space.sample(n, 1)).numpy()], rank, signal_model.sequence.sha256)


def nlls_seconds(signal_model, basis, space: ParameterSpace, names: tuple[str, ...], voxels: np.ndarray,
                 iterations: int) -> float:
    """Seconds per voxel of NLLS on the model's device (prints the fitted medians)."""
    nlls = NLLSEstimator(signal_model, basis, space, names, iterations=iterations)
    nlls.predict(voxels[:1])  # warm-up
    tic = time.perf_counter()
    fitted = nlls.predict(voxels)
    seconds = (time.perf_counter() - tic) / len(voxels)
    print(f"NLLS on {signal_model.device}: {len(voxels)} white-matter voxels, at most {iterations} iterations, "
          f"{seconds:.3g} s per voxel; median m0s, T1, T2f {np.round(np.median(fitted, axis=0), 4)} "
          f"(truth 0.212, 0.95, 0.0769)")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slice", type=int, default=72, help="axial slice for dictionary matching")
    parser.add_argument("--nlls-voxels", type=int, default=64)
    parser.add_argument("--nlls-iterations", type=int, default=20)
    parser.add_argument("--refine-voxels", type=int, default=512)
    parser.add_argument("--refine-steps", type=int, default=2)
    args = parser.parse_args()

    cfg, space, signal_model = experiment("default")
    basis = basis_for(signal_model, space, cfg["basis"]["rank"])
    tic = time.perf_counter()
    phantom = brain_phantom(cfg["phantoms"]["brain"]["tissues"], space.parameterization, axial_slice=None)
    image = coefficient_image(phantom, signal_model, basis, snr=50, seed=0)
    data = image[phantom.mask]
    print(f"brain volume {phantom.labels.shape}: {len(data)} voxels, phantom and coefficients in "
          f"{time.perf_counter() - tic:.1f} s")
    names = tuple(cfg["training"]["estimate"])
    torch.manual_seed(0)
    net = ResidualMLP(2 * basis.rank, ZHANG_HIDDEN, torch.zeros(len(names)), torch.ones(len(names))).eval()
    estimator = NetworkEstimator(net, basis, "unit_norm", names, ("1", "s", "s"), {})
    seconds = {}
    for precision in ("fp32", "bf16") if bf16_native(torch.device("cpu")) else ("fp32",):  # emulated bf16: not timed
        estimator.predict(data[:8192], precision=precision)  # warm-up
        tic = time.perf_counter()
        estimator.predict(data, precision=precision)
        seconds[precision] = time.perf_counter() - tic
        print(f"network {precision}: {seconds[precision]:.1f} s ({len(data) / seconds[precision]:.3g} voxels/s)")

    wm = [k for k, v in phantom.tissues.items() if v == "white_matter"][0]
    white = image[phantom.labels == wm]
    nlls_s = nlls_seconds(signal_model, basis, space, names, white[: args.nlls_voxels], args.nlls_iterations)
    refined = RefinedEstimator(estimator, signal_model, space, args.refine_steps,
                               spread_candidates(space, {"omega0": 8}))
    refined.predict(white[:2])  # warm-up
    tic = time.perf_counter()
    refined.predict(white[: args.refine_voxels])
    refine_rate = min(args.refine_voxels, len(white)) / (time.perf_counter() - tic)
    print(f"refined: {args.refine_steps} steps, 8 omega0 candidates, {refine_rate:.3g} voxels/s "
          f"({20000 / refine_rate:.0f} s for a 20,000-voxel slice)")
    gpu = ""
    if torch.cuda.is_available():  # the same fit on the GPU, with as many voxels as it takes at once
        cuda = signal_model_for(signal_model.sequence, space.parameterization, "cuda")
        n = cuda.chunk_entries // (1 + len(cuda.parameterization.names))
        gpu = f" nlls_gpu_speedup={nlls_s / nlls_seconds(cuda, basis, space, names, white[:n], args.nlls_iterations):.3g}"

    cfg, space, signal_model = experiment("mrf_fisp")
    basis = basis_for(signal_model, space, cfg["basis"]["rank"])
    dm = MatchingEstimator.from_grid(signal_model, basis, space, grid_axes(*cfg["dictionary"]["axes"]),
                                     tuple(cfg["training"]["estimate"]))
    phantom = brain_phantom(cfg["phantoms"]["brain"]["tissues"], space.parameterization, axial_slice=args.slice)
    data = coefficient_image(phantom, signal_model, basis, snr=30, seed=0)[phantom.mask]
    dm.predict(data[:1000])
    tic = time.perf_counter()
    dm.predict(data)
    dm_rate = len(data) / (time.perf_counter() - tic)
    print(f"dictionary matching: {len(dm.dictionary)} atoms, rank {basis.rank}, {len(data)} voxels")
    print(f"threads={torch.get_num_threads()} cpu={cpu_description()}")
    print(f"nn_brain_s={seconds['fp32']:.3g} nlls_s_per_voxel={nlls_s:.3g} refine_voxels_per_s={refine_rate:.3g} "
          f"dm_voxels_per_s={dm_rate:.3g}{gpu}")


if __name__ == "__main__":
    main()
