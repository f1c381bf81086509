"""Parameter maps of a phantom or of a scan's coefficient image by any estimator (crbnet.estimator.Estimator), and
their sqrt(CRB) uncertainty maps. Files: crbnet.io.maps; per-tissue tables of the maps: crbnet.tables."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from crbnet.crb import scale_crb, unit_crb
from crbnet.estimator import Estimator
from crbnet.io.voxels import DataError, VoxelData, read_voxels
from crbnet.parameters import in_range, out_of_range_count
from crbnet.phantoms import load_phantom
from crbnet.simulation import chunks, distinct_rows
from crbnet.tables import eroded

logger = logging.getLogger(__name__)


def image_voxels(path: str | Path, mask_path: str | Path | None = None, phantom: bool = False
                 ) -> tuple[VoxelData, np.ndarray]:
    """The voxels of a phantom file (its coefficient image inside the object) or of a scan (coefficients
    (X, Y, Z, K) in NPY, HDF5 or NIfTI, inside the optional mask), and labels (X, Y, Z) to sample voxels from: the
    phantom's tissues; for a scan 1 inside its mask."""
    if phantom:
        truth, coefficients, attrs = load_phantom(path)
        return VoxelData(coefficients[truth.mask], truth.mask, attrs), truth.labels
    data = read_voxels(path, mask_path)
    if data.mask.ndim != 3:
        raise DataError(f"{path}: expected coefficients (X, Y, Z, K), got {data.mask.ndim} spatial axes")
    return data, data.mask.astype(np.int16)


def estimate_voxels(estimator: Estimator, data: VoxelData, **options: object) -> np.ndarray:
    """Estimates (n, Pe) float64 of voxel data in the estimator's basis (checked against the hashes the file
    carries); voxels whose values are not all finite are left NaN (and counted in the log) instead of being passed
    to the estimator; estimates NaN or outside their parameter's range are kept as returned and counted in the log
    (``crbnet.parameters.in_range``). ``options`` go to ``predict`` (batch, precision, device)."""
    estimator.basis.check(data.attrs.get("basis_sha256"), data.attrs.get("sequence_sha256"))
    finite = np.isfinite(data.values).all(axis=1)
    if not finite.all():
        logger.warning("%d of %d voxels with NaN or inf coefficients left out (NaN maps)", (~finite).sum(), len(finite))
    out = np.full((len(finite), len(estimator.names)), np.nan)
    if finite.any():
        out[finite] = estimator.predict(data.values[finite], **options)
    outside = out_of_range_count(out[finite], estimator.names)
    if outside:
        logger.warning("n_out_of_range=%d: %d of %d voxels with an estimate NaN or outside its parameter's range "
                       "(kept as returned)", outside, outside, finite.sum())
    return out


def crb_image(signal_model, basis, estimates: np.ndarray, names: tuple[str, ...], mask: np.ndarray,
              nuisance: Mapping[str, float], sigma: float, progress: bool = False) -> np.ndarray:
    """sqrt(CRB) (X, Y, Z, Pe) of the estimated parameters at the estimates (noise ``sigma`` per real channel,
    |M0| = 1, coefficient domain), NaN outside ``mask`` and where an estimate is NaN. Every parameter of the signal model
    enters the Fisher matrix; those not estimated are taken at ``nuisance`` (e.g. the prior means). A voxel whose
    estimate is NaN or outside its parameter's range (``crbnet.parameters.in_range``) has no bound: NaN, and counted
    in the log. Repeated estimate rows (dictionary matching) are computed once."""
    pz = signal_model.parameterization
    inside = estimates[mask]
    ok = in_range({k: inside[:, i] for i, k in enumerate(names)})
    if not ok.all():
        logger.warning("%d of %d voxels with an estimate outside its range or NaN: no sqrt(CRB) (NaN)", (~ok).sum(),
                       len(ok))
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
