"""Simulated 2-D acquisition: golden-angle radial k-space of a time series, several coils, complex Gaussian noise.

The non-uniform FFTs are FINUFFT's (``finufft``, CPU, tolerance ``EPS``), normalized by 1/sqrt(number of grid voxels)
so that a fully sampled Cartesian frame would be unitary. k-space positions are in radians per voxel, in
[-pi, pi) along each image axis; array index i of an image axis of length N is the position i - N // 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import finufft
import numpy as np

EPS = 1e-7  # FINUFFT's relative tolerance
GOLDEN_ANGLE = np.pi / ((1 + np.sqrt(5)) / 2)  # rad, about 111.25 degrees


class AcquisitionError(ValueError):
    """An acquisition that does not fit the image, or k-space data that cannot be used."""


def radial_trajectory(frames: int, spokes: int, readout: int) -> np.ndarray:
    """Golden-angle radial positions (frames, spokes, readout, 2) in rad per voxel: spoke j of frame t at angle
    (t * spokes + j) * GOLDEN_ANGLE, ``readout`` samples evenly over [-pi, pi)."""
    if min(frames, spokes) < 1 or readout < 2:
        raise AcquisitionError(f"a radial trajectory needs frames, spokes >= 1 and readout >= 2 samples; got "
                               f"{frames}, {spokes}, {readout}")
    angles = (np.arange(frames * spokes) * GOLDEN_ANGLE).reshape(frames, spokes)
    radius = np.linspace(-np.pi, np.pi, readout, endpoint=False)
    return np.stack([np.cos(angles)[..., None] * radius, np.sin(angles)[..., None] * radius], axis=-1)


def nyquist_spokes(shape: Sequence[int]) -> int:
    """Spokes that sample a frame of this image shape at the Nyquist rate at the edge of k-space: pi/2 * max(N)."""
    return int(np.ceil(np.pi / 2 * max(shape)))


def coil_sensitivities(shape: Sequence[int], coils: int) -> np.ndarray:
    """Smooth complex sensitivities (coils, X, Y) of coils evenly spaced on a circle around the image, each with its
    own constant and linear phase, normalized so that the sum over coils of |S|^2 is 1 in every voxel."""
    if coils < 1:
        raise AcquisitionError(f"at least one coil is needed, got {coils}")
    x, y = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    angle = 2 * np.pi * np.arange(coils) / coils
    cx, cy = 1.5 * np.cos(angle)[:, None, None], 1.5 * np.sin(angle)[:, None, None]
    magnitude = 1.0 / (1.0 + ((x - cx) ** 2 + (y - cy) ** 2) / 1.5)
    phase = angle[:, None, None] + 0.5 * (np.cos(angle)[:, None, None] * y - np.sin(angle)[:, None, None] * x)
    maps = magnitude * np.exp(1j * phase)
    return maps / np.sqrt((np.abs(maps) ** 2).sum(axis=0))


def nufft_forward(images: np.ndarray, points: np.ndarray) -> np.ndarray:
    """k-space (..., M) of images (..., X, Y) at positions (M, 2): sum_n image[n] exp(-i k . n) / sqrt(X Y)."""
    shape = images.shape[-2:]
    flat = np.ascontiguousarray(images.reshape(-1, *shape), dtype=np.complex128)
    x, y = (np.ascontiguousarray(points[:, i], dtype=np.float64) for i in (0, 1))
    out = finufft.nufft2d2(x, y, flat, eps=EPS, isign=-1)
    return out.reshape(*images.shape[:-2], len(points)) / np.sqrt(np.prod(shape))


def nufft_adjoint(data: np.ndarray, points: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The adjoint of ``nufft_forward``: images (..., X, Y) of k-space (..., M) at positions (M, 2)."""
    flat = np.ascontiguousarray(data.reshape(-1, data.shape[-1]), dtype=np.complex128)
    x, y = (np.ascontiguousarray(points[:, i], dtype=np.float64) for i in (0, 1))
    out = finufft.nufft2d1(x, y, flat, tuple(shape), eps=EPS, isign=1)
    return out.reshape(*data.shape[:-1], *shape) / np.sqrt(np.prod(shape))


