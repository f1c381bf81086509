"""Paper-scale qMT data through the workflow's own code path: Zhang 2022's training, validation and test sets.

Reads ``config/zhang2022.yaml`` (published control, the paper's prior, 92,160 + 10,240 + 9,056 fingerprints) and runs
what its ``simulate_dataset`` and ``basis`` jobs run: the basis draw (signals only), the SVD basis, then the three
splits with their coefficients and the unit CRBs of fingerprint and coefficients (``crbnet.simulation.write_dataset``,
the signal model as the workflow builds it: numba on a CPU), into a temporary directory. ``--fraction`` scales every split
for a quicker run; the minutes are then extrapolated linearly in the number of fingerprints (said in the output;
slightly pessimistic, as the eigendecomposition of the SVD basis does not grow with them).
The last line reads ``paper_data_min=<m> peak_rss_gb=<g>``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
import yaml

from crbnet.basis import dataset_basis
from crbnet.signals import signal_model_for
from crbnet.parameters import ParameterSpace
from crbnet.runtime import cpu_description
from crbnet.sequences import load_sequence
from crbnet.simulation import dataset_values, write_dataset

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config" / "zhang2022.yaml")
    parser.add_argument("--experiment", default="zhang2022")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of every split simulated (0, 1]")
    args = parser.parse_args()
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must lie in (0, 1]")
    exp = yaml.safe_load(args.config.read_text())["experiments"][args.experiment]
    space = ParameterSpace.from_config(exp["parameter_space"])
    signal_model = signal_model_for(load_sequence(ROOT / exp["sequence"]), space.parameterization, "cpu")
    print(f"cpu={cpu_description()} threads={torch.get_num_threads()} fraction={args.fraction}", flush=True)
    simulated, svd, total = 0.0, 0.0, 0
    with tempfile.TemporaryDirectory() as tmp:
        splits = ("basis", "train", "val", "test")
        basis = None
        for name in splits:
            spec = dict(exp["datasets"][name])
            spec["n"] = max(1, round(spec["n"] * args.fraction))
            start = time.perf_counter()
            path = Path(tmp) / f"{name}.h5"
            write_dataset(path, signal_model, dataset_values(space, spec), store_signals=name == "basis",
                          crb=spec.get("crb", True), basis=basis)
            seconds = time.perf_counter() - start
            simulated += seconds
            print(f"{name}: {spec['n']} fingerprints in {seconds:.1f} s", flush=True)
            if name == "basis":
                start = time.perf_counter()
                basis = dataset_basis(path, exp["basis"]["rank"])
                svd = time.perf_counter() - start
                print(f"SVD basis in {svd:.1f} s", flush=True)
            else:
                total += spec["n"]
    minutes = (simulated + svd) / args.fraction / 60  # conservative: the Gram matrix grows with n, its eigh does not
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    label = "measured" if args.fraction == 1 else f"extrapolated from {args.fraction:g} of the fingerprints"
    print(f"{total} fingerprints with coefficient CRBs ({label}); peak RSS of this run")
    print(f"paper_data_min={minutes:.1f} peak_rss_gb={peak:.2f}")


if __name__ == "__main__":
    main()
