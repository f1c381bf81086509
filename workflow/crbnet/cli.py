"""Command-line interface: ``crbnet simulate``, ``crbnet crb``, ``crbnet fit`` and ``crbnet design`` (a contract:
external checks call them so).

Errors in the input (unknown parameter names, bad values, broken sequences) exit with code 2 and one line
on stderr naming the problem; no output file is written then.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from crbnet.acquisition import AcquisitionError
from crbnet.basis import Basis, BasisError
from crbnet.crb import scale_crb, unit_crb
from crbnet.design import TISSUES, DesignError, DesignProblem, crb_table, optimize, write_design
from crbnet.estimator import ModelError, load_estimator
from crbnet.experiment import design_defaults
from crbnet.fitting import RefinedEstimator, spread_candidates
from crbnet.io.atomic import write_csv
from crbnet.io.kspace import load_kspace, save_kspace
from crbnet.io.mrd import import_mrd
from crbnet.io.voxels import DataError, read_voxels, write_coefficients, write_estimates
from crbnet.io import yamlfile
from crbnet.maps import estimate_voxels
from crbnet.recon import reconstruct_kspace
from crbnet.parameters import (ParameterError, Parameterization, ParameterSpace, get_parameterization,
                               infer_parameterization, parameter)
from crbnet.devices import DeviceError, pick_device
from crbnet.runtime import configure_logging
from crbnet.sequences import SequenceError, load_sequence
from crbnet.signals import default_parameterization, signal_model_for


class UsageError(Exception):
    """Bad command-line input; reported in one line with exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(message)


def _assignment(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise UsageError(f"--set expects NAME=VALUE, got '{text}'")
    parameter(name.strip())
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"bad value for {name}: '{value}' is not a number") from None
    if not math.isfinite(number):
        raise UsageError(f"bad value for {name}: {value} is not finite")
    return name.strip(), number


def _names(text: str | None) -> list[str]:
    names = [n.strip() for n in (text or "").split(",") if n.strip()]
    for n in names:
        parameter(n)
    if len(set(names)) != len(names):
        raise UsageError(f"a parameter is listed twice in '{text}'")
    return names


def _setup(args: argparse.Namespace, wrt: list[str]) -> tuple[object, Parameterization, dict[str, float]]:
    given = dict(_assignment(a) for a in args.set)
    sequence = load_sequence(args.sequence)
    if args.parameterization != "auto":
        pz = get_parameterization(args.parameterization)
    else:
        pz = default_parameterization(sequence) or infer_parameterization([*given, *wrt])
    for name in wrt:
        if name not in pz.names:
            raise ParameterError(f"parameter '{name}' is not part of the {pz.name} parameterization ({', '.join(pz.names)})")
    values = pz.complete(given)
    return signal_model_for(sequence, pz, pick_device(args.device, gpus=1)), pz, values


def _simulate(args: argparse.Namespace) -> None:
    wrt = _names(args.jacobian)
    signal_model, _, values = _setup(args, wrt)
    signal, jac = signal_model.simulate(values, wrt)
    signal, jac = signal.cpu(), jac.cpu()
    columns = {"re": signal[0].real, "im": signal[0].imag}
    for k, name in enumerate(wrt):
        columns[f"d_{name}_re"], columns[f"d_{name}_im"] = jac[0, :, k].real, jac[0, :, k].imag
    write_csv(pd.DataFrame({k: v.numpy() for k, v in columns.items()}), args.out)


def _crb(args: argparse.Namespace) -> None:
    wrt = _names(args.estimate)
    if not wrt:
        raise UsageError("--estimate needs at least one parameter name")
    if not (math.isfinite(args.sigma) and args.sigma > 0):
        raise UsageError(f"--sigma must be a positive number, got {args.sigma}")
    signal_model, _, values = _setup(args, wrt)
    signal, jac = signal_model.simulate(values, wrt)
    crb = scale_crb(unit_crb(signal, jac), 1.0, args.sigma)[0].cpu()
    frame = pd.DataFrame({
        "parameter": wrt,
        "unit": [parameter(n).unit for n in wrt],
        "value": [values[n] for n in wrt],
        "crb": crb.numpy(),
        "sqrt_crb": crb.sqrt().numpy(),
        "identifiable": crb.isfinite().numpy(),  # inf: no information (a zero or collinear Jacobian column)
    })
    write_csv(frame, args.out)