def noise_sigma(snr: float, samples_per_frame: int, shape: Sequence[int]) -> float:
    """k-space noise std per real channel that gives a least-squares coefficient image about the noise of
    ``crbnet.phantoms.coefficient_image`` at ``snr`` (1/snr) had the frame's samples been spread evenly:
    sqrt(samples per frame / voxels) / snr."""
    if not snr > 0:
        raise AcquisitionError(f"snr must be positive, got {snr}")
    return float(np.sqrt(samples_per_frame / np.prod(shape)) / snr)


def per_sample(temporal: np.ndarray, trajectory: np.ndarray) -> np.ndarray:
    """Per-frame values (Q, frames) repeated for every k-space sample of the frame: (Q, frames * spokes * readout),
    in the order of ``trajectory.reshape(-1, 2)``."""
    return np.repeat(temporal, trajectory.shape[1] * trajectory.shape[2], axis=1)


def finer_grid_nufft(images: np.ndarray, points: np.ndarray, factor: int) -> np.ndarray:
    """k-space (..., M) of images (..., X, Y) at positions (M, 2) (rad per voxel) simulated on a grid ``factor``
    times finer: each voxel split into factor x factor equal sub-voxels at their own positions, so that the data
    carry the sub-voxel structure that ``nufft_forward`` (one point per voxel, the reconstruction's model) does not:
    for factor 2 the data are nufft_forward's times cos(kx / 4) cos(ky / 4). Scaled to agree at k = 0."""
    if factor == 1:
        return nufft_forward(images, points)
    shape = np.array(images.shape[-2:])
    fine = np.repeat(np.repeat(images, factor, axis=-2), factor, axis=-1)
    # sub-voxel a of voxel n sits at factor * (n - N // 2) + a - (factor - 1) / 2 fine voxels; the fine NUFFT puts
    # fine index m at m - (factor N) // 2
    shift = (factor * shape) // 2 - factor * (shape // 2) - (factor - 1) / 2
    phase = np.exp(-1j * (points / factor) @ shift)
    return nufft_forward(fine, points / factor) * phase / factor


def acquire(images: np.ndarray, temporal: np.ndarray, trajectory: np.ndarray, coil_maps: np.ndarray, sigma: float,
            seed: int, upsample: int = 1) -> np.ndarray:
    """Noisy k-space (coils, frames, spokes, readout) complex64 of the time series x_t = sum_q temporal[q, t] *
    images[q] (images (Q, X, Y), temporal (Q, frames)) seen by each coil (coil_maps (coils, X, Y)) on
    ``trajectory`` (frames, spokes, readout, 2), plus complex Gaussian noise of std ``sigma`` per real channel;
    simulated on a grid ``upsample`` times finer (``finer_grid_nufft``) to keep the reconstruction's model from
    being the simulation's (no inverse crime)."""
    if upsample < 1:
        raise AcquisitionError(f"upsample must be a positive integer, got {upsample}")
    frames, spokes, readout, _ = trajectory.shape
    if temporal.shape != (len(images), frames):
        raise AcquisitionError(f"{len(images)} images need a temporal array ({len(images)}, {frames}); got "
                               f"{temporal.shape}")
    if coil_maps.shape[1:] != images.shape[1:]:
        raise AcquisitionError(f"coil maps of shape {coil_maps.shape[1:]} do not fit images of shape "
                               f"{images.shape[1:]}")
    points = trajectory.reshape(-1, 2)
    weights = per_sample(temporal, trajectory)  # (Q, M)
    out = np.empty((len(coil_maps), frames * spokes * readout), dtype=np.complex64)
    for c, sensitivity in enumerate(coil_maps):
        out[c] = np.einsum("qm,qm->m", weights, finer_grid_nufft(sensitivity * images, points, upsample))
    out += acquisition_noise(out.shape, sigma, seed).astype(np.complex64)
    return out.reshape(len(coil_maps), frames, spokes, readout)


