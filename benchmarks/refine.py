"""The refined estimator against the bound, on a finished run of the default qMT experiment (issue 29).

1. Is the CRB network's variance below the CRB its bias's doing? On ``--bound-fingerprints`` test fingerprints at
   SNR 50: its variance against the CRB and against the bound of a biased estimator, g F^-1 g^T (g the gradient of
   its mean estimate over all 7 parameters and M0; crbnet.evaluation.biased_bound).
2. Steps: the CRB network refined by K = 0, 1, 2, 3, 5 Gauss-Newton steps (omega0 from the best of 8 candidates,
   the other nuisance parameters from the prior means) and NLLS from the prior means (20 iterations), on the first
   ``--fingerprints`` of the T1 x T2f grid and of the test split, ``--realizations`` draws each at SNR 50
   (crbnet.evaluation.refinement_curve, the workflow's rule refine_steps at a larger sample).

Writes ``--out`` (CSV) and prints the table. Needs ``results/default`` of ``snakemake --cores all``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml
from crbnet.datasets import load_examples
from crbnet.estimator import load_estimator
from crbnet.evaluation import biased_bound, refinement_curve
from crbnet.fitting import spread_candidates
from crbnet.io.atomic import write_csv
from crbnet.parameters import ParameterSpace
from crbnet.runtime import cpu_description
from crbnet.sequences import load_sequence
from crbnet.signals import signal_model_for

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "results" / "default"))
    parser.add_argument("--fingerprints", type=int, default=144)
    parser.add_argument("--realizations", type=int, default=20)
    parser.add_argument("--steps", default="0,1,2,3,5")
    parser.add_argument("--bound-fingerprints", type=int, default=200)
    parser.add_argument("--out", default="refine.csv")
    args = parser.parse_args()
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"]["default"]
    space = ParameterSpace.from_config(cfg["parameter_space"])
    signal_model = signal_model_for(load_sequence(ROOT / cfg["sequence"]), space.parameterization, "cpu")
    results = Path(args.results)
    net = load_estimator(results / "models" / "crb.pt")
    print(f"cpu={cpu_description()} threads={torch.get_num_threads()}")

    with h5py.File(results / "data" / "test.h5") as f:
        names = list(f["parameters"].attrs["names"])
        values = {k: f["parameters"][: args.bound_fingerprints, i] for i, k in enumerate(names)}
    tic = time.perf_counter()
    bound = biased_bound(net, signal_model, values, 50.0, 200, seed=0)
    ok = np.isfinite(bound.biased_bound) & np.isfinite(bound.crb)
    print(f"biased bound of the CRB network ({ok.sum()} of {len(bound)} rows defined, {time.perf_counter() - tic:.0f} s):")
    for p, g in bound[ok].groupby("parameter", sort=False):
        print(f"  {p}: median variance/CRB {np.median(g.variance / g.crb):.2f}, median variance/biased bound "
              f"{np.median(g.variance / g.biased_bound):.2f}, median biased bound/CRB "
              f"{np.median(g.biased_bound / g.crb):.2f}, variance >= 0.8 biased bound in "
              f"{np.mean(g.variance >= 0.8 * g.biased_bound):.0%}")
    write_csv(bound, Path(args.out).with_suffix(".bound.csv"))

    examples = {split: load_examples(results / "data" / f"{split}.h5", net.basis, net.names).subset(
        slice(0, args.fingerprints)) for split in ("grid_T1_T2f", "test")}
    table = refinement_curve(net, signal_model, space, examples, [int(k) for k in args.steps.split(",")],
                             spread_candidates(space, {"omega0": 8}), 20, 50.0, args.realizations, 0)
    for r in table.itertuples():
        print(f"{r.split} {r.estimator} {r.steps} ({r.ms_per_voxel:.1f} ms/voxel) {r.parameter}: loss {r.crb_loss:.2f} "
              f"bias {r.bias_part:.2f} var {r.variance_part:.2f} std/sqrtCRB {r.median_std_ratio:.2f} "
              f"edge {r.at_prior_edge:.1%} out {r.n_out_of_range}")
    write_csv(table, args.out)

if __name__ == "__main__":
    main()
