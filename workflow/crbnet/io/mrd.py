"""ISMRM raw data (ISMRMRD HDF5) in and out.

Through the ``ismrmrd`` package (h5py and the format's XML header schema): the format that vendors' converters
(siemens_to_ismrmrd, the GE and Philips tools) write. mrpro reads the same files but brings a reconstruction framework
of its own, and mrd-python speaks MRD 2's streaming format rather than these files.

Conventions: one acquisition per readout, in TR order (``scan_counter``); a readout's trajectory in cycles per voxel
(k / 2 pi, the edge of k-space at +-0.5, as Gadgetron's radial gadgets); the image's matrix size and field of view in
the header's reconSpace; noise scans flagged ACQ_IS_NOISE_MEASUREMENT; the sequence's hash, where known, as the user
parameter ``crbnet_sequence_sha256``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import ismrmrd
import numpy as np
from ismrmrd import xsd

from crbnet.acquisition import AcquisitionError, KSpace, estimate_coil_maps
from crbnet.io.atomic import atomic_path
from crbnet.io.voxels import DataError

SEQUENCE_PARAMETER = "crbnet_sequence_sha256"


def _header(shape: Sequence[int], fov_mm: Sequence[float], coils: int, sequence_sha256: str) -> str:
    space = xsd.encodingSpaceType(matrixSize=xsd.matrixSizeType(x=int(shape[0]), y=int(shape[1]), z=1),
                                  fieldOfView_mm=xsd.fieldOfViewMm(x=float(fov_mm[0]), y=float(fov_mm[1]), z=5.0))
    encoding = xsd.encodingType(encodedSpace=space, reconSpace=space, encodingLimits=xsd.encodingLimitsType(),
                                trajectory=xsd.trajectoryType.GOLDENANGLE)
    header = xsd.ismrmrdHeader(
        experimentalConditions=xsd.experimentalConditionsType(H1resonanceFrequency_Hz=127_740_000),
        acquisitionSystemInformation=xsd.acquisitionSystemInformationType(receiverChannels=coils),
        encoding=[encoding],
        userParameters=xsd.userParametersType(userParameterString=[
            xsd.userParameterStringType(name=SEQUENCE_PARAMETER, value=sequence_sha256)]))
    return xsd.ToXML(header)


def write_mrd(path: str | Path, kspace: KSpace, fov_mm: Sequence[float] = (200.0, 200.0),
              noise: np.ndarray | None = None) -> None:
    """``kspace`` as an ISMRMRD file: its readouts in TR order, TR i = spoke * frames + frame (the pattern played once
    per spoke of a frame), after ``noise`` (coils, samples) as noise scans. Written atomically
    (``crbnet.io.atomic.atomic_path``): a failed write leaves no file."""
    coils, frames, spokes, readout = kspace.data.shape
    with atomic_path(path) as tmp:
        tmp.unlink()  # ismrmrd creates the file itself (it cannot open an empty one)
        with ismrmrd.Dataset(str(tmp), "dataset", create_if_needed=True) as ds:
            ds.write_xml_header(_header(kspace.coil_maps.shape[1:], fov_mm, coils, kspace.sequence_sha256))
            counter = 0
            if noise is not None:
                acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(noise, dtype=np.complex64))
                acq.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
                acq.scan_counter = counter
                ds.append_acquisition(acq)
                counter += 1
            for i in range(frames * spokes):
                spoke, frame = divmod(i, frames)
                acq = ismrmrd.Acquisition.from_array(
                    np.ascontiguousarray(kspace.data[:, frame, spoke], dtype=np.complex64),
                    trajectory=np.ascontiguousarray(kspace.trajectory[frame, spoke] / (2 * np.pi), dtype=np.float32))
                acq.scan_counter = counter
                acq.idx.repetition = frame
                ds.append_acquisition(acq)
                counter += 1


def prewhiten(data: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Data (coils, ...) mixed so that the noise of the coils is white with unit variance: L^-1 data, L the Cholesky
    factor of the noise covariance noise noise^H / n (noise (coils, n))."""
    covariance = noise @ noise.conj().T / noise.shape[1]
    try:
        chol = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        raise AcquisitionError("the noise scans' coil covariance is singular: cannot prewhiten") from None
    return np.linalg.solve(chol, data.reshape(len(data), -1)).reshape(data.shape)


def compress_coils(data: np.ndarray, virtual: int) -> np.ndarray:
    """Data (coils, ...) compressed to ``virtual`` coils: its projection on the leading left singular vectors of the
    (coils, samples) matrix (all coils when ``virtual`` is at least their number)."""
    if virtual < 1:
        raise AcquisitionError(f"virtual coils must be >= 1, got {virtual}")
    if virtual >= len(data):
        return data
    flat = data.reshape(len(data), -1)
    u, _, _ = np.linalg.svd(flat, full_matrices=False)
    return (u[:, :virtual].conj().T @ flat).reshape(virtual, *data.shape[1:])


