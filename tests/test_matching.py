"""Dictionary matching: the clustered search returns brute force's atoms."""

import numpy as np
import pytest
import torch

from crbnet import matching
from crbnet.matching import Dictionary


@pytest.fixture(scope="module")
def relaxation() -> tuple[np.ndarray, np.ndarray]:
    """1200 real atoms on a smooth 2D manifold like MRF atoms: inversion recovery (T1) times T2 decay at cycling
    echo times on a log grid of (T1, T2), as 12 SVD coefficients; neighbours differ (|cos| < 1 - 1e-4)."""
    t = np.linspace(0.0, 4.0, 200)
    echo = 0.005 + 0.01 * (np.arange(200) % 20)
    T1, T2 = (v.ravel() for v in np.meshgrid(np.geomspace(0.3, 3.0, 40), np.geomspace(0.02, 0.3, 30), indexing="ij"))
    signals = (1 - 2 * np.exp(-t / T1[:, None])) * np.exp(-echo / T2[:, None])
    return signals @ np.linalg.svd(signals, full_matrices=False)[2][:12].T, np.stack([T1, T2], 1)


def _voxels(atoms: np.ndarray, snr: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every atom with a random complex M0 and complex noise (per real channel: mean atom norm / sqrt(2 r) / snr)."""
    rng = np.random.default_rng(seed)
    M0 = rng.uniform(0.5, 2.0, len(atoms)) * np.exp(1j * rng.uniform(0, 2 * np.pi, len(atoms)))
    sigma = np.linalg.norm(atoms, axis=1).mean() / np.sqrt(2 * atoms.shape[1]) / snr
    return atoms * M0[:, None] + sigma * (rng.normal(size=atoms.shape) + 1j * rng.normal(size=atoms.shape)), M0


def _agreement(dictionary: Dictionary, data: np.ndarray, probe: int | None = None) -> float:
    brute = dictionary.match(data, method="brute").index
    return float(np.mean(dictionary.match(data, method="clustered", probe=probe).index == brute))


def test_clustered_search_finds_every_noise_free_atom(relaxation):
    atoms, parameters = relaxation
    dictionary = Dictionary(atoms, parameters, ("T1", "T2"))
    index = dictionary.cluster_index
    assert dictionary.real and len(index.centres) == 35  # ceil(sqrt(1200)) clusters
    np.testing.assert_array_equal(np.sort(index.atom_index), np.arange(len(atoms)))
    labels = np.repeat(np.arange(len(index.centres)), np.diff(index.offsets))
    cos = np.abs(np.sum(index.atoms * index.centres[labels], axis=1))
    assert np.all(cos >= index.cos_radius[labels] - 1e-6)  # each cluster's radius covers its atoms

    data, M0 = _voxels(atoms, np.inf, seed=0)
    result = dictionary.match(data.astype(np.complex64), method="clustered")
    np.testing.assert_array_equal(result.index, np.arange(len(atoms)))
    np.testing.assert_array_equal(result.index, dictionary.match(data, method="brute").index)
    np.testing.assert_allclose(result.M0, M0, rtol=1e-5)
    np.testing.assert_array_equal(result.parameters, parameters)


@pytest.mark.parametrize("snr", [30.0, 3.0])
def test_clustered_search_agrees_with_brute_force_on_noisy_atoms(relaxation, snr):
    """The bound keeps the search exact at any SNR; capping it at the best cluster (probe=1) loses atoms."""
    atoms, parameters = relaxation
    dictionary = Dictionary(atoms, parameters, ("T1", "T2"))
    data, _ = _voxels(atoms, snr, seed=1)
    assert _agreement(dictionary, data) >= 0.99
    assert _agreement(dictionary, data, probe=1) < 0.99


def test_clustered_search_on_a_complex_dictionary(relaxation):
    """Per-atom phases: the complex path, clusters invariant to the phase of each atom."""
    atoms, parameters = relaxation
    phases = np.exp(1j * np.random.default_rng(2).uniform(0, 2 * np.pi, len(atoms)))
    dictionary = Dictionary(atoms * phases[:, None], parameters, ("T1", "T2"))
    assert not dictionary.real
    assert dictionary.cluster_index.centres.shape == (35, 24)  # [Re, Im]
    clean, M0 = _voxels(atoms * phases[:, None], np.inf, seed=3)
    result = dictionary.match(clean, method="clustered")
    np.testing.assert_array_equal(result.index, np.arange(len(atoms)))
    np.testing.assert_allclose(result.M0, M0, rtol=1e-5)
    assert _agreement(dictionary, _voxels(atoms * phases[:, None], 10.0, seed=4)[0]) >= 0.99


def test_a_dictionary_smaller_than_the_cluster_count(relaxation):
    """20 distinct atoms and two duplicates in 64 requested clusters; ties go to the lower index, as in brute force."""
    atoms, parameters = relaxation
    pick = np.r_[np.arange(0, 1200, 60), 60, 300]
    dictionary = Dictionary(atoms[pick], parameters[pick], ("T1", "T2"), clusters=64)
    assert len(dictionary.cluster_index.centres) <= 20
    data, _ = _voxels(atoms[pick], np.inf, seed=5)
    result = dictionary.match(data, method="clustered")
    np.testing.assert_array_equal(result.index, np.r_[np.arange(20), 1, 5])
    np.testing.assert_array_equal(result.index, dictionary.match(data, method="brute").index)


def test_one_voxel_and_determinism(relaxation):
    """Two dictionaries from the same atoms build the same index; thread counts and chunks change no atom."""
    atoms, parameters = relaxation
    a, b = Dictionary(atoms, parameters, ("T1", "T2")), Dictionary(atoms, parameters, ("T1", "T2"))
    data, _ = _voxels(atoms, 5.0, seed=6)
    one = a.match(data[[17]], method="clustered")
    assert one.index.shape == (1,) and one.index[0] == a.match(data[[17]], method="brute").index[0]
    blank = np.stack([np.zeros(12), np.full(12, np.nan)])  # both match atom 0, as in brute force
    np.testing.assert_array_equal(a.match(blank, method="clustered").index, a.match(blank, method="brute").index)
    first = a.match(data, method="clustered", probe=2).index
    for field in ("centres", "cos_radius", "atoms", "atom_index", "offsets"):
        np.testing.assert_array_equal(getattr(a.cluster_index, field), getattr(b.cluster_index, field))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        np.testing.assert_array_equal(b.match(data, method="clustered", probe=2, chunk=7).index, first)
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_array_equal(a.match(data, method="clustered", probe=2).index, first)


def test_auto_takes_the_clustered_search_for_large_dictionaries(relaxation, monkeypatch):
    atoms, parameters = relaxation
    small = Dictionary(atoms, parameters, ("T1", "T2"))
    small.match(atoms[:3])
    assert "cluster_index" not in vars(small)  # below CLUSTERED_MIN_ATOMS: brute force, no index built
    monkeypatch.setattr(matching, "CLUSTERED_MIN_ATOMS", 1000)
    large = Dictionary(atoms, parameters, ("T1", "T2"))
    np.testing.assert_array_equal(large.match(atoms[:3]).index, [0, 1, 2])
    assert "cluster_index" in vars(large)
    with pytest.raises(ValueError, match="method must be"):
        large.match(atoms[:3], method="fast")
    with pytest.raises(ValueError, match="probe must be"):
        large.match(atoms[:3], method="clustered", probe=0)
