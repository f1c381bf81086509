"""Numerical phantoms, their coefficient images, map estimation and export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from crbnet.acquisition import AcquisitionError, acquire_slice
from crbnet.basis import svd_basis
from crbnet.io.kspace import load_kspace, save_kspace
from crbnet.io.maps import read_maps, save_maps
from crbnet.io.nifti import write_nifti_map
from crbnet.io.voxels import VoxelData
from crbnet.maps import crb_image, estimate_voxels
from crbnet.matching import MatchingEstimator
from crbnet.parameters import PARAMETERIZATIONS, ParameterSpace
from crbnet.phantoms import (
    PhantomError,
    brain_labels,
    coefficient_image,
    load_phantom,
    noiseless_coefficients,
    save_phantom,
    smooth_phase,
    time_series_components,
    tube_phantom,
)
from crbnet.sequences import FISPSequence
from crbnet.signals.fisp import FISPSignalModel
from crbnet import tables
from crbnet.tables import agreement, paired_table, roi_table

APPARENT = PARAMETERIZATIONS["apparent_t1"]
FISP = PARAMETERIZATIONS["fisp"]
TUBES = {"bath": {"m0s": 0.0, "T1": 1.0, "T2f": 0.5}} | {
    f"tube{k}": {"m0s": 0.05 + 0.02 * k, "T1": 0.8 + 0.2 * k, "T2f": 0.04 + 0.01 * k} for k in range(6)}


def test_tube_phantom_geometry_and_fields():
    p = tube_phantom(TUBES, APPARENT, size=64, B1_edge=0.8, omega0_edge=300.0)
    assert p.labels.shape == (64, 64, 1) and set(np.unique(p.labels)) == set(range(8))
    area = np.pi * (0.08 * 64) ** 2
    for k in range(6):  # each tube is a disc of radius 0.08 size with its own values
        inside = p.labels == k + 2
        assert inside.sum() == pytest.approx(area, rel=0.1)
        assert np.all(p.maps["T2f"][inside] == TUBES[f"tube{k}"]["T2f"])
        assert np.all(p.maps["Rx"][inside] == APPARENT.defaults["Rx"])  # not in the table: the default
    B1 = p.maps["B1"][p.mask]
    assert B1.max() <= 1.0 and B1.min() == pytest.approx(0.8, abs=0.02)  # quadratic fall-off to the wall
    w = p.maps["omega0"][..., 0]
    np.testing.assert_allclose(w[p.mask[..., 0]].sum(), 0.0, atol=1e-6)  # antisymmetric gradient along x
    assert np.all(np.isnan(p.maps["T1"][~p.mask]))


@pytest.mark.parametrize("table, match", [
    ({k: v for k, v in TUBES.items() if k != "tube0"}, "six tubes"),
    (TUBES | {"tube5": {"T2": 0.05}}, "not in the apparent_t1"),
    (TUBES | {"tube5": {"T1": -1.0}}, "tube5"),
])
def test_bad_tube_tables(table, match):
    with pytest.raises(PhantomError, match=match):
        tube_phantom(table, APPARENT)


def test_brain_slice_through_the_basal_ganglia():
    labels, tissues, affine = brain_labels(72)
    assert labels.shape == (197, 233, 1) and affine[2, 3] == 0.0  # z = 0 mm in MNI space
    counts = {name: int((labels == k).sum()) for k, name in tissues.items()}
    assert all(counts[t] > 100 for t in ("caudate", "putamen", "pallidum", "thalamus")), counts
    assert counts["white_matter"] > 3000 and counts["grey_matter"] > 3000 and counts["csf"] > 300
    # left and right putamen sit symmetrically about the midline (x = 0 mm)
    x = (np.argwhere(labels[..., 0] == 5)[:, 0] * affine[0, 0] + affine[0, 3])
    assert (x < 0).sum() == pytest.approx((x > 0).sum(), rel=0.3)
    with pytest.raises(PhantomError, match="outside"):
        brain_labels(500)


def _fisp_setup():
    rng = np.random.default_rng(0)
    seq = FISPSequence(flip_angle=rng.uniform(0.1, 1.2, 40), TR=rng.uniform(8e-3, 15e-3, 40), TE=2e-3, TI=0.02,
                       inversion_efficiency=0.9, epg_states=41)
    signal_model = FISPSignalModel(seq, FISP)
    table = {"bath": {"T1": 2.5, "T2": 0.25}} | {f"t{k}": {"T1": 0.6 + 0.3 * k, "T2": 0.03 + 0.02 * k}
                                                  for k in range(6)}
    phantom = tube_phantom(table, FISP, size=24, B1_edge=1.0)
    signals = signal_model.signal(phantom.values()).numpy()
    return signal_model, phantom, svd_basis([signals], 10, seq.sha256)


def test_coefficient_image_is_the_projected_fingerprint_with_phase_and_noise(tmp_path):
    signal_model, phantom, basis = _fisp_setup()
    noiseless = coefficient_image(phantom, signal_model, basis, snr=1e12, seed=3)
    noisy = coefficient_image(phantom, signal_model, basis, snr=20, seed=3)
    assert noisy.shape == (24, 24, 1, 10) and np.all(noisy[~phantom.mask] == 0)
    # independent path: simulate one voxel directly and rotate by the same coil phase
    i, j = np.argwhere(phantom.mask[..., 0])[17]
    direct = basis.project(signal_model.signal({k: v[i, j] for k, v in phantom.maps.items()}).numpy())[0]
    phase = smooth_phase(phantom.labels.shape, 3)[i, j, 0]
    np.testing.assert_allclose(noiseless[i, j, 0], direct * np.exp(1j * phase), rtol=1e-5, atol=1e-7)
    residual = (noisy - noiseless)[phantom.mask]
    assert np.std(residual.real) == pytest.approx(1 / 20, rel=0.05)  # sigma = |M0| / snr per real channel
    assert np.std(residual.imag) == pytest.approx(1 / 20, rel=0.05)
    save_phantom(tmp_path / "p.h5", phantom, noisy, basis)
    loaded, image, attrs = load_phantom(tmp_path / "p.h5")
    assert attrs["basis_sha256"] == basis.sha256
    np.testing.assert_array_equal(image, noisy)
    assert loaded.tissues == phantom.tissues and np.array_equal(loaded.labels, phantom.labels)
    with pytest.raises(PhantomError, match="snr"):
        coefficient_image(phantom, signal_model, basis, snr=0, seed=3)


def test_time_series_components_give_each_voxels_fingerprint_times_m0():
    """Summed components equal M0 times a voxel's fingerprint simulated on its own (not truncated to the basis)."""
    signal_model, phantom, basis = _fisp_setup()
    images, temporal = time_series_components(phantom, signal_model, seed=3)
    assert len(images) <= 7 and temporal.shape[1] == basis.n_samples  # one component per distinct tissue at most
    for i, j in np.argwhere(phantom.mask[..., 0])[[0, 40, 200]]:
        direct = signal_model.signal({k: v[i, j] for k, v in phantom.maps.items()}).numpy()[0]
        M0 = np.exp(1j * smooth_phase(phantom.labels.shape, 3)[i, j, 0])
        np.testing.assert_allclose(images[:, i, j, 0] @ temporal, M0 * direct, rtol=0,
                                   atol=1e-6 * np.abs(direct).max())
    assert np.all(images[:, ~phantom.mask] == 0)
    # the noiseless coefficient image is these time series projected on the basis (c = U^H s)
    projected = np.einsum("qn,qt,tr->nr", images[:, phantom.mask], temporal, basis.U.conj())
    noiseless = noiseless_coefficients(phantom, signal_model, basis, seed=3)
    np.testing.assert_allclose(noiseless[phantom.mask], projected, rtol=0, atol=1e-6 * np.abs(projected).max())


