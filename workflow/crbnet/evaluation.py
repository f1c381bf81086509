"""Monte-Carlo bias/variance evaluation of an estimator against the CRB (Zhang 2022 eqs. 2-5)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from crbnet.datasets import FingerprintSet, NoiseModel, generator, load_examples, read_parameters
from crbnet.estimator import Estimator
from crbnet.losses import bias_variance
from crbnet.parameters import in_range
from crbnet.runtime import progress as progress_bar


def noisy_estimates(estimator: Estimator, examples: FingerprintSet, snr: float, realizations: int, seed: int,
                    rows_per_batch: int = 262144, progress: bool = False
                    ) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
    """Yield (rows, estimates (R, b, Pe), CRBs (b, Pe)) over chunks of the examples at SNR = |M0| / sigma.

    Each fingerprint gets |M0| = 1 with a random phase and ``realizations`` noise draws, seeded by (seed, snr)."""
    if list(estimator.names) != list(examples.names):
        raise ValueError(f"estimator outputs {estimator.names} but the examples hold {examples.names}")
    gen = generator(seed, f"monte_carlo/{snr:g}")
    M0, sigma = NoiseModel(snr=(snr, snr)).draw(len(examples), gen)
    step = max(1, rows_per_batch // realizations)
    for start in progress_bar(range(0, len(examples), step), desc=f"monte carlo snr={snr:g}", disable=not progress):
        rows = slice(start, min(start + step, len(examples)))
        y, crb = examples.subset(rows).noisy(M0[rows], sigma[rows], gen, realizations)
        yield rows, torch.as_tensor(estimator.predict(y.flatten(0, 1).numpy())).unflatten(0, y.shape[:2]), crb


def monte_carlo(estimator: Estimator, examples: FingerprintSet, snr: float, realizations: int, seed: int,
                rows_per_batch: int = 262144, progress: bool = False) -> pd.DataFrame:
    """Bias, variance and CRB per fingerprint and estimated parameter at SNR = |M0| / sigma.

    Returns a long table (fingerprint, parameter, unit, snr, true, mean, bias, variance, crb, crb_domain,
    out_of_range) with variance over the realizations (1/R), so bias^2 + variance is the mean squared error.
    Estimates enter as returned; ``out_of_range`` counts the realizations whose estimate is NaN or outside the
    parameter's range (``crbnet.parameters.in_range``); a NaN estimate makes the fingerprint's mean NaN."""
    frames = []
    for rows, est, crb in noisy_estimates(estimator, examples, snr, realizations, seed, rows_per_batch, progress):
        truth = examples.parameters[rows]
        bv = bias_variance(est, truth)
        for k, name in enumerate(examples.names):
            outside = (~in_range({name: est[..., k].numpy()})).sum(axis=0)
            frames.append(pd.DataFrame({
                "fingerprint": np.arange(rows.start, rows.stop), "parameter": name, "unit": examples.units[k],
                "snr": snr, "true": truth[:, k].numpy(), "mean": bv.mean[:, k].numpy(), "bias": bv.bias[:, k].numpy(),
                "variance": bv.variance[:, k].numpy(), "crb": crb[:, k].numpy(), "crb_domain": examples.crb_domain,
                "out_of_range": outside,
            }))
    return pd.concat(frames, ignore_index=True)


def estimates_table(estimator: Estimator, examples: FingerprintSet, snr: float, realizations: int,
                    seed: int) -> pd.DataFrame:
    """Every estimate: a long table (fingerprint, realization, parameter, snr, true, estimate, crb) for box plots
    and tests on the raw distribution (Mao Fig. 1). Meant for small sets."""
    frames = []
    for rows, est, crb in noisy_estimates(estimator, examples, snr, realizations, seed):
        r, b, p = est.shape
        index = np.indices((r, b, p)).reshape(3, -1)
        frames.append(pd.DataFrame({
            "fingerprint": index[1] + rows.start, "realization": index[0],
            "parameter": np.asarray(examples.names)[index[2]], "snr": snr,
            "true": examples.parameters[rows].numpy()[index[1], index[2]], "estimate": est.numpy().ravel(),
            "crb": crb.numpy()[index[1], index[2]],
        }))
    return pd.concat(frames, ignore_index=True)


def evaluate_file(estimator: Estimator, path: str | Path, snrs: Sequence[float], realizations: int, seed: int,
                  fingerprints: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Monte-Carlo table of the first ``fingerprints`` (all by default) of a dataset file at each SNR, with every
    parameter value of the fingerprint as ``at_{name}`` columns (for grids and sweeps)."""
    examples = load_examples(path, estimator.basis, estimator.names)
    if fingerprints is not None:
        examples = examples.subset(slice(0, fingerprints))
    tables = [monte_carlo(estimator, examples, snr, realizations, seed, progress=progress) for snr in snrs]
    return _with_values(pd.concat(tables, ignore_index=True), path)


def _with_values(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Every parameter value of each row's fingerprint as ``at_{name}`` columns."""
    return table.join(read_parameters(path).add_prefix("at_"), on="fingerprint")


def estimates_file(estimator: Estimator, path: str | Path, snr: float, realizations: int, seed: int) -> pd.DataFrame:
    """``estimates_table`` of a dataset file with every parameter value as ``at_{name}`` columns."""
    examples = load_examples(path, estimator.basis, estimator.names)
    return _with_values(estimates_table(estimator, examples, snr, realizations, seed), path)
