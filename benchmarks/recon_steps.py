"""The default reconstruction's error over CG steps and against converged locally-low-rank ones (issue 28).

On a finished default run's brain slice (``results/default``: kspace/brain.h5, phantoms/brain.h5, basis.h5),
crbnet.recon.error_budget as the workflow's reconstruct rule runs it, with more checkpoints and locally low rank
at each of ``--lambdas`` (``--admm`` ADMM steps of 5 CG steps). Writes ``--out`` (CSV) and the workflow's figure
beside it (crbnet.plotting.plot_recon_steps), and prints the whole mask's rows with the CPU.

    python benchmarks/recon_steps.py [--results results/default] [--steps 10,20,50,100,200] [--admm 50]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from crbnet.acquisition import acquisition_noise
from crbnet.basis import Basis
from crbnet.experiment import Plan
from crbnet.io.atomic import write_csv
from crbnet.io.kspace import load_kspace
from crbnet.parameters import ParameterSpace
from crbnet.phantoms import load_phantom, noiseless_coefficients
from crbnet.plotting import plot_recon_steps, save
from crbnet.recon import error_budget, recon_options
from crbnet.runtime import cpu_description
from crbnet.sequences import load_sequence
from crbnet.signals import signal_model_for

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "results" / "default"))
    parser.add_argument("--steps", default="10,20,50,100,200")
    parser.add_argument("--lambdas", default="0.003,0.01,0.03")
    parser.add_argument("--admm", type=int, default=50)
    parser.add_argument("--out", default="recon_steps.csv")
    args = parser.parse_args()
    results = Path(args.results)
    exp = Plan.from_config(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()), ["default"])["default"]
    cfg, brain, acquisition = exp.config, exp.phantoms["brain"], exp.acquisition("brain")
    kspace, basis = load_kspace(results / "kspace" / "brain.h5"), Basis.load(results / "basis.h5")
    phantom, _, _ = load_phantom(results / "phantoms" / "brain.h5")
    space = ParameterSpace.from_config(cfg["parameter_space"])
    signal_model = signal_model_for(load_sequence(ROOT / cfg["sequence"]), space.parameterization, "cpu")
    reference = noiseless_coefficients(phantom, signal_model, basis, brain["seed"])
    print(f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads; SNR {acquisition['snr']}")
    noise = acquisition_noise(kspace.data.shape, kspace.sigma, acquisition["seed"]).astype(np.complex64)
    options = {"calibration_radius": acquisition["calibration_radius"], **recon_options(acquisition["recon"])}
    curve = {"steps": [int(k) for k in args.steps.split(",")], "lambdas": [float(v) for v in args.lambdas.split(",")],
             "admm": args.admm}
    tic = time.perf_counter()
    _, _, table = error_budget(kspace, basis, noise, reference, phantom.labels, phantom.tissues, acquisition["snr"],
                               options, curve, acquisition["coil_maps"])
    print(f"error budget and curve in {time.perf_counter() - tic:.0f} s")
    print(table[table.coefficient.isin(["all", "1"])].to_string(index=False))
    write_csv(table, args.out)
    save(plot_recon_steps(table, acquisition["recon"]), [Path(args.out).with_suffix(".png")])


if __name__ == "__main__":
    main()
