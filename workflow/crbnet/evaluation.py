"""Monte-Carlo bias/variance evaluation of an estimator against the CRB (Zhang 2022 eqs. 2-5)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from crbnet.datasets import FingerprintSet, NoiseModel, complex_noise, generator, load_examples, read_parameters
from crbnet.estimator import Estimator
from crbnet.fitting import NLLSEstimator, RefinedEstimator
from crbnet.losses import bias_variance
from crbnet.parameters import ParameterSpace, in_range
from crbnet.runtime import progress as progress_bar
from crbnet.tables import summarize


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
                rows_per_batch: int = 262144, progress: bool = False,
                ranges: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """Bias, variance and CRB per fingerprint and estimated parameter at SNR = |M0| / sigma.

    Returns a long table (fingerprint, parameter, unit, snr, true, mean, bias, variance, crb, crb_domain,
    realizations, out_of_range, at_prior_edge) with variance over the realizations (1/R), so bias^2 + variance is
    the mean squared error. Estimates enter as returned; ``out_of_range`` counts the realizations whose estimate is NaN or outside the
    parameter's range (``crbnet.parameters.in_range``; a NaN estimate makes the fingerprint's mean NaN);
    ``at_prior_edge`` those whose finite estimate is on or beyond an edge of the prior's ``ranges`` (where NLLS and
    the refined estimator stop; 0 without ``ranges``)."""
    frames = []
    for rows, est, crb in noisy_estimates(estimator, examples, snr, realizations, seed, rows_per_batch, progress):
        truth = examples.parameters[rows]
        bv = bias_variance(est, truth)
        for k, name in enumerate(examples.names):
            values = est[..., k].numpy()
            outside = (~in_range({name: values})).sum(axis=0)
            lower, upper = (ranges or {}).get(name, (-np.inf, np.inf))
            edge = (np.isfinite(values) & ((values <= lower) | (values >= upper))).sum(axis=0)
            frames.append(pd.DataFrame({
                "fingerprint": np.arange(rows.start, rows.stop), "parameter": name, "unit": examples.units[k],
                "snr": snr, "true": truth[:, k].numpy(), "mean": bv.mean[:, k].numpy(), "bias": bv.bias[:, k].numpy(),
                "variance": bv.variance[:, k].numpy(), "crb": crb[:, k].numpy(), "crb_domain": examples.crb_domain,
                "realizations": realizations, "out_of_range": outside, "at_prior_edge": edge,
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
                  fingerprints: int | None = None, progress: bool = True,
                  ranges: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """Monte-Carlo table of the first ``fingerprints`` (all by default) of a dataset file at each SNR, with every
    parameter value of the fingerprint as ``at_{name}`` columns (for grids and sweeps)."""
    examples = load_examples(path, estimator.basis, estimator.names)
    if fingerprints is not None:
        examples = examples.subset(slice(0, fingerprints))
    tables = [monte_carlo(estimator, examples, snr, realizations, seed, progress=progress, ranges=ranges)
              for snr in snrs]
    return _with_values(pd.concat(tables, ignore_index=True), path)


def _with_values(table: pd.DataFrame, path: str | Path) -> pd.DataFrame:
    """Every parameter value of each row's fingerprint as ``at_{name}`` columns."""
    return table.join(read_parameters(path).add_prefix("at_"), on="fingerprint")


def estimates_file(estimator: Estimator, path: str | Path, snr: float, realizations: int, seed: int) -> pd.DataFrame:
    """``estimates_table`` of a dataset file with every parameter value as ``at_{name}`` columns."""
    examples = load_examples(path, estimator.basis, estimator.names)
    return _with_values(estimates_table(estimator, examples, snr, realizations, seed), path)