def test_acquired_slice_is_the_explicit_dft_of_each_voxels_signal(tmp_path):
    """k-space samples against an explicit sum over voxels of coil * M0 * fingerprint (each simulated on its own)."""
    signal_model, phantom, basis = _fisp_setup()
    images, temporal = time_series_components(phantom, signal_model, seed=3)
    ks = acquire_slice(images, temporal, basis.sequence_sha256, spokes=2, coils=3, snr=1e12, seed=0)
    save_kspace(tmp_path / "k.h5", ks)
    ks = load_kspace(tmp_path / "k.h5")
    assert ks.data.shape == (3, basis.n_samples, 2, 48) and ks.sequence_sha256 == basis.sequence_sha256
    voxels = np.argwhere(phantom.mask[..., 0])
    signals = signal_model.signal(phantom.values()).numpy()  # (n, Ns), voxels in C order
    M0 = np.exp(1j * smooth_phase(phantom.labels.shape, 3))[phantom.mask]
    positions = voxels - np.array(phantom.labels.shape[:2]) // 2
    for coil, frame, spoke, sample in [(0, 0, 0, 24), (1, 20, 1, 5), (2, basis.n_samples - 1, 0, 40)]:
        k = ks.trajectory[frame, spoke, sample]
        sensitivity = ks.coil_maps[coil][phantom.mask[..., 0]]
        expected = np.sum(sensitivity * M0 * signals[:, frame] * np.exp(-1j * positions @ k)) / np.sqrt(24 * 24)
        assert ks.data[coil, frame, spoke, sample] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    with pytest.raises(AcquisitionError, match="one slice"):
        acquire_slice(np.ones((1, 8, 8, 2)), temporal[:1], "", coils=1)
    with pytest.raises(AcquisitionError, match="readout_oversampling"):
        acquire_slice(images, temporal, "", readout_oversampling=0.5)