def _fit(args: argparse.Namespace) -> None:
    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch must be positive, got {args.batch}")
    estimator = load_estimator(args.model)
    data = read_voxels(args.data, args.mask)
    device = pick_device(args.device, gpus=1)
    if args.refine is not None:
        estimator = _refined(estimator, args, device)
    estimates = estimate_voxels(estimator, data, batch=args.batch, precision=args.precision, device=device)
    write_estimates(args.out, estimates, list(estimator.names), list(estimator.units), data,
                    {"model": str(args.model), "precision": args.precision}
                    | ({} if args.refine is None else {"refine_steps": args.refine}))


def _kspace_import(args: argparse.Namespace) -> None:
    sequence = load_sequence(args.sequence)
    kspace = import_mrd(args.raw, sequence.n_samples, sequence.sha256, args.virtual_coils, args.calibration_radius)
    save_kspace(args.out, kspace)
    coils, frames, spokes, readout = kspace.data.shape
    print(f"{args.out}: {coils} coils, {frames} frames x {spokes} spokes x {readout} samples, image "
          f"{kspace.coil_maps.shape[1]} x {kspace.coil_maps.shape[2]}, "
          + ("prewhitened" if np.isfinite(kspace.sigma) else "no noise scans: not prewhitened"))


def _kspace_reconstruct(args: argparse.Namespace) -> None:
    kspace, basis = load_kspace(args.kspace), Basis.load(args.basis)
    coefficients, _ = reconstruct_kspace(kspace, basis, "given", engine=args.engine, lam=args.lam,
                                         iterations=args.iterations, cg_iterations=args.cg_iterations,
                                         device=pick_device(args.device, gpus=1), show_progress=True)
    write_coefficients(args.out, coefficients, {"kspace": str(args.kspace), "basis": str(args.basis)})


def _refined(start, args: argparse.Namespace, device) -> RefinedEstimator:
    """``crbnet fit --refine K``: the model's estimates refined by K Gauss-Newton steps of the full model."""
    if args.refine < 0:
        raise UsageError(f"--refine must be >= 0 steps, got {args.refine}")
    if not (args.sequence and args.prior):
        raise UsageError("--refine needs --sequence (the model's sequence) and --prior (its parameter ranges)")
    sequence = load_sequence(args.sequence)
    if sequence.sha256 != start.basis.sequence_sha256:
        raise UsageError(f"--sequence {args.sequence} is not the sequence the model {args.model} was trained on")
    space = _prior_space(args.prior)
    counts = dict(_count(c) for c in args.candidates)
    try:
        candidates = spread_candidates(space, counts)
    except ValueError as err:
        raise UsageError(f"--candidates: {err}") from None
    return RefinedEstimator(start, signal_model_for(sequence, space.parameterization, device), space, args.refine,
                            candidates)


