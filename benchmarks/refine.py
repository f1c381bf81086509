"""The refined estimator against the bound, on a finished run of the default qMT experiment (issue 29).

1. Is the CRB network's variance below the CRB its bias's doing? On ``--bound-fingerprints`` test fingerprints at
   SNR 50: its variance against the CRB and against the bound of a biased estimator, g F^-1 g^T (g the gradient of
   its mean estimate over all 7 parameters and M0; crbnet.evaluation.biased_bound).
2. Steps: the CRB network refined by K = 0, 1, 2, 3, 5 Gauss-Newton steps (omega0 from the best of 8 candidates,
   the other nuisance parameters from the prior means) and NLLS from the prior means (20 iterations), on the first
   ``--fingerprints`` of the T1 x T2f grid and of the test split, ``--realizations`` draws each at SNR 50:
   CRB-loss, bias part, variance part and median std/sqrt(CRB) per parameter (crbnet.tables.summarize).

Writes ``--out`` (CSV) and prints the table. Needs ``results/default`` of ``snakemake --cores all``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
import yaml
from crbnet.datasets import load_examples
from crbnet.estimator import load_estimator
from crbnet.evaluation import biased_bound, monte_carlo
from crbnet.fitting import NLLSEstimator, RefinedEstimator, spread_candidates
from crbnet.io.atomic import write_csv
from crbnet.parameters import ParameterSpace
from crbnet.runtime import cpu_description
from crbnet.sequences import load_sequence
from crbnet.signals import signal_model_for
from crbnet.tables import summarize

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

    rows = []
    candidates = spread_candidates(space, {"omega0": 8})
    estimators = {f"refined_{k}": RefinedEstimator(net, signal_model, space, int(k), candidates)
                  for k in args.steps.split(",")}
    estimators["nlls_prior_20"] = NLLSEstimator(signal_model, net.basis, space, net.names, iterations=20)
    for split in ("grid_T1_T2f", "test"):
        examples = load_examples(results / "data" / f"{split}.h5", net.basis, net.names)
        examples = examples.subset(slice(0, args.fingerprints))
        for name, estimator in estimators.items():
            tic = time.perf_counter()
            table = monte_carlo(estimator, examples, 50.0, args.realizations, seed=0)
            seconds = time.perf_counter() - tic
            s = summarize(table).assign(split=split, estimator=name,
                                        ms_per_voxel=1e3 * seconds / (len(examples) * args.realizations))
            rows.append(s)
            print(f"{split} {name} ({s.ms_per_voxel.iloc[0]:.1f} ms/voxel): " + "; ".join(
                f"{r.parameter} loss {r.crb_loss:.2f} bias {r.bias_part:.2f} var {r.variance_part:.2f} "
                f"std/sqrtCRB {r.median_std_ratio:.2f} out {r.n_out_of_range}" for r in s.itertuples()), flush=True)
    write_csv(pd.concat(rows, ignore_index=True), args.out)


if __name__ == "__main__":
    main()