def test_dictionary_maps_recover_the_tubes_and_crb_maps_match_the_crb(tmp_path):
    signal_model, phantom, basis = _fisp_setup()
    space = ParameterSpace.from_config({"parameterization": "fisp", "parameters": {
        "T1": {"dist": "uniform", "lower": 0.3, "upper": 3.0}, "T2": {"dist": "uniform", "lower": 0.02, "upper": 0.3},
        "B1": 1.0}})
    axes = {"T1": np.array([0.6, 0.9, 1.2, 1.5, 1.8, 2.1, 2.5]), "T2": np.array([0.03, 0.05, 0.07, 0.09, 0.11,
                                                                                 0.13, 0.25])}
    dm = MatchingEstimator.from_grid(signal_model, basis, space, axes, ("T1", "T2"))
    image = coefficient_image(phantom, signal_model, basis, snr=1e6, seed=1)
    image[3, 12, 0, 2] = np.nan  # a corrupt voxel inside the bath is left out, not propagated
    assert phantom.mask[3, 12, 0]
    voxels = VoxelData(image[phantom.mask], phantom.mask, {"basis_sha256": basis.sha256})
    estimates = voxels.scatter(estimate_voxels(dm, voxels), np.nan)
    assert np.isnan(estimates[3, 12, 0]).all() and np.isnan(estimates[~phantom.mask]).all()
    ok = phantom.mask & ~np.isnan(estimates[..., 0])
    np.testing.assert_allclose(estimates[ok][:, 0], phantom.maps["T1"][ok])
    np.testing.assert_allclose(estimates[ok][:, 1], phantom.maps["T2"][ok])
    sqrt_crb = crb_image(signal_model, basis, estimates, ("T1", "T2"), phantom.mask, {"B1": 1.0}, sigma=0.02)
    i, j = np.argwhere(ok[..., 0])[5]
    s, jac = signal_model.simulate({"T1": estimates[i, j, 0, 0], "T2": estimates[i, j, 0, 1], "B1": 1.0}, FISP.names)
    U = torch.as_tensor(basis.U)
    fisher = torch.cat([s[..., None], 1j * s[..., None], jac], -1)[0]
    fisher = (U.conj().T @ fisher)
    F = torch.real(fisher.conj().T @ fisher).numpy()  # plain Fisher matrix of the coefficients, sigma = 1
    expected = np.sqrt(np.diag(np.linalg.inv(F))[2:4]) * 0.02
    np.testing.assert_allclose(sqrt_crb[i, j, 0], expected, rtol=1e-6)

    save_maps(tmp_path / "m.h5", estimates, dm.names, dm.units, phantom.affine, sqrt_crb)
    maps, units, affine = read_maps(tmp_path / "m.h5", "sqrt_crb")
    np.testing.assert_array_equal(maps["T2"], sqrt_crb[..., 1])
    write_nifti_map(tmp_path / "desc-matching_T2map.nii.gz", maps["T2"], affine, {"Units": units["T2"]})
    import nibabel as nib

    img = nib.load(tmp_path / "desc-matching_T2map.nii.gz")
    assert img.shape == (24, 24, 1) and np.all(np.isnan(np.asarray(img.dataobj)[~phantom.mask]))  # NaN stays NaN
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert json.loads((tmp_path / "desc-matching_T2map.json").read_text())["Units"] == "s"

    table = roi_table(phantom.labels, phantom.tissues, {"matching": {"T2": estimates[..., 1]}}, erode=True)
    eroded = table[table.tissue == "t0"]
    assert 0 < len(eroded) < (phantom.labels == 2).sum() and np.allclose(eroded.value, 0.03)


