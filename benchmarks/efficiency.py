"""Scientific check: are the MSE and CRB networks efficient estimators at reduced scale?

Simulates (and caches) a signals-only basis set, builds the SVD basis, then simulates training, validation and test
sets of the default sequence under the Zhang 2022 prior with the CRBs of the coefficients the network sees, trains one MSE and one CRB-weighted network (the paper architecture and schedule, scaled to
fewer epochs), and runs a Monte-Carlo test at one SNR. Prints per network the final validation CRB-loss and MSE,
the bias and variance parts of the CRB-loss and the median std/sqrt(CRB) per parameter, and how far bf16
inference moves the estimates in units of sqrt(CRB).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml
from crbnet.basis import dataset_basis
from crbnet.datasets import load_examples
from crbnet.evaluation import monte_carlo
from crbnet.parameters import ParameterSpace
from crbnet.devices import bf16_native, pick_device
from crbnet.sequences import load_sequence
from crbnet.signals.qmt import QMTSignalModel
from crbnet.simulation import write_dataset
from crbnet.tables import summarize
from crbnet.training import TrainConfig, build_estimator, train

ROOT = Path(__file__).resolve().parents[1]
ESTIMATE = ["m0s", "T1", "T2f"]


def _fingerprint_crb(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        names = [str(n) for n in f["crb"].attrs["names"]]
        return f["crb"][()][:, [names.index(e) for e in ESTIMATE]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=3072)
    parser.add_argument("--n-val", type=int, default=512)
    parser.add_argument("--n-test", type=int, default=256)
    parser.add_argument("--rank", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=500, help="the lr halves every epochs/10 (paper: 400/40)")
    parser.add_argument("--snr", type=float, default=50.0, help="SNR |M0|/sigma of the Monte-Carlo test")
    parser.add_argument("--realizations", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=ROOT / "results" / "benchmarks" / "efficiency")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device, gpus=1)
    tic = time.perf_counter()

    experiment = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"]["default"]
    space = ParameterSpace.from_config(experiment["parameter_space"])
    signal_model = QMTSignalModel(load_sequence(ROOT / experiment["sequence"]), space.parameterization, device)
    prefix = args.workdir / signal_model.sequence.sha256[:12]
    basis_set = Path(f"{prefix}_basis_{args.n_train}.h5")
    if not basis_set.exists():  # the training draw without Jacobians: cheap, enough for the SVD
        write_dataset(basis_set, signal_model, space.sample(args.n_train, 1), progress=True, crb=False)
    basis = dataset_basis(basis_set, args.rank)
    paths = {}
    for split, n, seed in (("train", args.n_train, 1), ("val", args.n_val, 2), ("test", args.n_test, 3)):
        paths[split] = Path(f"{prefix}_{split}_{n}_seed{seed}_rank{args.rank}.h5")
        if not paths[split].exists():
            write_dataset(paths[split], signal_model, space.sample(n, seed), progress=True, store_signals=False, basis=basis)
    print(f"datasets ready after {time.perf_counter() - tic:.0f} s")
    sets = {k: load_examples(p, basis, ESTIMATE) for k, p in paths.items()}
    ratio = np.median(sets["test"].crb.numpy() / _fingerprint_crb(paths["test"]), axis=0)
    print(f"basis rank {basis.rank}: energy {basis.energy:.6f}; CRBs of the {sets['train'].crb_domain}; median "
          "CRB(coefficients)/CRB(fingerprint) " + " ".join(f"{n}={v:.2f}" for n, v in zip(ESTIMATE, ratio)))

    for loss in ("mse", "crb"):
        cfg = TrainConfig(loss=loss, estimate=tuple(ESTIMATE), epochs=args.epochs, lr_step=max(1, args.epochs // 10))
        est = build_estimator(sets["train"], basis, cfg)
        start = time.perf_counter()
        history = train(est, sets["train"], sets["val"], cfg, device)
        seconds = time.perf_counter() - start
        table = monte_carlo(est, sets["test"], args.snr, args.realizations, seed=4)
        summary = summarize(table).set_index("parameter")
        last = history.iloc[-1]
        print(f"\n[{loss}] {args.epochs} epochs in {seconds:.0f} s: val_crb_loss={last.val_crb:.3f} "
              f"val_mse={last.val_mse:.4f} (best val_crb_loss {history.val_crb.min():.3f})")
        print(summary[["bias_part", "variance_part", "crb_loss", "median_std_ratio", "median_bias_ratio"]]
              .to_string(float_format=lambda v: f"{v:.3f}"))
        c = sets["test"].coefficients.numpy()
        sqrt_crb = np.sqrt(sets["test"].crb.numpy()) / args.snr
        if not bf16_native(torch.device("cpu")):
            print("bf16 |shift|/sqrt(CRB): not measured (bf16 is emulated on this CPU; inference runs fp32 here)")
            continue
        shift = np.abs(est.predict(c, precision="bf16") - est.predict(c)) / sqrt_crb
        print("bf16 |shift|/sqrt(CRB): median " + " ".join(f"{n}={v:.4f}" for n, v in zip(ESTIMATE, np.median(shift, 0)))
              + "; max " + " ".join(f"{n}={v:.3f}" for n, v in zip(ESTIMATE, shift.max(0))))
    print(f"\ntotal {time.perf_counter() - tic:.0f} s on {device} ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