def acquisition_noise(shape: Sequence[int], sigma: float, seed: int) -> np.ndarray:
    """The complex Gaussian noise (std ``sigma`` per real channel) that ``acquire`` adds with ``seed`` to k-space of
    this shape, complex128: the noise-only part of a simulated acquisition, for the reconstruction's error budget."""
    return np.random.default_rng(seed).normal(scale=sigma, size=(*shape, 2)) @ np.array([1, 1j])


def estimate_coil_maps(data: np.ndarray, trajectory: np.ndarray, shape: Sequence[int],
                       radius: float = 0.4) -> np.ndarray:
    """Sensitivities (coils, X, Y) from the data's own low-resolution centre: each coil's image of every sample with
    |k| < ``radius`` (rad per voxel; all frames pooled, ramp-weighted for the radial density and Hann-windowed),
    divided by the root sum of squares over coils. They equal the true maps times one phase per voxel (the object's,
    which the coefficient images then lose: the networks and NLLS see it as the phase of M0)."""
    if not 0 < radius <= np.pi:
        raise AcquisitionError(f"the calibration radius must be in (0, pi] rad per voxel, got {radius}")
    points = trajectory.reshape(-1, 2)
    k = np.hypot(points[:, 0], points[:, 1])
    inside = k < radius
    if not inside.any():
        raise AcquisitionError(f"no k-space sample lies within the calibration radius {radius}")
    weights = k[inside] * np.cos(np.pi * k[inside] / (2 * radius)) ** 2
    images = nufft_adjoint(data.reshape(len(data), -1)[:, inside] * weights, points[inside], shape)
    rss = np.sqrt((np.abs(images) ** 2).sum(axis=0))
    return images / np.maximum(rss, 1e-12 * rss.max())


@dataclass(frozen=True)
class KSpace:
    """Multi-coil radial k-space of one slice: ``data`` (coils, frames, spokes, readout) complex64, ``trajectory``
    (frames, spokes, readout, 2) rad per voxel, the true ``coil_maps`` (coils, X, Y), the noise std ``sigma`` per real
    channel and the hash of the sequence whose time series it samples."""

    data: np.ndarray
    trajectory: np.ndarray
    coil_maps: np.ndarray
    sigma: float
    sequence_sha256: str


def acquire_slice(images: np.ndarray, temporal: np.ndarray, sequence_sha256: str, spokes: int = 1, coils: int = 8,
                  readout_oversampling: float = 2.0, snr: float = 50.0, seed: int = 0, upsample: int = 1) -> KSpace:
    """k-space of a time series sum_q temporal[q, t] images[q] (images (Q, X, Y, 1), one slice) with ``spokes``
    golden-angle spokes per frame of readout_oversampling * max(X, Y) samples, ``coils`` coils
    (``coil_sensitivities``), noise at ``snr`` (``noise_sigma``), simulated on a grid ``upsample`` times finer."""
    if images.ndim != 4 or images.shape[-1] != 1:
        raise AcquisitionError(f"the acquisition is 2-D: it needs one slice, got an image of shape {images.shape[1:]}")
    if readout_oversampling < 1:
        raise AcquisitionError(f"readout_oversampling {readout_oversampling} < 1 leaves the image's k-space "
                               f"undersampled along every spoke")
    shape = images.shape[1:3]
    readout = int(round(readout_oversampling * max(shape)))
    trajectory = radial_trajectory(temporal.shape[1], spokes, readout)
    maps = coil_sensitivities(shape, coils)
    sigma = noise_sigma(snr, spokes * readout, shape)
    return KSpace(acquire(images[..., 0], temporal, trajectory, maps, sigma, seed, upsample), trajectory,
                  maps.astype(np.complex64), sigma, sequence_sha256)