def test_pairs_against_a_sparse_reference_and_their_relative_differences():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=(9, 8, 2))
    truth = {"T1": rng.uniform(0.5, 2, labels.shape), "T2": rng.uniform(0.02, 0.2, labels.shape)}
    sparse = {k: np.where(rng.random(labels.shape) < 0.3, v * 1.1, np.nan) for k, v in truth.items()}
    shifted = {k: v * 0.8 for k, v in truth.items()}
    maps = {"truth": truth, "nlls": sparse, "mse": shifted}
    pairs = paired_table(roi_table(labels, {1: "a", 2: "b"}, maps), "nlls")
    for source, name, tissue in [("mse", "T2", "b"), ("truth", "T1", "a")]:
        got = pairs[(pairs.estimator == source) & (pairs.parameter == name) & (pairs.tissue == tissue)]
        inside = (labels == (1 if tissue == "a" else 2)) & np.isfinite(sparse[name])
        np.testing.assert_array_equal(got.value, maps[source][name][inside])  # the same voxels, in the same order
        np.testing.assert_array_equal(got.reference, sparse[name][inside])
    table = agreement(pairs).set_index(["estimator", "parameter"])
    np.testing.assert_allclose(table.median_rel_diff_pct.loc[("mse", "T1")], 100 * (0.8 / 1.1 - 1))
    np.testing.assert_allclose(table.median_abs_rel_diff_pct.loc[("truth", "T2")], 100 * (1 - 1 / 1.1))
    assert table.voxels.loc[("mse", "T1")] == ((labels > 0) & np.isfinite(sparse["T1"])).sum()


def test_tissue_bias_uses_interior_finite_voxels_and_compares_gaussian_with_recon():
    labels = np.zeros((12, 6, 1), dtype=np.int16)
    labels[:6], labels[6:] = 1, 2
    truth = {"T1": np.where(labels == 1, 1.0, 2.0), "m0s": np.where(labels == 1, 0.0, 0.1)}
    edge = (labels != tables.eroded(labels)) & (labels > 0)
    gaussian = {"nn": {"T1": np.where(edge, 99.0, truth["T1"] * 1.1), "m0s": truth["m0s"] + 0.01}}
    recon = {"nn": {"T1": np.where(labels == 2, np.nan, truth["T1"] * 0.9), "m0s": truth["m0s"] - 0.02}}
    table = tables.recon_bias_table(labels, {1: "a", 2: "b"}, truth, gaussian, recon).set_index(["tissue", "parameter"])
    np.testing.assert_allclose(table.loc[("a", "T1"), ["bias_gaussian", "bias_recon"]], [0.1, -0.1])  # edges left out
    np.testing.assert_allclose(table.loc[("a", "T1"), ["rel_bias_pct_gaussian", "rel_bias_change_pct"]], [10.0, -20.0])
    assert table.loc[("a", "T1"), "count_gaussian"] == (tables.eroded(labels) == 1).sum()
    assert table.loc[("b", "T1"), "count_gaussian"] > 0 and np.isnan(table.loc[("b", "T1"), "mean_recon"])  # kept, NaN
    assert np.isnan(table.loc[("a", "m0s"), "rel_bias_pct_gaussian"])  # truth 0: no relative bias
    np.testing.assert_allclose(table.loc[("b", "m0s"), ["bias_change", "rel_bias_pct_recon"]], [-0.03, -20.0])


def test_coefficient_errors_are_relative_rms_per_region_and_coefficient():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.array([0, 1, 2])[:, None, None], 4, axis=1)
    reference = rng.normal(size=(3, 4, 1, 2)) + 1j * rng.normal(size=(3, 4, 1, 2))
    scaled = reference * np.array([1.1, 0.7])  # 10 % and 30 % error on coefficients 1 and 2
    errors = tables.coefficient_errors({"x": scaled - reference}, reference, labels, {1: "a", 2: "b"}, 50.0)
    by = errors.set_index(["region", "coefficient"]).relative_error
    np.testing.assert_allclose([by[("a", "1")], by[("b", "2")], by[("all", "2")]], [0.1, 0.3, 0.3])
    ref = reference[labels > 0]
    expected = np.sqrt((np.abs(ref[:, 0]) ** 2 * 0.01 + np.abs(ref[:, 1]) ** 2 * 0.09).sum() / (np.abs(ref) ** 2).sum())
    np.testing.assert_allclose(by[("all", "all")], expected)
    # complex Gaussian noise of std 1/snr per real channel is 1 in units of 1/snr
    noise = rng.normal(scale=1 / 50, size=(3, 4000, 1, 2, 2)) @ np.array([1, 1j])
    labels = np.repeat(np.array([0, 1, 2])[:, None, None], 4000, axis=1)
    units = tables.coefficient_errors({"n": noise}, noise, labels, {1: "a", 2: "b"}, 50.0).rms_times_snr
    np.testing.assert_allclose(units, 1.0, atol=0.03)
