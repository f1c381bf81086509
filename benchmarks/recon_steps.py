"""The default reconstruction's error over CG steps and against converged locally-low-rank ones (issue 28).

On a finished default run's brain slice (``results/default``: kspace/brain.h5, phantoms/brain.h5, basis.h5) with the
coil maps estimated as the workflow does: CG on the full k-space, on its noiseless part and on its noise alone
(crbnet.acquisition.acquisition_noise), recording at each of ``--steps`` the relative RMS error against the noiseless
projection (all coefficients and coefficient 1) and the noise-only RMS x SNR (the noise amplification factor); then
locally low rank at each of ``--lambdas`` with ``--admm`` ADMM steps of 5 CG steps (full k-space). Writes ``--out``
(CSV) and a PNG beside it, and prints the table with the CPU.

    python benchmarks/recon_steps.py [--results results/default] [--steps 10,20,50,100,200] [--admm 50]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import torch
import yaml
from crbnet.acquisition import acquisition_noise, estimate_coil_maps
from crbnet.basis import Basis
from crbnet.experiment import Plan
from crbnet.io.atomic import write_csv
from crbnet.io.kspace import load_kspace
from crbnet.parameters import ParameterSpace
from crbnet.phantoms import load_phantom, noiseless_coefficients
from crbnet.recon import SubspaceNormal, adjoint_coefficients, conjugate_gradient, object_phase, reconstruct
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
    reference = noiseless_coefficients(phantom, signal_model, basis, brain["seed"])[..., 0, :]  # (X, Y, r)
    inside = phantom.labels[..., 0] > 0
    snr = acquisition["snr"]
    print(f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads; SNR {snr}")

    shape = kspace.coil_maps.shape[1:]
    maps = estimate_coil_maps(kspace.data, kspace.trajectory, shape, acquisition["calibration_radius"])
    phase = np.exp(1j * object_phase(maps, kspace.coil_maps))[..., None]
    noise = acquisition_noise(kspace.data.shape, kspace.sigma, acquisition["seed"]).astype(np.complex64)
    parts = {"recon": kspace.data, "noiseless": kspace.data - noise, "noise_only": noise}
    tic = time.perf_counter()
    normal = SubspaceNormal.build(kspace.trajectory, basis.U, maps, torch.device("cpu"))
    print(f"Toeplitz kernels: {time.perf_counter() - tic:.0f} s")

    def row(method: str, steps: int, part: str, image: np.ndarray, seconds: float) -> dict:
        error = image * phase - (0 if part == "noise_only" else reference)
        err, ref = np.abs(error[inside]) ** 2, np.abs(reference[inside]) ** 2
        return {"method": method, "steps": steps, "part": part, "relative_error": np.sqrt(err.sum() / ref.sum()),
                "relative_error_1": np.sqrt(err[:, 0].sum() / ref[:, 0].sum()),
                "rms_times_snr": snr * np.sqrt(err.mean() / 2), "seconds": seconds}

    rows, checkpoints = [], [int(k) for k in args.steps.split(",")]
    for part, data in parts.items():
        b = torch.as_tensor(adjoint_coefficients(data, kspace.trajectory, basis.U, maps).astype(np.complex64)) / normal.scale
        tic = time.perf_counter()

        def record(k: int, x: torch.Tensor, part: str = part, tic: float = tic) -> None:
            if k in checkpoints:
                rows.append(row("cg", k, part, x.permute(1, 2, 0).numpy(), time.perf_counter() - tic))
                print(rows[-1], flush=True)

        conjugate_gradient(normal, b, torch.zeros_like(b), max(checkpoints), tol=0.0, callback=record)
    for lam in (float(v) for v in args.lambdas.split(",")):
        tic = time.perf_counter()
        c = reconstruct(kspace.data, kspace.trajectory, basis.U, maps, lam, args.admm, 5)
        rows.append(row(f"llr_{lam:g}", args.admm * 5, "recon", c, time.perf_counter() - tic))
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    write_csv(table, args.out)
    plot(table, Path(args.out).with_suffix(".png"))


def plot(table: pd.DataFrame, path: Path) -> None:
    """Relative error of the whole, the noiseless part and the noise alone over CG steps; LLR as points."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    cg = table[table.method == "cg"]
    for part, style in (("recon", "-o"), ("noiseless", "--s"), ("noise_only", ":^")):
        t = cg[cg.part == part]
        ax.plot(t.steps, t.relative_error, style, label=f"CG, {part}")
    for r in table[table.method != "cg"].itertuples():
        ax.plot(r.steps, r.relative_error, "*", ms=9, label=f"{r.method} ({r.steps // 5} ADMM x 5 CG)")
    ax.set(xscale="log", xlabel="CG steps", ylabel="relative RMS coefficient error")
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