def biased_bound(estimator: Estimator, signal_model, values: dict[str, np.ndarray], snr: float, realizations: int,
                 seed: int, shift: float = 0.5) -> pd.DataFrame:
    """Variance against the bound of a *biased* estimator, ``g F^-1 g^T`` (g the gradient of its mean estimate
    over every unknown: Re M0, Im M0 and all parameters of the parameterization), at |M0| = 1 and SNR = 1/sigma.

    The gradient is a central difference of the mean over ``realizations`` common noise draws, in the data: along
    each column a_k of the coefficients' Jacobian the data move by +-h a_k with ``h ||a_k|| = shift * sigma``, which
    is the chain rule without re-simulating. The Fisher matrix is the coefficients' (the estimator's basis). A long
    table (fingerprint, parameter, true, bias, variance, crb, biased_bound); NaN where F is singular."""
    basis = estimator.basis
    names = signal_model.parameterization.names
    U = torch.as_tensor(basis.U, dtype=torch.complex128)
    signal, jac = signal_model.simulate(values, names)
    c = signal.to(torch.complex128) @ U.conj()
    columns = torch.cat([c[..., None], 1j * c[..., None], (jac.to(torch.complex128).mT @ U.conj()).mT], dim=-1)
    sigma = 1.0 / snr
    f = (columns.conj().mT @ columns).real / sigma**2  # (n, K, K)
    gen = generator(seed, f"biased_bound/{snr:g}")
    noise = complex_noise((realizations, *c.shape), torch.full((len(c),), sigma, dtype=torch.float64), gen)
    index = [names.index(k) for k in estimator.names]

    def mean_and_variance(y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        est = estimator.predict(y.flatten(0, 1).numpy()).reshape(realizations, len(c), -1)
        return est.mean(0), est.var(0)

    mean, variance = mean_and_variance(c[None] + noise)
    gradient = np.empty((len(c), len(estimator.names), columns.shape[-1]))
    for k in range(columns.shape[-1]):
        a = columns[..., k]
        h = shift * sigma / a.abs().pow(2).sum(-1).sqrt().clamp_min(1e-300)  # (n,)
        plus, _ = mean_and_variance(c[None] + h[None, :, None] * a[None] + noise)
        minus, _ = mean_and_variance(c[None] - h[None, :, None] * a[None] + noise)
        gradient[:, :, k] = (plus - minus) / (2 * h.numpy()[:, None])
    d = np.sqrt(np.diagonal(f.numpy(), axis1=1, axis2=2))
    scaled = f.numpy() / (d[:, :, None] * d[:, None, :])  # Jacobi scaling: SI columns span about 8 decades
    regular = np.isfinite(scaled).all(axis=(1, 2)) & (np.linalg.cond(scaled) < 1e12)
    inverse = np.full_like(scaled, np.nan)
    inverse[regular] = np.linalg.inv(scaled[regular]) / (d[regular, :, None] * d[regular, None, :])
    bound = np.einsum("npk,nkl,npl->np", gradient, inverse, gradient)
    crb = np.diagonal(inverse, axis1=1, axis2=2)[:, [2 + i for i in index]]
    truth = np.stack([np.asarray(values[k], dtype=np.float64) * np.ones(len(c)) for k in estimator.names], 1)
    frames = [pd.DataFrame({"fingerprint": np.arange(len(c)), "parameter": k, "true": truth[:, i],
                            "bias": mean[:, i] - truth[:, i], "variance": variance[:, i], "crb": crb[:, i],
                            "biased_bound": bound[:, i]}) for i, k in enumerate(estimator.names)]
    return pd.concat(frames, ignore_index=True)


def refinement_curve(start: Estimator, signal_model, space: ParameterSpace, examples: Mapping[str, FingerprintSet],
                     steps: Sequence[int], candidates: Mapping[str, Sequence[float]], nlls_iterations: int,
                     snr: float, realizations: int, seed: int) -> pd.DataFrame:
    """How many Gauss-Newton steps the refined estimator needs, and how it compares with full NLLS (issue 29): on the
    same noise draws of each set of ``examples`` ({split: examples}), the start refined by each number of ``steps``
    (0: the start alone, clipped into the prior's range) and NLLS from the prior means (``nlls_iterations``
    iterations, the same ``candidates`` for the parameters the start does not give). ``crbnet.tables.summarize`` per
    split and estimator, with columns split, estimator (``refined`` or ``nlls_prior``), steps (NLLS: its
    iterations), at_prior_edge (fraction of estimates on an edge of the prior's range) and ms_per_voxel (wall time
    per fit on this machine)."""
    estimators = [("refined", k, RefinedEstimator(start, signal_model, space, k, candidates)) for k in steps]
    estimators.append(("nlls_prior", nlls_iterations, NLLSEstimator(
        signal_model, start.basis, space, start.names, iterations=nlls_iterations, candidates=candidates)))
    rows = []
    for split, ex in examples.items():
        for name, k, estimator in estimators:
            tic = time.perf_counter()
            table = monte_carlo(estimator, ex, snr, realizations, seed, ranges=space.ranges)
            ms = 1e3 * (time.perf_counter() - tic) / (len(ex) * realizations)
            edge = table.groupby("parameter", sort=False).at_prior_edge.sum() / (len(ex) * realizations)
            summary = summarize(table).assign(split=split, estimator=name, steps=k, ms_per_voxel=ms)
            rows.append(summary.assign(at_prior_edge=summary.parameter.map(edge)))
            print(f"{split} {name} {k}: {ms:.1f} ms per fit", flush=True)
    return pd.concat(rows, ignore_index=True)
