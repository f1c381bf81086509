"""Training loop: Adam with step decay, a fresh M0 and noise every epoch, per-epoch history, resumable checkpoints.

Every random draw derives from ``TrainConfig.seed`` and the epoch (crbnet.datasets.generator), so an interrupted run
resumed from its checkpoint ends with the same weights as an uninterrupted one (bitwise on CPU).
"""

from __future__ import annotations

import logging
import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from crbnet import losses
from crbnet.basis import Basis, input_size, normalize
from crbnet.datasets import FingerprintSet, NoiseModel, generator, load_examples
from crbnet.estimator import NetworkEstimator
from crbnet.io.atomic import atomic_path, write_csv
from crbnet.nets import ZHANG_HIDDEN, ResidualMLP
from crbnet.runtime import progress as progress_bar
from crbnet.devices import resolve_precision

logger = logging.getLogger(__name__)

HISTORY_COLUMNS = ["epoch", "lr", "loss", "train_mse", "train_crb", "val_mse", "val_crb", "seconds"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters (defaults: Zhang 2022 except the number of epochs). ``noise`` is a NoiseModel config;
    ``realizations``, ``lam`` and ``delta`` only matter for the bias-reduced loss, where ``batch_size`` counts
    fingerprints (each with ``realizations`` noise draws). ``precision='bf16'`` runs the network's forward pass
    under bfloat16 autocast (mixed precision) where the hardware has bf16, fp32 with a warning elsewhere; ``auto``
    picks bf16 where native; losses, CRBs and the optimizer stay in float32/64 (devices.resolve_precision).
    ``train_fingerprints`` trains on the first N fingerprints of the training split (learning curves);
    ``balance='running_mean'`` divides each parameter's loss term by its running mean (losses.RunningBalance).
    ``mse_scale`` weighs the MSE loss's squared errors: ``std`` over each parameter's training-set std, ``si`` in the
    parameters' SI units as Zhang's code (T1 in s dominates m0s and T2f); the logged ``train_mse``/``val_mse`` are
    std-scaled either way."""

    loss: str = "crb"
    estimate: tuple[str, ...] = ("m0s", "T1", "T2f")
    normalization: str = "unit_norm"
    hidden: tuple[int, ...] = ZHANG_HIDDEN
    norm: str = "batch"
    skips: str | tuple = "auto"
    epochs: int = 400
    batch_size: int = 512
    lr: float = 0.01
    lr_step: int = 40
    lr_gamma: float = 0.5
    noise: Mapping = field(default_factory=lambda: {"M0_magnitude": [0.1, 1.0], "sigma": 0.01})
    realizations: int = 200
    lam: float = 1.0
    delta: float = 1.0
    seed: int = 0
    checkpoint_every: int = 10
    precision: str = "fp32"
    train_fingerprints: int | None = None
    balance: str = "none"
    mse_scale: str = "std"

    @classmethod
    def from_mapping(cls, cfg: Mapping) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
        tuples = {k: tuple(cfg[k]) for k in ("estimate", "hidden") if k in cfg}
        if isinstance(cfg.get("skips"), list):
            tuples["skips"] = tuple(tuple(s) for s in cfg["skips"])
        config = cls(**{**cfg, **tuples})
        if config.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be auto, fp32 or bf16, got '{config.precision}'")
        if config.balance not in ("none", "running_mean"):
            raise ValueError(f"balance must be none or running_mean, got '{config.balance}'")
        if config.mse_scale not in ("std", "si"):
            raise ValueError(f"mse_scale must be std or si, got '{config.mse_scale}'")
        if config.loss not in losses.LOSSES:
            raise ValueError(f"unknown loss '{config.loss}'; choose one of {', '.join(losses.LOSSES)}")
        NoiseModel.from_config(config.noise)
        return config

    def fingerprint(self) -> str:
        """Hash of everything that determines the trajectory (not the number of epochs, not checkpointing)."""
        relevant = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("epochs", "checkpoint_every")}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=list).encode()).hexdigest()


def build_estimator(train: FingerprintSet, basis: Basis, cfg: TrainConfig) -> NetworkEstimator:
    """A freshly initialized (seeded) network; parameters are scaled by the training set's mean and std."""
    torch.manual_seed(cfg.seed)
    architecture = {"n_in": input_size(basis.rank, cfg.normalization), "hidden": list(cfg.hidden),
                    "norm": cfg.norm, "skips": cfg.skips if cfg.skips == "auto" else [list(s) for s in cfg.skips]}
    p = train.parameters
    net = ResidualMLP(shift=p.mean(0), scale=p.std(0), **architecture)
    return NetworkEstimator(net, basis, cfg.normalization, train.names, train.units, architecture,
                     {"training": dataclasses.asdict(cfg), "crb_domain": train.crb_domain})


def warm_start(estimator: NetworkEstimator, path: str | Path) -> None:
    """Initialize from a trained model of the same architecture, basis and outputs (Mao: from the CRB net)."""
    source = NetworkEstimator.load(path)
    if (source.architecture, source.names, source.basis.sha256) != (estimator.architecture, estimator.names,
                                                                    estimator.basis.sha256):
        raise ValueError(f"cannot warm-start from {path}: architecture, outputs or basis differ")
    estimator.net.load_state_dict(source.net.state_dict())


def optimizer(net: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel: one update of every parameter per step instead of a dozen small ops per tensor
    (steps of the small networks about 15 % faster on a CPU)."""
    return torch.optim.Adam(net.parameters(), lr=lr, fused=True)


def _train_mode(net: ResidualMLP, cfg: TrainConfig) -> None:
    """Train mode. For the bias-reduced loss the BatchNorm statistics stay frozen: its batches hold Nr noise
    realizations of a few fingerprints, whose statistics do not represent the data (left free, they wreck a
    warm-started network within an epoch: validation CRB-loss 6.2 -> 20)."""
    net.train()
    if cfg.loss == "bias_reduced":
        for module in net.modules():
            if isinstance(module, nn.BatchNorm1d):
                module.eval()


def _inputs(y: torch.Tensor, normalization: str) -> torch.Tensor:
    return normalize(y, normalization).to(torch.float32)


def _validation_inputs(val: FingerprintSet, cfg: TrainConfig, noise: NoiseModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Network inputs and CRBs of the validation set with one fixed M0/noise draw, used every epoch."""
    gen = generator(cfg.seed, "validation")
    M0, sigma = noise.draw(len(val), gen)
    y, crb = val.noisy(M0, sigma, gen)
    return _inputs(y, cfg.normalization), crb


def _validation(net: ResidualMLP, x: torch.Tensor, truth: torch.Tensor, crb: torch.Tensor, cfg: TrainConfig,
                batch: int = 8192) -> tuple[float, float]:
    """Validation MSE (scaled) and CRB-loss."""
    net.eval()
    with torch.no_grad():
        est = torch.cat([net(x[i: i + batch]).double() for i in range(0, len(x), batch)])
    _train_mode(net, cfg)
    return (losses.mse(est, truth, net.scale.double()).item(), losses.crb_weighted(est, truth, crb).item())


def loss_terms(cfg: TrainConfig, estimate: torch.Tensor, truth: torch.Tensor, crb: torch.Tensor,
               scale: torch.Tensor) -> torch.Tensor:
    """Per-parameter terms (Pe,) of the MSE or CRB loss of a batch (B, Pe); ``scale`` the training set's std."""
    if cfg.loss == "crb":
        return losses.crb_weighted(estimate, truth, crb, terms=True)
    return losses.mse(estimate, truth, scale if cfg.mse_scale == "std" else torch.ones_like(scale), terms=True)


def _epoch(net: ResidualMLP, opt: torch.optim.Optimizer, train: FingerprintSet, cfg: TrainConfig, noise: NoiseModel,
           epoch: int, balance: losses.RunningBalance | None = None) -> dict[str, float]:
    """One pass over the training set with this epoch's M0, noise and shuffling; sample-weighted means. With
    ``balance`` the objective is the balanced mean of the per-parameter terms."""
    gen = generator(cfg.seed, "train", epoch)
    M0, sigma = noise.draw(len(train), gen)
    order = torch.randperm(len(train), generator=gen).to(train.parameters.device)
    scale = net.scale.double()
    sums = {k: torch.zeros((), dtype=torch.float64, device=train.parameters.device)
            for k in ("loss", "train_mse", "train_crb")}
    if cfg.loss != "bias_reduced":
        y, crb = train.noisy(M0, sigma, gen)
        x = _inputs(y, cfg.normalization)
    device = train.parameters.device
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=resolve_precision(cfg.precision, device) == "bf16")
    for start in range(0, len(train), cfg.batch_size):
        rows = order[start: start + cfg.batch_size]
        truth = train.parameters[rows]
        if cfg.loss == "bias_reduced":
            yb, crb_b = train.subset(rows).noisy(M0[rows.cpu()], sigma[rows.cpu()], gen, cfg.realizations)
            with autocast:
                out = net(_inputs(yb, cfg.normalization).flatten(0, 1))
            est = out.double().unflatten(0, yb.shape[:2])
            terms = losses.bias_reduced(est, truth, crb_b, cfg.lam, cfg.delta, terms=True)
        else:
            crb_b = crb[rows]
            with autocast:
                out = net(x[rows])
            est = out.double()
            terms = loss_terms(cfg, est, truth, crb_b, scale)
        objective = terms.mean() if balance is None else balance(terms)
        opt.zero_grad(set_to_none=True)
        objective.backward()
        opt.step()
        with torch.no_grad():  # accumulated on the device: one host sync per epoch
            weight = len(rows) / len(train)
            sums["loss"] += objective.detach() * weight
            sums["train_mse"] += losses.mse(est, truth, scale) * weight
            sums["train_crb"] += losses.crb_weighted(est, truth, crb_b) * weight
    return {k: float(v) for k, v in sums.items()}


def train(estimator: NetworkEstimator, train_set: FingerprintSet, val_set: FingerprintSet, cfg: TrainConfig,
          device: torch.device, history_path: str | Path | None = None, checkpoint_path: str | Path | None = None,
          progress: bool = True) -> pd.DataFrame:
    """Train ``estimator.net`` in place for ``cfg.epochs`` epochs and return the history (one row per epoch).

    With ``checkpoint_path``, state is saved every ``cfg.checkpoint_every`` epochs and at the end, and a
    checkpoint of the same configuration found there is resumed (a larger ``epochs`` continues training)."""
    for name, examples in (("training", train_set), ("validation", val_set)):
        bad = int((~torch.isfinite(examples.crb).all(dim=1)).sum())
        if bad:
            raise ValueError(f"{bad} of {len(examples)} {name} examples have infinite CRBs ({examples.crb_domain} "
                             f"domain): the parameters are not identifiable there; raise the basis rank")
    net = estimator.net.to(device)
    balance = losses.RunningBalance(len(cfg.estimate)).to(device) if cfg.balance == "running_mean" else None
    _train_mode(net, cfg)
    train_set, val_set = train_set.to(device), val_set.to(device)
    opt = optimizer(net, cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    noise = NoiseModel.from_config(cfg.noise)
    val_x, val_crb = _validation_inputs(val_set, cfg, noise)
    history: list[dict] = []
    start = _resume(checkpoint_path, cfg, net, opt, sched, history, balance)
    bar = progress_bar(range(start, cfg.epochs), initial=start, total=cfg.epochs, desc=f"train {cfg.loss}",
                       unit="epoch", disable=not progress)
    for epoch in bar:
        tic = time.perf_counter()
        lr = opt.param_groups[0]["lr"]
        row = {"epoch": epoch + 1, "lr": lr, **_epoch(net, opt, train_set, cfg, noise, epoch, balance)}
        sched.step()
        row["val_mse"], row["val_crb"] = _validation(net, val_x, val_set.parameters, val_crb, cfg)
        row["seconds"] = time.perf_counter() - tic
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.4g}", val_crb=f"{row['val_crb']:.4g}", lr=f"{lr:.2g}")
        done = epoch + 1 == cfg.epochs
        if checkpoint_path and ((epoch + 1) % cfg.checkpoint_every == 0 or done):
            _save_checkpoint(checkpoint_path, cfg, epoch + 1, net, opt, sched, history, balance)
        if history_path:
            write_csv(pd.DataFrame(history, columns=HISTORY_COLUMNS), history_path)
    net.eval().cpu()
    return pd.DataFrame(history, columns=HISTORY_COLUMNS)


def _save_checkpoint(path: str | Path, cfg: TrainConfig, epoch: int, net: ResidualMLP, opt: torch.optim.Optimizer,
                     sched: torch.optim.lr_scheduler.LRScheduler, history: list[dict],
                     balance: losses.RunningBalance | None = None) -> None:
    state = {"fingerprint": cfg.fingerprint(), "epoch": epoch, "net": net.state_dict(), "optimizer": opt.state_dict(),
             "scheduler": sched.state_dict(), "history": history,
             "balance": balance.state_dict() if balance is not None else {},
             "device": next(net.parameters()).device.type}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _resume(path: str | Path | None, cfg: TrainConfig, net: ResidualMLP, opt: torch.optim.Optimizer,
            sched: torch.optim.lr_scheduler.LRScheduler, history: list[dict],
            balance: losses.RunningBalance | None = None) -> int:
    """Load a matching checkpoint into the objects; returns the epoch to continue from (0 without one)."""
    if not path or not Path(path).exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != cfg.fingerprint() or state["epoch"] > cfg.epochs:
        logger.warning("ignoring checkpoint %s: another training configuration or more epochs", path)
        return 0
    here = next(net.parameters()).device.type
    if state.get("device", "cpu") != here:
        logger.warning("resuming a %s checkpoint on %s: training continues, but it will not end bitwise equal to an "
                       "uninterrupted run (that holds per device type)", state.get("device", "cpu"), here)
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    if balance is not None:
        balance.load_state_dict(state["balance"])
    history.extend(state["history"])
    logger.info("resuming from %s at epoch %d", path, state["epoch"])
    return state["epoch"]


def train_from_files(train_path: str | Path, val_path: str | Path, basis_path: str | Path, cfg: TrainConfig,
                     device: torch.device, history_path: str | Path, checkpoint_path: str | Path | None = None,
                     warm: str | Path | None = None, progress: bool = True) -> NetworkEstimator:
    """Train a network on simulated dataset files projected onto a saved basis (what the workflow runs)."""
    basis = Basis.load(basis_path)
    train_set, val_set = (load_examples(p, basis, cfg.estimate) for p in (train_path, val_path))
    if cfg.train_fingerprints is not None:
        if cfg.train_fingerprints > len(train_set):
            raise ValueError(f"train_fingerprints = {cfg.train_fingerprints} but {train_path} holds {len(train_set)}")
        train_set = train_set.subset(slice(0, cfg.train_fingerprints))
    estimator = build_estimator(train_set, basis, cfg)
    if warm:
        warm_start(estimator, warm)
    train(estimator, train_set, val_set, cfg, device, history_path, checkpoint_path, progress)
    return estimator
