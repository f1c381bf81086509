"""MRF-FISP throughput: EPG simulation and dictionary matching on the default 1000-TR pattern.

EPG: fingerprints x TRs per second (20 states, signal only) of the torch path (complex64) and of the fused numba
kernel (float64), and the time of signal + T1/T2/B1 Jacobian of the numba kernel against torchsim's EPG-MRF
simulator (``pip install -e '.[bench]'``) and our torch path, on the same pattern, states and batch. Matching: voxels
per second against 10^4 atoms of rank 25 (noisy atoms with random complex M0), brute force and the clustered search,
with their rates of exact matches (matched atom = true atom). Ends with ``epg_fp_tr_per_s=<x>
epg_jacobian_ratio_vs_torchsim=<r> match_voxels_per_s=<y>`` (numba signal; torchsim's time over the numba kernel's
with derivatives; clustered search).
"""

from __future__ import annotations

import dataclasses
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from crbnet.basis import svd_basis
from crbnet.matching import Dictionary
from crbnet.signals.fisp import FISPSignalModel, epg_fisp
from crbnet.parameters import PARAMETERIZATIONS
from crbnet.runtime import cpu_description
from crbnet.sequences import FISPSequence, load_sequence

ROOT = Path(__file__).resolve().parents[1]
WRT = ("T1", "T2", "B1")


def seconds(run, repeats: int = 3) -> float:
    """Median wall time of ``run()`` after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        run()
        times.append(time.perf_counter() - tic)
    return float(np.median(times))


def jacobian_seconds(seq: FISPSequence, values: dict[str, np.ndarray]) -> dict[str, float]:
    """Seconds for signal + T1/T2/B1 Jacobian of a batch: numba kernel, our torch path and torchsim (if installed)."""
    out = {k: seconds(lambda k=k: FISPSignalModel(seq, PARAMETERIZATIONS["fisp"], kernel=k).simulate(values, WRT), 1)
           for k in ("numba", "torch")}
    try:
        from torchsim import mrf_sim
    except ImportError:
        print("torchsim is not installed (pip install -e '.[bench]'): no comparison")
        return out
    as_ms = {k: torch.as_tensor(values[k] * 1e3) for k in ("T1", "T2")}
    out["torchsim"] = seconds(lambda: mrf_sim(np.rad2deg(seq.flip_angle), seq.TR * 1e3, as_ms["T1"], as_ms["T2"],
                                              diff=WRT, B1=torch.as_tensor(values["B1"]), TI=seq.TI * 1e3,
                                              inv_efficiency=seq.inversion_efficiency, states=seq.epg_states), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096, help="fingerprints per EPG call")
    parser.add_argument("--atoms", type=int, default=10_000)
    parser.add_argument("--rank", type=int, default=25)
    parser.add_argument("--voxels", type=int, default=100_000)
    parser.add_argument("--jacobian-batch", type=int, default=256, help="fingerprints of the Jacobian comparison")
    args = parser.parse_args()
    seq = load_sequence(ROOT / "config" / "sequences" / "mrf_fisp_default.yaml")
    seq = dataclasses.replace(seq, epg_states=20)
    rng = np.random.default_rng(0)

    T1, T2 = (torch.as_tensor(rng.uniform(lo, hi, args.batch)) for lo, hi in ((0.3, 3.0), (0.02, 0.3)))
    B1 = torch.ones(args.batch)
    fp_tr = args.batch * seq.n_samples
    torch_rate = fp_tr / seconds(lambda: epg_fisp(T1, T2, B1, seq, 20, torch.complex64))
    numba = FISPSignalModel(seq, PARAMETERIZATIONS["fisp"], kernel="numba")
    epg_rate = fp_tr / seconds(lambda: numba.simulate({"T1": T1, "T2": T2, "B1": B1}))
    print(f"EPG signal, fingerprints x TRs per second: torch (complex64) {torch_rate:.3g}, numba {epg_rate:.3g}")
    n = args.jacobian_batch
    jac = jacobian_seconds(seq, {"T1": T1[:n].numpy(), "T2": T2[:n].numpy(),
                                 "B1": rng.uniform(0.8, 1.2, n)})
    print(f"EPG signal + T1/T2/B1 Jacobian of {n} fingerprints, seconds: "
          + ", ".join(f"{k} {v:.3g}" for k, v in jac.items()))
    ratio = jac.get("torchsim", float("nan")) / jac["numba"]

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
    print(f"cpu={cpu_description()}")
    print(f"epg_fp_tr_per_s={epg_rate:.3g} epg_jacobian_ratio_vs_torchsim={ratio:.3g} "
          f"match_voxels_per_s={rate['clustered']:.3g}")


if __name__ == "__main__":
    main()