def _count(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not value.isdigit():
        raise UsageError(f"--candidates expects NAME=COUNT, got '{text}'")
    return name, int(value)


def _tissue(text: str, number: int) -> tuple[str, dict[str, float]]:
    """A --tissue argument: a built-in name (crbnet.design.TISSUES) or [LABEL:]NAME=VALUE,... in SI units."""
    if text in TISSUES:
        return text, dict(TISSUES[text])
    label, sep, assignments = text.rpartition(":")
    if "=" not in assignments:
        raise UsageError(f"--tissue expects {' or '.join(TISSUES)} or [LABEL:]NAME=VALUE[,NAME=VALUE...], got '{text}'")
    return label or f"tissue{number}", dict(_assignment(a) for a in assignments.split(","))


def _prior_space(text: str) -> ParameterSpace:
    """A --prior argument: a YAML file holding a parameter_space mapping, or WORKFLOW_CONFIG.yaml:EXPERIMENT."""
    path, sep, name = text.rpartition(":")
    if not sep or not Path(path).is_file():  # no experiment named (a path may hold ':')
        path, name = text, ""
    try:
        cfg = yamlfile.load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise UsageError(f"--prior {path}: {err}") from None
    if name:
        experiments = (cfg or {}).get("experiments", {}) if isinstance(cfg, dict) else {}
        if name not in experiments or "parameter_space" not in experiments[name]:
            raise UsageError(f"--prior {path}: no experiment '{name}' with a parameter_space "
                             f"(it has {', '.join(experiments) or 'none'})")
        cfg = experiments[name]["parameter_space"]
    if not isinstance(cfg, dict) or "parameters" not in cfg:
        raise UsageError(f"--prior {text}: expected a parameter_space mapping (parameterization, parameters, "
                         f"constraints) or CONFIG.yaml:EXPERIMENT")
    return ParameterSpace.from_config(cfg)


def _prior_scales(space: ParameterSpace, estimate: list[str]) -> dict[str, float]:
    """Each estimated parameter's prior scale (``Prior.scale``); a parameter the prior fixes has none."""
    unknown = [k for k in estimate if k not in space.parameterization.names]
    if unknown:
        raise UsageError(f"--estimate {', '.join(unknown)}: not in the prior's {space.parameterization.name} "
                         f"parameterization ({', '.join(space.parameterization.names)})")
    fixed = [k for k in estimate if k not in space.priors]
    if fixed:
        raise UsageError(f"--estimate {', '.join(fixed)}: fixed in the prior, so there is nothing to design for")
    return {k: space.priors[k].scale for k in estimate}


def _prior_design(args: argparse.Namespace, estimate: list[str]) -> tuple[Parameterization, dict, dict, dict | None]:
    """The parameterization, the draws (as tissues draw1..drawN), the scales and, with --rank, the basis draws of
    a design over --prior."""
    if args.draws < 1:
        raise UsageError(f"--draws must be >= 1, got {args.draws}")
    if args.tissue:
        raise UsageError("--prior and --tissue exclude each other: design over prior draws or over tissues")
    space = _prior_space(args.prior)
    if args.parameterization not in ("auto", space.parameterization.name):
        raise UsageError(f"--parameterization {args.parameterization} differs from the prior's "
                         f"({space.parameterization.name})")
    draws = space.sample(args.draws, args.draw_seed)
    tissues = {f"draw{i + 1}": {k: float(v[i]) for k, v in draws.items()} for i in range(args.draws)}
    basis_values = space.sample(args.basis_draws, args.draw_seed + 1) if args.rank is not None else None
    return space.parameterization, tissues, _prior_scales(space, estimate), basis_values


def _design_cost(estimate: list[str], tissues: dict, scales: dict[str, float] | None, rank: int | None) -> str:
    """The cost in words, for the designed YAML's header."""
    if scales is None:
        return f"summed CRB / value^2 of {', '.join(estimate)} over {', '.join(tissues)}"
    return (f"mean over {len(tissues)} prior draws of the summed log(CRB / prior scale^2)"
            + (f" of the rank-{rank} SVD coefficients" if rank else "") + " of "
            + ", ".join(f"{k} (scale {v:.4g})" for k, v in scales.items()))


def _design(args: argparse.Namespace) -> None:
    wrt = _names(args.estimate)
    if args.iterations < 0:
        raise UsageError(f"--iterations must be >= 0, got {args.iterations}")
    if not str(args.out).endswith((".yaml", ".yml")):
        raise UsageError(f"--out must be a sequence YAML (.yaml), got '{args.out}'")
    sequence = load_sequence(args.sequence)
    scales = basis_values = None
    if args.rank is not None and not args.prior:
        raise UsageError("--rank needs --prior: the basis comes from prior draws")
    if args.prior:
        pz, tissues, scales, basis_values = _prior_design(args, wrt)
    else:
        given = dict(_tissue(t, i + 1) for i, t in enumerate(args.tissue)) or {k: dict(v) for k, v in TISSUES.items()}
        if len(given) != len(args.tissue or TISSUES):
            raise UsageError("two --tissue arguments have the same label")
        pz = (get_parameterization(args.parameterization) if args.parameterization != "auto"
              else infer_parameterization([*wrt, *(k for t in given.values() for k in t)]))
        tissues = {label: pz.complete(values) for label, values in given.items()}
    lo, hi = (float(x) * 1e-6 for x in args.trf_window_us.split(","))
    problem = DesignProblem(sequence, pz, tissues, tuple(wrt), args.knot_spacing, (lo, hi), args.energy_limit,
                            pick_device(args.device, gpus=1), scales, args.rank, basis_values)
    out = Path(args.out)
    theta, history = optimize(problem, args.iterations, args.lr, out.with_suffix(".ckpt"))
    designed = problem.sequence(theta)
    command = "crbnet " + " ".join(args.argv)
    write_design(out, designed, f"CRB-designed hybrid-state pattern from {Path(args.sequence).name}",
                 f"Made by: {command}\n(crbnet.design: {_design_cost(wrt, tissues, scales, args.rank)}; RF energy <= "
                 f"{problem.energy_limit:.6g} rad^2/s)")
    write_csv(history, out.with_name(out.stem + "_history.csv"))
    compare = {"start": sequence, "designed": designed} | {Path(c).stem: load_sequence(c) for c in args.compare}
    write_csv(crb_table(problem, compare), out.with_name(out.stem + "_crb.csv"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="crbnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _Parser(add_help=False)
    common.add_argument("--sequence", required=True, help="sequence YAML (config/sequences/*.yaml)")
    common.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="parameter value in SI units (s, 1/s, rad/s); unset parameters take the defaults")
    common.add_argument("--parameterization", default="auto", choices=["auto", "canonical", "apparent_t1", "fisp"],
                        help="auto: fisp for MRF-FISP sequences; for qMT apparent_t1 when T1 or T2f is named, "
                             "else canonical")
    common.add_argument("--out", required=True, help="output CSV")
    common.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where the physics runs (auto: the GPU when usable; cuda without one: exit 2)")
    sim = sub.add_parser("simulate", parents=[common], help="fingerprint (M0 = 1) and derivatives as CSV")
    sim.add_argument("--jacobian", metavar="NAME[,NAME...]", help="parameters to differentiate by")
    sim.set_defaults(run=_simulate)
    crb = sub.add_parser("crb", parents=[common], help="Cramer-Rao bounds of the estimated parameters as CSV")
    crb.add_argument("--estimate", required=True, metavar="NAME[,NAME...]",
                     help="parameters estimated jointly with the complex M0 (all enter the Fisher matrix)")
    crb.add_argument("--sigma", type=float, default=1.0, help="noise std per real channel, relative to |M0| = 1")
    crb.set_defaults(run=_crb)
    fit = sub.add_parser("fit", help="apply a trained model to coefficient or fingerprint arrays")
    fit.add_argument("--model", required=True, help="trained network (.pt) or dictionary-matching estimator (.h5)")
    fit.add_argument("--data", required=True,
                     help="complex coefficients or fingerprints (..., K): .npy, .h5 (dataset 'coefficients' or "
                          "'signals'), .nii/.nii.gz")
    fit.add_argument("--mask", help="voxel mask over the data's leading axes (.npy or NIfTI); nonzero = fit")
    fit.add_argument("--out", required=True, help="estimates (..., P): .npy, .h5 or .nii/.nii.gz (+ .json sidecar)")
    fit.add_argument("--batch", type=int, help="voxels per network batch (default: 4096 on a CPU, from free memory "
                                                 "on a GPU)")
    fit.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="fp32",
                     help="network arithmetic; bf16 only where the hardware has it (auto: bf16 there, else fp32)")
    fit.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                     help="where the network runs (auto: the GPU when usable; cuda without one: exit 2)")
    fit.add_argument("--refine", type=int, metavar="K",
                     help="refine the estimates by at most K damped Gauss-Newton steps of the full model (every "
                          "parameter free within the prior's range; needs --sequence and --prior)")
    fit.add_argument("--sequence", help="with --refine: the sequence YAML the model was trained on")
    fit.add_argument("--prior", metavar="SPACE.yaml|CONFIG.yaml:EXPERIMENT",
                     help="with --refine: the parameter space (ranges and the means that start what the model "
                          "does not estimate)")
    fit.add_argument("--candidates", action="append", default=[], metavar="NAME=COUNT",
                     help="with --refine: start NAME, which the model does not estimate, from the best of COUNT "
                          "values spread over its range (e.g. omega0=8)")
    fit.set_defaults(run=_fit)
    kspace = sub.add_parser("kspace", help="scanner raw data: import ISMRMRD k-space, reconstruct it in the subspace")
    steps = kspace.add_subparsers(dest="step", required=True, parser_class=_Parser)
    raw = steps.add_parser("import", help="ISMRMRD raw data -> crbnet k-space HDF5 (prewhitened, coil-compressed, "
                                          "binned into the sequence's frames, coil maps estimated)")
    raw.add_argument("raw", help="ISMRMRD HDF5 file: radial readouts in TR order with their trajectories, noise scans")
    raw.add_argument("--sequence", required=True, help="the sequence YAML the scan played (its frames bin the readouts)")
    raw.add_argument("--virtual-coils", type=int, help="compress to this many virtual coils (default: keep all)")
    raw.add_argument("--calibration-radius", type=float, default=0.4,
                     help="k-space radius (rad per voxel) of the coil maps' calibration data")
    raw.add_argument("--out", required=True, help="k-space HDF5 (crbnet.io.kspace)")
    raw.set_defaults(run=_kspace_import)
    recon = steps.add_parser("reconstruct", help="k-space HDF5 -> coefficient images (HDF5 'coefficients', for fit)")
    recon.add_argument("kspace", help="k-space HDF5 (from kspace import, or the workflow's kspace/)")
    recon.add_argument("--basis", required=True, help="the basis (basis.h5) of the network or dictionary to fit with")
    recon.add_argument("--engine", choices=["torch", "bart"], default="torch")
    recon.add_argument("--lambda", dest="lam", type=float, default=0.0, help="locally-low-rank weight (0: CG)")
    recon.add_argument("--iterations", type=int, default=10, help="CG rounds (or ADMM steps with --lambda)")
    recon.add_argument("--cg-iterations", type=int, default=5, help="CG steps per round")
    recon.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    recon.add_argument("--out", required=True, help="coefficient images (X, Y, 1, r): .h5")
    recon.set_defaults(run=_kspace_reconstruct)
    design = sub.add_parser("design", help="CRB-optimal hybrid-state pattern (flip angles and pulse durations)")
    defaults = design_defaults()  # the workflow's designs: defaults, one source for both
    prior = defaults["prior"]
    design.add_argument("--sequence", required=True, help="start sequence YAML (hybrid_state_qmt)")
    design.add_argument("--estimate", required=True, metavar="NAME[,NAME...]",
                        help="parameters whose CRBs relative to their values squared are summed and minimized")
    design.add_argument("--tissue", action="append", default=[], metavar="[LABEL:]NAME=VALUE[,...]",
                        help=f"a tissue (SI units; unset parameters take the defaults) or one of {', '.join(TISSUES)}; "
                             "repeat for several (default: white and grey matter)")
    design.add_argument("--prior", metavar="SPACE.yaml|CONFIG.yaml:EXPERIMENT",
                        help="design over draws of this training prior (mean over the draws of the summed log CRB, "
                             "finite where a value is near 0; reported relative to the prior's scale squared) "
                             "instead of over tissues")
    design.add_argument("--draws", type=int, default=prior["draws"], help="prior draws (with --prior)")
    design.add_argument("--draw-seed", type=int, default=prior["seed"], help="seed of the prior draws (with --prior)")
    design.add_argument("--rank", type=int, help="with --prior: the CRBs of the rank-R SVD coefficients (the basis of "
                                                 "--basis-draws prior draws under the current pattern)")
    design.add_argument("--basis-draws", type=int, default=prior["basis_draws"],
                        help="prior draws whose signals give the basis")
    design.add_argument("--parameterization", default="auto", choices=["auto", "canonical", "apparent_t1"],
                        help="auto: apparent_t1 when T1 or T2f is named, else canonical; all its parameters and "
                             "the complex M0 are unknown")
    design.add_argument("--iterations", type=int, default=defaults["iterations"],
                        help="Adam steps (a rerun resumes from <out>.ckpt)")
    design.add_argument("--lr", type=float, default=defaults["lr"],
                        help="Adam step size on the knot values (logit domain)")
    design.add_argument("--knot-spacing", type=int, default=defaults["knot_spacing"],
                        help="pulses between the knots of alpha and TRF")
    design.add_argument("--trf-window-us", default=",".join(map(str, defaults["trf_window_us"])), metavar="LO,HI",
                        help="pulse duration window in us (default: the published control's)")
    design.add_argument("--energy-limit", type=float, help="RF energy sum(alpha^2/TRF) limit in rad^2/s "
                                                             "(default: the start's)")
    design.add_argument("--compare", action="append", default=[], metavar="SEQUENCE.yaml",
                        help="other sequences to tabulate next to the start and the design")
    design.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where the physics runs (auto: the GPU when usable; cuda without one: exit 2)")
    design.add_argument("--out", required=True, help="designed sequence YAML; its pattern file <stem>.h5, "
                                                     "<stem>_history.csv and <stem>_crb.csv are written beside it")
    design.set_defaults(run=_design)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = build_parser().parse_args(argv)
        args.argv = argv  # the command as given, for files that record how they were made
        configure_logging()
        args.run(args)
    except (UsageError, ParameterError, SequenceError, ModelError, DataError, BasisError, DeviceError,
            DesignError, AcquisitionError) as err:
        print(f"crbnet: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
