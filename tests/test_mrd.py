"""ISMRM raw data (ISMRMRD HDF5) in and out: the round trip simulate -> MRD -> import -> reconstruct, prewhitening,
coil compression and the errors of bad raw data."""

from __future__ import annotations

from dataclasses import replace

import h5py
import ismrmrd
import numpy as np
import pytest
from crbnet.acquisition import KSpace, acquire, coil_sensitivities, radial_trajectory
from crbnet.basis import Basis
from crbnet.io.mrd import compress_coils, import_mrd, prewhiten, read_mrd, write_mrd
from crbnet.io.voxels import DataError
from crbnet.recon import reconstruct_kspace

SHAPE, FRAMES, SPOKES, R = (14, 11), 6, 2, 2


def simulated(seed: int = 0, sigma: float = 0.01) -> tuple[KSpace, Basis]:
    """Noisy k-space of a smooth asymmetric object under a random orthonormal basis (4 coils), and the basis."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.normal(size=(FRAMES, R)) + 1j * rng.normal(size=(FRAMES, R)))[0]
    x, y = np.meshgrid(*[np.linspace(-1, 1, n) for n in SHAPE], indexing="ij")
    truth = np.stack([(k + 1) * np.exp(-(x - 0.2) ** 2 / 0.4 - (y + 0.1) ** 2 / 0.3 + 1j * k * x) for k in range(R)])
    traj, maps = radial_trajectory(FRAMES, SPOKES, 2 * max(SHAPE)), coil_sensitivities(SHAPE, 4)
    data = acquire(truth, U.T, traj, maps, sigma, seed)
    return KSpace(data, traj, maps.astype(np.complex64), sigma, "seqhash"), Basis(U, np.ones(R), "seqhash")


def test_round_trip_through_mrd_equals_the_direct_path(tmp_path):
    """Simulate -> MRD -> import -> reconstruct equals simulate -> reconstruct (estimated coil maps both)."""
    kspace, basis = simulated()
    write_mrd(tmp_path / "raw.h5", kspace, fov_mm=(210.0, 165.0))
    data, traj, noise, shape, fov = read_mrd(tmp_path / "raw.h5", FRAMES, "seqhash")
    assert noise is None and shape == SHAPE and fov == (210.0, 165.0)
    np.testing.assert_array_equal(data, kspace.data)  # binned back into frames and spokes
    np.testing.assert_allclose(traj, kspace.trajectory, atol=1e-6)  # float32 in the file
    imported = import_mrd(tmp_path / "raw.h5", FRAMES, "seqhash", calibration_radius=1.0)
    # the format's one lossy step: trajectories are float32 (cycles per voxel); the direct path gets the same
    rounded = (kspace.trajectory / (2 * np.pi)).astype(np.float32).astype(np.float64) * (2 * np.pi)
    direct, maps = reconstruct_kspace(replace(kspace, trajectory=rounded), basis, "estimated", 1.0, iterations=4)
    via, via_maps = reconstruct_kspace(imported, basis, "given", iterations=4)  # the import's maps are estimated
    np.testing.assert_allclose(via_maps, maps, atol=1e-5)
    assert np.linalg.norm(via - direct) / np.linalg.norm(direct) < 1e-6


def test_prewhitening_makes_correlated_coil_noise_white():
    rng = np.random.default_rng(1)
    mixing = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.2, 0.3, 2.0]]) * (1 + 0.3j)
    white = (rng.normal(size=(3, 40000)) + 1j * rng.normal(size=(3, 40000))) / np.sqrt(2)
    noise, data = mixing @ white[:, :20000], mixing @ white[:, 20000:]
    whitened = prewhiten(data, noise)
    np.testing.assert_allclose(whitened @ whitened.conj().T / whitened.shape[1], np.eye(3), atol=0.03)
    with pytest.raises(Exception, match="singular"):
        prewhiten(data, np.zeros((3, 10), dtype=complex))


def test_coil_compression_keeps_the_energy_of_low_rank_data():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(8, 2)) @ (rng.normal(size=(2, 500)) + 1j * rng.normal(size=(2, 500)))  # rank 2
    compressed = compress_coils(data.reshape(8, 20, 25), 2)
    assert compressed.shape == (2, 20, 25)
    np.testing.assert_allclose(np.linalg.norm(compressed), np.linalg.norm(data), rtol=1e-10)
    assert compress_coils(data, 8) is data


def test_import_prewhitens_with_the_noise_scans(tmp_path):
    kspace, _ = simulated(sigma=0.05)
    rng = np.random.default_rng(3)
    noise = 0.05 * (rng.normal(size=(4, 4000)) + 1j * rng.normal(size=(4, 4000)))
    write_mrd(tmp_path / "raw.h5", kspace, noise=noise)
    imported = import_mrd(tmp_path / "raw.h5", FRAMES, "seqhash", virtual_coils=3)
    assert imported.data.shape == (3, FRAMES, SPOKES, 2 * max(SHAPE)) and imported.sigma == pytest.approx(0.5**0.5)
    # the data were scaled by about 1/(0.05 sqrt 2): white noise of unit complex variance
    ratio = np.linalg.norm(imported.data) / np.linalg.norm(compress_coils(kspace.data, 3))
    assert ratio == pytest.approx(1 / (0.05 * np.sqrt(2)), rel=0.05)


def test_bad_raw_data_gets_one_clear_error_and_no_output(tmp_path):
    kspace, _ = simulated()
    with pytest.raises(DataError, match="does not exist"):
        read_mrd(tmp_path / "none.h5", FRAMES)
    write_mrd(tmp_path / "raw.h5", kspace)
    with pytest.raises(DataError, match="not a whole number of the sequence's 5 frames"):
        read_mrd(tmp_path / "raw.h5", 5)
    with pytest.raises(DataError, match="another sequence"):
        read_mrd(tmp_path / "raw.h5", FRAMES, "otherhash")
    (tmp_path / "plain.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not an ISMRMRD file"):
        read_mrd(tmp_path / "plain.h5", FRAMES)
    with ismrmrd.Dataset(str(tmp_path / "notraj.h5"), "dataset", create_if_needed=True) as ds:  # no trajectory
        with ismrmrd.Dataset(str(tmp_path / "raw.h5"), "dataset", create_if_needed=False) as src:
            ds.write_xml_header(src.read_xml_header())
        for _ in range(FRAMES):
            ds.append_acquisition(ismrmrd.Acquisition.from_array(np.zeros((4, 28), dtype=np.complex64)))
    with pytest.raises(DataError, match="without a 2-D trajectory"):
        read_mrd(tmp_path / "notraj.h5", FRAMES)
    # a failed write leaves nothing behind
    broken = KSpace(kspace.data, kspace.trajectory[:, :1], kspace.coil_maps, 0.0, "seqhash")
    with pytest.raises(Exception):
        write_mrd(tmp_path / "broken.h5", broken)
    assert not (tmp_path / "broken.h5").exists()
    assert h5py.is_hdf5(tmp_path / "raw.h5")


def test_cli_imports_and_reconstructs_raw_data_and_refuses_another_sequence(tmp_path, capsys):
    """crbnet kspace import / reconstruct: raw data of the sequence's frames -> k-space -> coefficient images that
    crbnet fit reads; another sequence's raw data: one line on stderr, exit 2, no output."""
    from conftest import ROOT
    from crbnet.cli import main
    from crbnet.io.voxels import read_voxels
    from crbnet.sequences import load_sequence

    path = ROOT / "config" / "sequences" / "mrf_fisp_default.yaml"
    sequence = load_sequence(path)
    frames = sequence.n_samples
    rng = np.random.default_rng(4)
    U = np.linalg.qr(rng.normal(size=(frames, R)) + 1j * rng.normal(size=(frames, R)))[0]
    traj, maps = radial_trajectory(frames, 1, 24), coil_sensitivities((12, 10), 2)
    truth = rng.normal(size=(R, 12, 10)) + 0j
    kspace = KSpace(acquire(truth, U.T, traj, maps, 0.0, 0), traj, maps, 0.0, sequence.sha256)
    write_mrd(tmp_path / "raw.h5", kspace)
    Basis(U, np.ones(R), sequence.sha256).save(tmp_path / "basis.h5")
    assert main(["kspace", "import", str(tmp_path / "raw.h5"), "--sequence", str(path), "--out",
                 str(tmp_path / "k.h5")]) == 0
    assert main(["kspace", "reconstruct", str(tmp_path / "k.h5"), "--basis", str(tmp_path / "basis.h5"),
                 "--iterations", "2", "--out", str(tmp_path / "c.h5")]) == 0
    assert read_voxels(tmp_path / "c.h5").values.shape == (12 * 10, R)
    other = ROOT / "config" / "sequences" / "mrf_fisp_jiang.yaml"
    capsys.readouterr()
    assert main(["kspace", "import", str(tmp_path / "raw.h5"), "--sequence", str(other), "--out",
                 str(tmp_path / "o.h5")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ("another sequence" in err or "frames" in err)
    assert not (tmp_path / "o.h5").exists()
