"""Signal and Jacobian throughput of the qMT model on the default sequence.

Prints ``signal_ms_per_fp=<x> jacobian_ms_per_fp=<y>`` (per 1142-pulse fingerprint; Jacobian over the 8
canonical parameters) and the peak resident memory of simulating ``--n-memory`` fingerprints in chunks.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import torch

from crbnet.models.qmt import QMTModel
from crbnet.parameters import PARAMETERIZATIONS, ParameterSpace
from crbnet.runtime import pick_device
from crbnet.sequences import load_sequence
from crbnet.simulation import chunks

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "parameterization": "canonical",
    "parameters": {
        "m0s": {"dist": "uniform", "lower": 0.05, "upper": 0.3}, "R1f": {"dist": "uniform", "lower": 0.3, "upper": 1.0},
        "R2f": {"dist": "uniform", "lower": 8, "upper": 20}, "Rx": {"dist": "uniform", "lower": 5, "upper": 40},
        "R1s": {"dist": "uniform", "lower": 1, "upper": 5}, "T2s": {"dist": "uniform", "lower": 6e-6, "upper": 20e-6},
        "omega0": {"dist": "uniform", "lower": -900, "upper": 900}, "B1": {"dist": "uniform", "lower": 0.7, "upper": 1.2},
    },
}


def _time(fn, repeats: int = 2) -> float:
    fn()  # warm-up (torch.func tracing, table cache)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="fingerprints per timed signal batch")
    parser.add_argument("--jacobian-batch", type=int, default=32, help="fingerprints per timed Jacobian batch")
    parser.add_argument("--n-memory", type=int, default=0, help="also simulate this many fingerprints, chunked")
    args = parser.parse_args()
    device = pick_device("auto")
    pz = PARAMETERIZATIONS["canonical"]
    model = QMTModel(load_sequence(ROOT / "config/sequences/hybrid_state_default.yaml"), pz, device)
    space = ParameterSpace.from_config(SPACE)
    values = space.sample(args.batch, seed=0)
    small = {k: v[: args.jacobian_batch] for k, v in values.items()}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    signal_s = _time(lambda: (model.signal(values), sync()))
    jacobian_s = _time(lambda: (model.simulate(small, pz.names), sync()), repeats=1)
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch} jacobian_batch={args.jacobian_batch}")
    if args.n_memory:
        start = time.perf_counter()
        for _ in chunks(model, space.sample(args.n_memory, seed=1), ()):
            pass
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"simulated {args.n_memory} fingerprints in {time.perf_counter() - start:.1f} s, peak RSS {peak_mb:.0f} MB")
    print(f"signal_ms_per_fp={signal_s / args.batch * 1e3:.3f} jacobian_ms_per_fp={jacobian_s / args.jacobian_batch * 1e3:.3f}")


if __name__ == "__main__":
    main()
