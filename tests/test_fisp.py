"""MRF-FISP EPG against an independent isochromat simulation, finite differences and state-count convergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import REFERENCE, ROOT
from crbnet.signals.fisp import FISPSignalModel, epg_fisp
from crbnet.parameters import PARAMETERIZATIONS
from crbnet.sequences import FISPSequence, SequenceError, load_sequence, sequence_from_dict

FISP = PARAMETERIZATIONS["fisp"]


def _short(n: int = 16, seed: int = 0) -> FISPSequence:
    rng = np.random.default_rng(seed)
    return FISPSequence(flip_angle=rng.uniform(0, np.deg2rad(80), n), TR=rng.uniform(8e-3, 15e-3, n), TE=2e-3,
                        TI=0.02, inversion_efficiency=0.9, epg_states=n + 1)


def isochromats(T1: float, T2: float, B1: float, seq: FISPSequence, spins: int) -> np.ndarray:
    """Mean M+ at TE of ``spins`` isochromats evenly spread over one 2 pi dephasing cycle per TR (plain Bloch
    rotations about x and exponential relaxation, in numpy)."""
    theta = 2 * np.pi * np.arange(spins) / spins
    m = np.zeros((spins, 3))
    m[:, 2] = -seq.inversion_efficiency
    e1 = np.exp(-seq.TI / T1)
    m[:, 2] = m[:, 2] * e1 + 1 - e1
    out = []
    for a, tr in zip(seq.flip_angle * B1, seq.TR):
        rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        m = m @ rot.T
        for t, record in ((seq.TE, True), (tr - seq.TE, False)):
            e1, e2 = np.exp(-t / T1), np.exp(-t / T2)
            m[:, :2] *= e2
            m[:, 2] = m[:, 2] * e1 + 1 - e1
            if record:
                out.append(np.mean(m[:, 0] + 1j * m[:, 1]))
        mxy = (m[:, 0] + 1j * m[:, 1]) * np.exp(1j * theta)  # one unit of gradient dephasing
        m[:, 0], m[:, 1] = mxy.real, mxy.imag
    return np.array(out)


@pytest.mark.parametrize("T1, T2, B1", [(1.0, 0.08, 1.0), (0.3, 0.2, 0.7), (2.5, 0.02, 1.2)])
def test_epg_equals_isochromat_average(T1, T2, B1):
    seq = _short()
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    epg = epg_fisp(t(T1), t(T2), t(B1), seq)[0].numpy()
    reference = isochromats(T1, T2, B1, seq, spins=4 * seq.n_samples)
    np.testing.assert_allclose(epg, reference, atol=1e-12)


def test_state_count_convergence():
    seq = load_sequence(ROOT / "config" / "sequences" / "mrf_fisp_default.yaml")
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    signal = {k: epg_fisp(t(1.2), t(0.1), t(1.0), seq, states=k)[0] for k in (2, 10, 20, 50, 200)}
    error = {k: float((signal[k] - signal[200]).abs().max() / signal[200].abs().max()) for k in (2, 10, 20, 50)}
    assert error[2] > error[10] > error[20] > error[50]  # monotone convergence in the number of states
    assert error[2] > 1e-2 and error[20] < 1e-3 and error[50] < 1e-6  # T2 = 100 ms, TR about 12 ms
    scale = signal[200].abs().max()
    fast = epg_fisp(t(1.2), t(0.1), t(1.0), seq, states=20, dtype=torch.complex64)[0]
    assert fast.dtype == torch.complex64 and (fast - signal[20]).abs().max() < 1e-5 * scale


def test_jacobian_matches_central_differences():
    signal_model = FISPSignalModel(_short(40, seed=1), FISP)
    values = {"T1": 0.9, "T2": 0.07, "B1": 0.95}
    _, jac = signal_model.simulate(values, FISP.names)
    for k, name in enumerate(FISP.names):
        h = 1e-6 * values[name]
        up, down = (signal_model.signal({**values, name: values[name] + d}) for d in (h, -h))
        np.testing.assert_allclose(jac[0, :, k].numpy(), ((up - down) / (2 * h))[0].numpy(), rtol=1e-6, atol=1e-9)


def test_published_pattern_matches_the_default_shape():
    path = REFERENCE / "mrf_fisp_jiang_fa_deg.txt"
    if not path.exists():
        pytest.skip("../shared/reference is not available")
    published = load_sequence(ROOT / "config" / "sequences" / "mrf_fisp_jiang.yaml")
    ours = load_sequence(ROOT / "config" / "sequences" / "mrf_fisp_default.yaml")
    assert published.n_samples == ours.n_samples == 1000
    assert np.rad2deg(published.flip_angle).max() == pytest.approx(np.rad2deg(ours.flip_angle).max(), abs=1)
    assert published.TR.min() == pytest.approx(ours.TR.min(), rel=1e-3)


@pytest.mark.parametrize("spec, message", [
    ({"flip_angle": [10, 20], "TR": 0.01, "TE": 0.002}, "flip angles must lie in"),
    ({"flip_angle": [0.1, 0.2], "TR": 10, "TE": 0.002}, "every TR must exceed TE"),
    ({"flip_angle": [0.1, 0.2], "TR": 0.001, "TE": 0.002}, "every TR must exceed TE"),
    ({"flip_angle": [0.1, 0.2, 0.3], "TR": [0.01, 0.01], "TE": 0.002}, "3 flip angles but 2"),
    ({"flip_angle": {"file": "missing.txt"}, "TR": 0.01, "TE": 0.002}, "not found"),
    ({"flip_angle": [0.1, 0.2], "TR": 0.01}, "'TE' is a required property"),
    ({"flip_angle": [0.1, 0.2], "TR": 0.01, "TE": 0.002, "patterns": []}, "patterns"),
])
def test_bad_fisp_sequences_are_named(tmp_path, spec, message):
    with pytest.raises(SequenceError, match=message):
        sequence_from_dict({"kind": "mrf_fisp", **spec}, base=tmp_path, source="fisp.yaml")


@pytest.fixture(scope="module")
def fisp_dictionary():
    from crbnet.basis import svd_basis
    from crbnet.matching import Dictionary

    seq = load_sequence(ROOT / "config" / "sequences" / "mrf_fisp_default.yaml")
    T1, T2 = np.meshgrid(np.geomspace(0.3, 3.0, 12), np.geomspace(0.02, 0.3, 10), indexing="ij")
    keep = T2 < T1
    T1, T2 = T1[keep], T2[keep]
    atoms = epg_fisp(torch.as_tensor(T1), torch.as_tensor(T2), torch.ones(T1.size), seq, states=20).numpy()
    basis = svd_basis([atoms], 8, seq.sha256)
    return Dictionary(basis.project(atoms), np.stack([T1, T2], 1), ("T1", "T2")), basis.project(atoms)


def test_matching_recovers_atoms_and_M0(fisp_dictionary):
    dictionary, atoms = fisp_dictionary
    assert dictionary.real  # imaginary FISP atoms take the real fast path
    M0 = 0.7 * np.exp(1j * np.linspace(-3, 3, len(atoms)))
    result = dictionary.match(atoms * M0[:, None], chunk=7)  # odd chunk: boundaries are handled
    np.testing.assert_array_equal(result.index, np.arange(len(atoms)))
    np.testing.assert_allclose(result.M0, M0, rtol=1e-4)
    np.testing.assert_array_equal(result.parameters, dictionary.parameters)


def test_complex_path_agrees_with_the_real_path(fisp_dictionary):
    from crbnet.matching import Dictionary

    dictionary, atoms = fisp_dictionary
    rng = np.random.default_rng(0)
    general = Dictionary(atoms * np.exp(1j * rng.uniform(0, 6, len(atoms)))[:, None], dictionary.parameters,
                         dictionary.names)  # per-atom phases: not real
    assert not general.real
    noisy = atoms[::3] * (0.5 + 0.2j) + 0.002 * (rng.normal(size=atoms[::3].shape) + 1j * rng.normal(size=atoms[::3].shape))
    a, b = dictionary.match(noisy), general.match(noisy)
    np.testing.assert_array_equal(a.index, b.index)
    np.testing.assert_allclose(np.abs(a.M0), np.abs(b.M0), rtol=1e-4)
    with pytest.raises(ValueError, match="data must be"):
        dictionary.match(noisy[:, :5])


def test_cli_simulates_and_bounds_fisp(tmp_path):
    import pandas as pd

    from crbnet.cli import main

    seq = str(ROOT / "config" / "sequences" / "mrf_fisp_default.yaml")
    out = tmp_path / "s.csv"
    assert main(["simulate", "--sequence", seq, "--set", "T1=1.0", "--set", "T2=0.08", "--set", "B1=1",
                 "--jacobian", "T1,T2,B1", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["re", "im", "d_T1_re", "d_T1_im", "d_T2_re", "d_T2_im", "d_B1_re", "d_B1_im"]
    assert len(table) == 1000 and np.allclose(table.re, 0)  # FISP signals are imaginary
    f64 = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    direct = epg_fisp(f64(1.0), f64(0.08), f64(1.0), load_sequence(seq))[0]
    np.testing.assert_allclose(table.im, direct.imag.numpy(), rtol=1e-9)  # CSV keeps 10 digits
    assert main(["crb", "--sequence", seq, "--estimate", "T1,T2,B1", "--sigma", "0.01", "--out", str(out)]) == 0
    crb = pd.read_csv(out)
    assert list(crb.parameter) == ["T1", "T2", "B1"] and np.all(crb.sqrt_crb > 0) and np.all(np.isfinite(crb.crb))
    assert main(["simulate", "--sequence", seq, "--set", "m0s=0.1", "--out", str(out)]) == 2  # not a FISP parameter


def test_matching_estimator_in_the_monte_carlo_evaluation(tmp_path):
    """At grid points and very high SNR, dictionary matching is exact: zero bias and zero variance; the saved
    dictionary predicts the same; grid points that break the space's constraints are left out."""
    from crbnet.basis import svd_basis
    from crbnet.crb import unit_crb
    from crbnet.datasets import FingerprintSet
    from crbnet.estimator import load_estimator
    from crbnet.evaluation import monte_carlo
    from crbnet.matching import MatchingEstimator
    from crbnet.parameters import ParameterSpace

    seq = _short(30, seed=2)
    signal_model = FISPSignalModel(seq, FISP)
    axes = {"T1": np.geomspace(0.4, 2.0, 6), "T2": np.geomspace(0.03, 0.2, 5)}
    T1, T2 = (m.ravel() for m in np.meshgrid(*axes.values(), indexing="ij"))
    signal, jac = signal_model.simulate({"T1": T1, "T2": T2, "B1": 1.0}, FISP.names)
    basis = svd_basis([signal.numpy()], 10, seq.sha256)
    space = ParameterSpace.from_config({"parameterization": "fisp", "parameters": {
        "T1": {"dist": "uniform", "lower": 0.1, "upper": 3.0}, "T2": {"dist": "uniform", "lower": 0.01, "upper": 0.5},
        "B1": 1.0}, "constraints": ["T2 <= T1"]})
    estimator = MatchingEstimator.from_grid(signal_model, basis, space, axes, ("T1", "T2"))
    assert estimator.dictionary.names == ("T1", "T2", "B1") and len(estimator.dictionary) == 30
    crb = unit_crb(signal, jac, torch.as_tensor(basis.U))[:, :2]
    examples = FingerprintSet(("T1", "T2"), ("s", "s"), torch.as_tensor(np.stack([T1, T2], 1)),
                              torch.as_tensor(basis.project(signal.numpy()).astype(np.complex64)), crb)
    table = monte_carlo(estimator, examples, snr=1e5, realizations=5, seed=0)
    np.testing.assert_allclose(table.bias, 0.0, atol=1e-12)
    np.testing.assert_allclose(table.variance, 0.0, atol=1e-12)

    estimator.save(tmp_path / "matching.h5")
    loaded = load_estimator(tmp_path / "matching.h5")
    assert loaded.names == ("T1", "T2") and loaded.units == ("s", "s") and loaded.basis.sha256 == basis.sha256
    noisy = examples.coefficients.numpy() * np.exp(0.7j) + 0.02 * np.random.default_rng(0).normal(size=(30, 10))
    np.testing.assert_array_equal(loaded.predict(noisy), estimator.predict(noisy))

    with pytest.raises(ValueError, match="no m0s"):
        MatchingEstimator(estimator.dictionary, basis, ("m0s",))
    short = MatchingEstimator.from_grid(signal_model, basis, space, {"T1": np.array([0.02, 0.05, 1.0]),
                                                              "T2": np.array([0.04])}, ("T1", "T2"))
    np.testing.assert_array_equal(short.dictionary.parameters[:, 0], [0.05, 1.0])  # T2 <= T1 keeps two
    with pytest.raises(Exception, match="another sequence"):
        MatchingEstimator.from_grid(FISPSignalModel(_short(30, seed=3), FISP), basis, space, axes, ("T1",))