def read_mrd(path: str | Path, frames: int, sequence_sha256: str | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[int, int], tuple[float, float]]:
    """(data (coils, frames, spokes, readout) complex64, trajectory (frames, spokes, readout, 2) rad per voxel, noise
    (coils, n) or None, image shape, field of view in mm) of an ISMRMRD file for a sequence of ``frames`` time
    points: readout i (TR order) goes to frame i mod frames, spoke i // frames. A DataError names what is wrong:
    no such file, no header or 2-D matrix, no trajectory, readouts of unequal size, a number of readouts that is
    not a multiple of ``frames``, or another sequence's hash than ``sequence_sha256``."""
    if not Path(path).exists():
        raise DataError(f"raw data file {path} does not exist")
    try:
        ds = ismrmrd.Dataset(str(path), "dataset", create_if_needed=False)
    except Exception as err:  # noqa: BLE001 - h5py and ismrmrd raise many kinds
        raise DataError(f"{path} is not an ISMRMRD file: {err}") from None
    with ds:
        try:
            header = xsd.CreateFromDocument(ds.read_xml_header())
        except Exception:  # noqa: BLE001
            raise DataError(f"{path}: no readable ISMRMRD XML header") from None
        recon = header.encoding[0].reconSpace
        if recon.matrixSize.z != 1:
            raise DataError(f"{path}: a 3-D matrix ({recon.matrixSize.z} partitions); only 2-D slices are supported")
        shape = (int(recon.matrixSize.x), int(recon.matrixSize.y))
        fov = (float(recon.fieldOfView_mm.x), float(recon.fieldOfView_mm.y))
        given = {p.name: p.value for p in (header.userParameters.userParameterString if header.userParameters else [])}
        if sequence_sha256 and given.get(SEQUENCE_PARAMETER, sequence_sha256) != sequence_sha256:
            raise DataError(f"{path} was acquired with another sequence (hash {given[SEQUENCE_PARAMETER][:12]}..., "
                            f"expected {sequence_sha256[:12]}...)")
        acquisitions = [ds.read_acquisition(i) for i in range(ds.number_of_acquisitions())]
    noise = [a.data for a in acquisitions if a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)]
    imaging = sorted((a for a in acquisitions if not a.is_flag_set(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)),
                     key=lambda a: a.scan_counter)
    if not imaging:
        raise DataError(f"{path} holds no imaging readouts")
    if any(a.traj.shape[-1] < 2 for a in imaging):
        raise DataError(f"{path}: readouts without a 2-D trajectory")
    if len({a.data.shape for a in imaging}) > 1:
        raise DataError(f"{path}: readouts of different sizes {sorted({a.data.shape for a in imaging})}")
    if len(imaging) % frames:
        raise DataError(f"{path}: {len(imaging)} readouts are not a whole number of the sequence's {frames} frames")
    spokes = len(imaging) // frames
    data = np.stack([a.data for a in imaging]).reshape(spokes, frames, *imaging[0].data.shape)
    cycles = np.stack([a.traj[:, :2] for a in imaging]).astype(np.float64)  # float32 in the file
    trajectory = cycles.reshape(spokes, frames, -1, 2) * 2 * np.pi
    return (np.ascontiguousarray(data.transpose(2, 1, 0, 3)).astype(np.complex64),
            np.ascontiguousarray(trajectory.transpose(1, 0, 2, 3)).astype(np.float64),
            np.concatenate(noise, axis=1) if noise else None, shape, fov)


def import_mrd(path: str | Path, frames: int, sequence_sha256: str, virtual_coils: int | None = None,
               calibration_radius: float = 0.4) -> KSpace:
    """A KSpace of an ISMRMRD file (``read_mrd``): prewhitened with its noise scans where it has them (the noise std
    is then 1/sqrt(2) per real channel; NaN without), compressed to ``virtual_coils`` (None: all), with coil maps
    estimated from the data's centre (``crbnet.acquisition.estimate_coil_maps``) in place of true ones."""
    data, trajectory, noise, shape, _ = read_mrd(path, frames, sequence_sha256)
    sigma = float("nan")
    if noise is not None:
        if len(noise) != len(data):
            raise DataError(f"{path}: noise scans of {len(noise)} coils for data of {len(data)}")
        data, sigma = prewhiten(data, noise), float(np.sqrt(0.5))
    data = compress_coils(data, virtual_coils or len(data)).astype(np.complex64)
    return KSpace(data, trajectory, estimate_coil_maps(data, trajectory, shape, calibration_radius), sigma,
                  sequence_sha256)
