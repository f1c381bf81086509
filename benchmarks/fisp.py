"""MRF-FISP throughput: EPG simulation and dictionary matching on the default 1000-TR pattern.

EPG: fingerprints x TRs per second (20 states, complex64 output, signal only). Matching: voxels per second against
10^4 atoms of rank 25 (noisy atoms with random complex M0), brute force and the clustered search, with their rates
of exact matches (matched atom = true atom). Ends with ``epg_fp_tr_per_s=<x> match_voxels_per_s=<y>`` (clustered).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from crbnet.basis import svd_basis
from crbnet.matching import Dictionary
from crbnet.models.fisp import epg_fisp
from crbnet.sequences import load_sequence

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096, help="fingerprints per EPG call")
    parser.add_argument("--atoms", type=int, default=10_000)
    parser.add_argument("--rank", type=int, default=25)
    parser.add_argument("--voxels", type=int, default=100_000)
    args = parser.parse_args()
    seq = load_sequence(ROOT / "config" / "sequences" / "mrf_fisp_default.yaml")
    rng = np.random.default_rng(0)

    T1, T2 = (torch.as_tensor(rng.uniform(lo, hi, args.batch)) for lo, hi in ((0.3, 3.0), (0.02, 0.3)))
    B1 = torch.ones(args.batch)
    epg_fisp(T1[:64], T2[:64], B1[:64], seq, 20, torch.complex64)  # warm-up
    times = []
    for _ in range(3):
        tic = time.perf_counter()
        epg_fisp(T1, T2, B1, seq, 20, torch.complex64)
        times.append(time.perf_counter() - tic)
    epg_rate = args.batch * seq.n_samples / float(np.median(times))

    T1, T2 = rng.uniform(0.3, 3.0, args.atoms), rng.uniform(0.02, 0.3, args.atoms)
    atoms = torch.cat([epg_fisp(torch.as_tensor(T1[i: i + 4096]), torch.as_tensor(T2[i: i + 4096]),
                                torch.ones(len(T1[i: i + 4096])), seq, 20, torch.complex64)
                       for i in range(0, args.atoms, 4096)]).numpy()
    basis = svd_basis([atoms[:4096]], args.rank, seq.sha256)
    coefficients = basis.project(atoms)
    dictionary = Dictionary(coefficients, np.stack([T1, T2], 1), ("T1", "T2"))
    pick = rng.integers(0, args.atoms, args.voxels)
    M0 = rng.uniform(0.5, 1.5, args.voxels) * np.exp(1j * rng.uniform(0, 2 * np.pi, args.voxels))
    noise = 0.01 * (rng.normal(size=(args.voxels, args.rank)) + 1j * rng.normal(size=(args.voxels, args.rank)))
    data = (coefficients[pick] * M0[:, None] + noise).astype(np.complex64)
    tic = time.perf_counter()
    clusters = len(dictionary.cluster_index.centres)
    build = time.perf_counter() - tic
    rate, exact = {}, {}
    for method in ("brute", "clustered"):
        dictionary.match(data[:1000], method=method)  # warm-up (the clustered kernel loads from numba's cache)
        tic = time.perf_counter()
        result = dictionary.match(data, method=method)
        rate[method] = args.voxels / (time.perf_counter() - tic)
        exact[method] = np.mean(result.index == pick)
    print(f"threads={torch.get_num_threads()} epg_batch={args.batch} states=20 atoms={args.atoms} rank={args.rank} "
          f"real_path={dictionary.real} clusters={clusters} index_build_s={build:.2f}")
    print(" ".join(f"{m}_voxels_per_s={rate[m]:.3g} {m}_exact_matches={exact[m]:.4f}" for m in rate))
    print(f"epg_fp_tr_per_s={epg_rate:.3g} match_voxels_per_s={rate['clustered']:.3g}")


if __name__ == "__main__":
    main()