def test_cli_fit_with_a_dictionary(tmp_path):
    """`crbnet fit` takes a saved dictionary like a network; a file that is not one exits 2 and writes nothing."""
    from crbnet.basis import svd_basis
    from crbnet.cli import main
    from crbnet.matching import MatchingEstimator
    from crbnet.parameters import ParameterSpace

    seq = _short(30, seed=4)
    signal_model = FISPSignalModel(seq, FISP)
    space = ParameterSpace.from_config({"parameterization": "fisp", "parameters": {
        "T1": {"dist": "uniform", "lower": 0.1, "upper": 3.0}, "T2": {"dist": "uniform", "lower": 0.01, "upper": 0.5},
        "B1": {"dist": "uniform", "lower": 0.8, "upper": 1.2}}})
    axes = {"T1": np.geomspace(0.3, 2.0, 5), "T2": np.geomspace(0.02, 0.2, 4), "B1": np.array([0.9, 1.1])}
    signals = signal_model.signal(space.grid(axes)).numpy()
    estimator = MatchingEstimator.from_grid(signal_model, svd_basis([signals], 8, seq.sha256), space, axes, ("T2", "T1"))
    estimator.save(tmp_path / "dm.h5")
    data = (signals[[3, 17, 30]] * np.array([2.0, 1j, -0.5])[:, None]).astype(np.complex64)  # full fingerprints
    np.save(tmp_path / "data.npy", data)
    assert main(["fit", "--model", str(tmp_path / "dm.h5"), "--data", str(tmp_path / "data.npy"),
                 "--out", str(tmp_path / "maps.npy")]) == 0
    grid = space.grid(axes)
    np.testing.assert_allclose(np.load(tmp_path / "maps.npy"),
                               np.stack([grid["T2"], grid["T1"]], 1)[[3, 17, 30]], rtol=1e-12)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    assert main(["fit", "--model", str(tmp_path / "junk.h5"), "--data", str(tmp_path / "data.npy"),
                 "--out", str(tmp_path / "junk.npy")]) == 2
    assert not (tmp_path / "junk.npy").exists()
