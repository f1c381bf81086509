"""Parameter maps of a phantom (or of coefficient images) from any estimator, their sqrt(CRB) uncertainty maps, and
per-tissue tables of them, and their agreement with a reference estimator (files: crbnet.io.save_maps, read_maps,
write_nifti_map)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from crbnet.crb import scale_crb, unit_crb
from crbnet.io import read_maps
from crbnet.simulation import chunks, distinct_rows


def estimate_voxels(estimator, data: np.ndarray) -> np.ndarray:
    """Estimates (n, Pe) float64 of voxel data (n, K); voxels whose values are not all finite are left NaN (and
    counted in the log) instead of being passed to the estimator."""
    finite = np.isfinite(data).all(axis=1)
    if not finite.all():
        print(f"{int((~finite).sum())} of {len(data)} voxels with NaN or inf coefficients left out (NaN maps)")
    out = np.full((len(data), len(estimator.names)), np.nan)
    if finite.any():
        out[finite] = estimator.predict(data[finite])
    return out


def crb_image(signal_model, basis, estimates: np.ndarray, names: tuple[str, ...], mask: np.ndarray,
              nuisance: Mapping[str, float], sigma: float, progress: bool = False) -> np.ndarray:
    """sqrt(CRB) (X, Y, Z, Pe) of the estimated parameters at the estimates (noise ``sigma`` per real channel,
    |M0| = 1, coefficient domain), NaN outside ``mask`` and where an estimate is NaN. Every parameter of the signal model
    enters the Fisher matrix; those not estimated are taken at ``nuisance`` (e.g. the prior means). Repeated
    estimate rows (dictionary matching) are computed once."""
    pz = signal_model.parameterization
    inside = estimates[mask]
    ok = np.isfinite(inside).all(axis=1)
    values = {k: (inside[ok, names.index(k)] if k in names else np.full(int(ok.sum()), nuisance[k])) for k in pz.names}
    values, inverse = distinct_rows(values)  # dictionary estimates repeat a lot
    U = torch.as_tensor(basis.U, device=signal_model.device)
    columns = [pz.names.index(k) for k in names]
    crb = [scale_crb(unit_crb(s, j, U), 1.0, sigma)[:, columns].cpu().numpy()
           for _, s, j in chunks(signal_model, values, pz.names, progress=progress)]
    block = np.full(inside.shape, np.nan)
    if crb:
        block[ok] = np.sqrt(np.concatenate(crb))[inverse]
    out = np.full(estimates.shape, np.nan)
    out[mask] = block
    return out


def eroded(labels: np.ndarray) -> np.ndarray:
    """Labels with every voxel that has an in-plane neighbour of another label set to 0 (partial-volume edge)."""
    keep = labels.copy()
    for axis in (0, 1):
        for shift in (-1, 1):
            keep[np.roll(labels, shift, axis=axis) != labels] = 0
    return keep


def sample_voxels(labels: np.ndarray, per_label: int, seed: int) -> np.ndarray:
    """Mask of up to ``per_label`` voxels drawn (seeded) from the interior (``eroded``) of every label > 0, for
    estimators too slow for every voxel (NLLS)."""
    rng = np.random.default_rng(seed)
    interior = eroded(labels)
    mask = np.zeros(labels.shape, dtype=bool)
    for label in np.unique(interior[interior > 0]):
        where = np.flatnonzero(interior == label)
        mask.flat[rng.choice(where, size=min(per_label, len(where)), replace=False)] = True
    return mask


def phantom_maps(phantom, paths: Mapping[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """The true maps of a ``crbnet.phantoms.Phantom`` (source ``truth``) and every estimator's maps (files of
    crbnet.io.save_maps, keyed by estimator), each over the estimated parameters."""
    estimates = {name: read_maps(path)[0] for name, path in paths.items()}
    names = list(next(iter(estimates.values())))
    return {"truth": {k: phantom.maps[k] for k in names}} | estimates


def roi_table(labels: np.ndarray, tissues: Mapping[int, str], maps: Mapping[str, Mapping[str, np.ndarray]],
              erode: bool = False) -> pd.DataFrame:
    """Long table (estimator, tissue, parameter, value) of every voxel of every tissue; ``erode`` drops voxels with a
    neighbour of another label in the image plane (the CRB paper's tube analysis)."""
    keep = eroded(labels) if erode else labels
    frames = []
    for source, images in maps.items():
        for label, tissue in tissues.items():
            inside = keep == label
            for name, image in images.items():
                frames.append(pd.DataFrame({"estimator": source, "tissue": tissue, "parameter": name,
                                            "value": image[inside]}))
    return pd.concat(frames, ignore_index=True)


def paired_table(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Voxel pairs (estimator, tissue, parameter, reference, value) of a ``roi_table``: every other source's value
    next to the ``reference`` estimator's in the same voxel, wherever that is finite (NLLS maps a sample of voxels)."""
    keys = ["tissue", "parameter", "voxel"]
    table = table.assign(voxel=table.groupby(["estimator", "tissue", "parameter"], sort=False).cumcount())
    ref = table[table.estimator == reference].dropna(subset=["value"])[keys + ["value"]]
    pairs = table[table.estimator != reference].merge(ref.rename(columns={"value": "reference"}), on=keys)
    return pairs.drop(columns="voxel")


def agreement(pairs: pd.DataFrame, by: Sequence[str] = ("estimator", "parameter")) -> pd.DataFrame:
    """Median signed and absolute relative difference (%) from the reference, and the voxel count, per group of a
    ``paired_table``."""
    rel = 100 * (pairs.value - pairs.reference) / pairs.reference.abs()
    return (pairs.assign(rel=rel, abs_rel=rel.abs()).groupby(list(by), sort=False)
            .agg(median_rel_diff_pct=("rel", "median"), median_abs_rel_diff_pct=("abs_rel", "median"),
                 voxels=("rel", "count")).reset_index())
