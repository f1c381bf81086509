"""Acquisition and subspace reconstruction, against explicit non-uniform DFTs, closed forms and BART."""

import shutil

import numpy as np
import pytest
import torch

from crbnet.acquisition import (AcquisitionError, acquire, coil_sensitivities, estimate_coil_maps, nufft_adjoint,
                                nufft_forward, nyquist_spokes, radial_trajectory)
from crbnet.recon import (SubspaceNormal, adjoint_coefficients, conjugate_gradient, llr_threshold, object_phase,
                          reconstruct, reconstruct_bart, reconstruct_kspace)

SHAPE = (12, 10)


def nudft_matrix(points: np.ndarray, shape) -> np.ndarray:
    """Explicit (M, X*Y) matrix exp(-i k . n) / sqrt(X Y), n = index - N // 2."""
    n = np.stack(np.meshgrid(*[np.arange(s) - s // 2 for s in shape], indexing="ij"), axis=-1).reshape(-1, 2)
    return np.exp(-1j * points @ n.T) / np.sqrt(np.prod(shape))


def random_complex(rng, *shape):
    return rng.normal(size=shape) + 1j * rng.normal(size=shape)


def random_problem(seed: int, frames: int, spokes: int, readout: int, r: int, coils: int = 2):
    """rng, trajectory, a random orthonormal basis (frames, r), sensitivities and coefficient images (r, X, Y)."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(random_complex(rng, frames, r))[0]
    return (rng, radial_trajectory(frames, spokes, readout), U, coil_sensitivities(SHAPE, coils),
            random_complex(rng, r, *SHAPE))


def asymmetric_bart_problem(shape=SHAPE, r: int = 3):
    """Undersampled noiseless k-space KSpace (8 frames x 12 spokes, 4 coils) of smooth coefficient images
    asymmetric on both axes (an off-centre elliptic Gaussian with a phase ramp along both), with the basis U and the
    truth (r, X, Y). Smooth, because BART 0.8's NUFFT in pics is not periodic: it drops the part of its
    interpolation kernel that falls outside the oversampled grid, so its operator is wrong within about 1.5 grid
    points of the k-space edge and agrees with the exact one only for objects with little energy there."""
    from crbnet.acquisition import KSpace

    rng = np.random.default_rng(7)
    U = np.linalg.qr(random_complex(rng, 8, r))[0]
    traj, maps = radial_trajectory(8, 12, 2 * max(shape)), coil_sensitivities(shape, 4)
    x, y = disc_grid(shape)
    truth = np.stack([(k + 1) * np.exp(-(x - 0.25) ** 2 / 0.5 - (y + 0.15) ** 2 / 0.3 + 1j * k * (x - 0.5 * y))
                      for k in range(r)])
    return KSpace(acquire(truth, U.T, traj, maps, sigma=0.0, seed=0), traj, maps, 0.0, "s"), U, truth


def smooth_object_kspace(phase: np.ndarray, frames: int = 40, shape=(24, 24)):
    """KSpace (2 spokes per frame, 6 coils, sigma 1e-3) of a disc with the given phase (X, Y) under a slowly varying
    two-function temporal basis U (as a fingerprint's; random weights per frame are not), the disc and U."""
    from crbnet.acquisition import KSpace

    x, y = disc_grid(shape)
    obj = np.where(x**2 + y**2 < 0.8, np.exp(1j * phase), 0)  # sharp edge
    t = np.arange(frames) / frames
    U = np.linalg.qr(np.stack([np.ones(frames), np.cos(2 * np.pi * t)], axis=1).astype(complex))[0]
    maps = coil_sensitivities(shape, 6)
    traj = radial_trajectory(frames, 2, 48)
    return KSpace(acquire(np.stack([obj, 0.3 * obj]), U.T, traj, maps, sigma=1e-3, seed=0), traj, maps, 1e-3, "s"), obj, U


def disc_grid(shape=(24, 24)):
    """Coordinates (X, Y) in [-1, 1] of a grid."""
    return np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")


def test_nufft_matches_explicit_dft_and_is_adjoint():
    rng = np.random.default_rng(0)
    points = radial_trajectory(3, 2, 16).reshape(-1, 2)
    image = random_complex(rng, *SHAPE)
    E = nudft_matrix(points, SHAPE)
    y = nufft_forward(image, points)
    np.testing.assert_allclose(y, E @ image.ravel(), rtol=0, atol=1e-6 * np.abs(y).max())
    data = random_complex(rng, len(points))
    back = nufft_adjoint(data, points, SHAPE)
    np.testing.assert_allclose(back.ravel(), E.conj().T @ data, rtol=0, atol=1e-6 * np.abs(back).max())


def test_coil_sensitivities_sum_of_squares_is_one():
    maps = coil_sensitivities(SHAPE, 4)
    np.testing.assert_allclose((np.abs(maps) ** 2).sum(axis=0), 1.0, atol=1e-12)
    assert np.ptp(np.abs(maps[0])) > 0.1  # not flat: coils see different parts of the image


@pytest.mark.parametrize("shape", [SHAPE, (11, 9), (13, 16)])
def test_toeplitz_normal_operator_equals_explicit_one(shape):
    """On even and odd grids (the brain slice is 197 x 233; mrpro 0.261015's Toeplitz kernel is 45-52 % off on odd
    grids, benchmarks/mrpro_normal.py)."""
    frames, spokes, readout = 5, 2, 14
    rng, traj, U, _, _ = random_problem(1, frames, spokes, readout, r=3)
    maps, c = coil_sensitivities(shape, 2), random_complex(rng, 3, *shape)
    normal = SubspaceNormal.build(traj, U, maps, torch.device("cpu"))
    got = normal(torch.as_tensor(c.astype(np.complex64))).numpy() * normal.scale
    # explicit: per coil and frame, E_t^H E_t applied to the frame image sum_l U[t, l] S c_l, projected back on U_k
    expected = np.zeros_like(c)
    for s in maps:
        for t in range(frames):
            E = nudft_matrix(traj[t].reshape(-1, 2), shape)
            frame = np.einsum("l,lxy->xy", U[t], s * c).ravel()
            back = (s.conj().ravel() * (E.conj().T @ (E @ frame))).reshape(shape)
            expected += U[t].conj()[:, None, None] * back
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert normal.scale == pytest.approx(spokes * readout / np.prod(shape), rel=1e-5)


def test_fully_sampled_noiseless_reconstruction_equals_the_projection():
    """Frames sampled beyond Nyquist out to the corners of k-space (radius sqrt(2) pi), noiseless, time series in the
    basis: CG gives the coefficients (<= 1e-3). Radial spokes out to pi alone leave the corners unsampled."""
    rng = np.random.default_rng(2)
    frames, r = 6, 3
    spokes = int(np.ceil(np.sqrt(2) * nyquist_spokes(SHAPE)))
    traj = np.sqrt(2) * radial_trajectory(frames, spokes, 3 * max(SHAPE))
    U = np.linalg.qr(random_complex(rng, frames, r))[0]
    truth = random_complex(rng, r, *SHAPE)
    maps = coil_sensitivities(SHAPE, 3)
    y = acquire(truth, U.T, traj, maps, sigma=0.0, seed=0)
    c = reconstruct(y, traj, U, maps, lam=0.0, iterations=40, cg_iterations=5)
    error = np.linalg.norm(c.transpose(2, 0, 1) - truth) / np.linalg.norm(truth)
    assert error <= 1e-3


def test_adjoint_coefficients_are_the_adjoint_of_acquire():
    frames, spokes, readout = 4, 1, 12
    rng, traj, U, maps, c = random_problem(3, frames, spokes, readout, r=2)
    y = random_complex(rng, 2, frames, spokes, readout)
    forward = acquire(c, U.T, traj, maps, sigma=0.0, seed=0)
    lhs = np.vdot(forward, y)
    rhs = np.vdot(c, adjoint_coefficients(y, traj, U, maps))
    assert lhs == pytest.approx(rhs, rel=1e-5)


def test_llr_threshold_shrinks_singular_values_of_each_block():
    rng = np.random.default_rng(4)
    c = torch.as_tensor(random_complex(rng, 3, 8, 8).astype(np.complex64))
    np.testing.assert_allclose(llr_threshold(c, 0.0, 4, (1, 2)).numpy(), c.numpy(), atol=1e-5)
    out = llr_threshold(c, 1.0, 4)
    block = c[:, :4, :4].reshape(3, 16).T
    expected = np.clip(np.linalg.svd(block.numpy(), compute_uv=False) - 1.0, 0, None)
    got = np.linalg.svd(out[:, :4, :4].reshape(3, 16).T.numpy(), compute_uv=False)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert torch.count_nonzero(llr_threshold(c, 1e6, 4)) == 0


def test_regularized_reconstruction_of_undersampled_noisy_data_beats_plain_cg():
    rng = np.random.default_rng(5)
    frames, r = 30, 2
    traj = radial_trajectory(frames, 1, 2 * max(SHAPE))
    U = np.linalg.qr(random_complex(rng, frames, r))[0]
    truth = np.zeros((r, *SHAPE), dtype=complex)
    truth[:, 2:10, 2:8] = np.array([1.0, 0.3j])[:, None, None]  # piecewise constant, rank 1 per block
    maps = coil_sensitivities(SHAPE, 4)
    y = acquire(truth, U.T, traj, maps, sigma=0.05, seed=1)
    plain = reconstruct(y, traj, U, maps, lam=0.0, iterations=10, cg_iterations=5)
    regular = reconstruct(y, traj, U, maps, lam=0.2, iterations=20, cg_iterations=5, block=4)
    err = [np.linalg.norm(x.transpose(2, 0, 1) - truth) for x in (plain, regular)]
    assert err[1] < err[0]


@pytest.mark.parametrize("change, message", [
    (lambda kw: kw.update(kspace=np.full_like(kw["kspace"], np.nan)), "NaN"),
    (lambda kw: kw.update(U=kw["U"][:-1]), "time points"),
    (lambda kw: kw.update(coil_maps=coil_sensitivities(SHAPE, 3)), "coils"),
    (lambda kw: kw.update(lam=-1.0), ">= 0"),
])
def test_bad_input_names_the_problem(change, message):
    rng = np.random.default_rng(6)
    traj = radial_trajectory(4, 1, 8)
    kw = {"kspace": random_complex(rng, 2, 4, 1, 8), "trajectory": traj,
          "U": np.linalg.qr(random_complex(rng, 4, 2))[0], "coil_maps": coil_sensitivities(SHAPE, 2)}
    change(kw)
    with pytest.raises(AcquisitionError, match=message):
        reconstruct(**kw)


def test_acquire_refuses_coil_maps_of_another_shape():
    with pytest.raises(AcquisitionError, match="do not fit"):
        acquire(np.ones((1, *SHAPE)), np.ones((1, 2)), radial_trajectory(2, 1, 8), coil_sensitivities((8, 8), 2),
                0.0, 0)


@pytest.mark.skipif(shutil.which("bart") is None, reason="needs BART (Debian package bart)")
@pytest.mark.parametrize("shape", [(12, 10), (11, 9), (13, 16)])
def test_bart_pics_with_the_basis_agrees_with_ours(shape):
    """BART 0.8's ``pics -B`` (least squares) and our CG on the same undersampled data, even and odd axes (BART
    centres an odd axis elsewhere and its NUFFT is wrong there: reconstruct_bart pads it)."""
    ks, U, truth = asymmetric_bart_problem(shape)
    ours = reconstruct(ks.data, ks.trajectory, U, ks.coil_maps, iterations=40, cg_iterations=5)
    assert np.linalg.norm(ours - truth.transpose(1, 2, 0)) / np.linalg.norm(truth) < 1e-3
    bart = reconstruct_bart(ks.data, ks.trajectory, U, ks.coil_maps, iterations=50)
    assert bart.shape == ours.shape
    # no scale, flip, shift or conjugation between them
    assert np.linalg.norm(bart - ours) / np.linalg.norm(ours) < 0.01


@pytest.mark.skipif(shutil.which("bart") is None, reason="needs BART (Debian package bart)")
def test_bart_locally_low_rank_runs_and_shrinks_with_lambda():
    """lambda > 0 (ADMM, ``-m``; without it BART 0.8 aborts) on an odd grid: finite, near the truth for a small
    lambda, and a larger lambda shrinks the coefficient images."""
    ks, U, truth = asymmetric_bart_problem((11, 9))
    small, large = (reconstruct_bart(ks.data, ks.trajectory, U, ks.coil_maps, lam, 100, block=4) for lam in (0.01, 0.1))
    assert np.all(np.isfinite(small)) and np.all(np.isfinite(large))
    assert np.linalg.norm(small - truth.transpose(1, 2, 0)) / np.linalg.norm(truth) < 0.15
    assert np.linalg.norm(large) < np.linalg.norm(small)


def test_kspace_file_errors_name_the_problem(tmp_path):
    import h5py

    from crbnet.io.kspace import load_kspace
    from crbnet.io.voxels import DataError

    with pytest.raises(DataError, match="does not exist"):
        load_kspace(tmp_path / "none.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(DataError, match="trajectory, coil_maps"):
        load_kspace(tmp_path / "other.h5")


def test_estimated_coil_maps_are_the_true_ones_times_one_phase_per_voxel():
    """Sensitivities from the pooled low-resolution centre of undersampled frames of a smooth object with its own
    phase: |sum_c est conj(true)| = 1 (the same maps up to a voxel's phase) inside the object, and that phase is the
    object's."""
    x, y = disc_grid()
    inside = x**2 + y**2 < 0.6
    ks, obj, _ = smooth_object_kspace(0.8 * x - 0.5 * y)
    maps, traj, y_k = ks.coil_maps, ks.trajectory, ks.data
    estimated = estimate_coil_maps(y_k, traj, x.shape, radius=1.0)  # about 6 voxels resolution on this small grid
    np.testing.assert_allclose((np.abs(estimated) ** 2).sum(axis=0), 1.0, atol=1e-9)
    coherence = np.abs((estimated * maps.conj()).sum(axis=0))
    assert coherence[inside].min() > 0.98
    # the common phase is the object's phase (times the frames' mean signal, one constant), not the coils'
    offset = object_phase(estimated, maps) - np.angle(obj)
    spread = np.angle(np.exp(1j * (offset - offset[12, 12])))
    assert np.abs(spread[inside]).max() < 0.2
    with pytest.raises(AcquisitionError, match="calibration radius"):
        estimate_coil_maps(y_k, traj, x.shape, radius=0.0)


def test_object_phase_recovers_a_phase_put_on_the_maps():
    maps = coil_sensitivities(SHAPE, 3)
    phase = np.random.default_rng(9).uniform(-3, 3, SHAPE)
    np.testing.assert_allclose(object_phase(maps * np.exp(1j * phase), maps), phase, atol=1e-12)


def test_reconstruct_kspace_refuses_another_sequence_and_unknown_settings():
    from crbnet.acquisition import KSpace
    from crbnet.basis import Basis

    rng = np.random.default_rng(10)
    traj = radial_trajectory(4, 1, 8)
    ks = KSpace(random_complex(rng, 2, 4, 1, 8), traj, coil_sensitivities(SHAPE, 2), 0.1, "abc")
    basis = Basis(np.linalg.qr(random_complex(rng, 4, 2))[0], np.ones(2), "other")
    with pytest.raises(AcquisitionError, match="another sequence"):
        reconstruct_kspace(ks, basis)
    with pytest.raises(AcquisitionError, match="engine"):
        reconstruct_kspace(ks, Basis(basis.U, basis.spectrum, "abc"), engine="gpu")


def test_reconstruction_with_estimated_maps_aligned_by_object_phase_is_that_with_the_true_maps():
    """Estimated maps carry the object's phase, which the coefficients then lose; multiplying by exp(i object_phase)
    gives back the reconstruction with the true maps (and without it the two differ by far more)."""
    from crbnet.basis import Basis

    x, y = disc_grid()
    kspace, _, U = smooth_object_kspace(2.0 * x - 1.0 * y + 1.0)
    maps = kspace.coil_maps
    basis = Basis(U, np.ones(2), "s")
    given, _ = reconstruct_kspace(kspace, basis, "given", iterations=8)
    estimated, est_maps = reconstruct_kspace(kspace, basis, "estimated", calibration_radius=1.0, iterations=8)
    aligned = estimated * np.exp(1j * object_phase(est_maps, maps))[..., None, None]
    inside = x**2 + y**2 < 0.6
    error = np.linalg.norm((aligned - given)[inside]) / np.linalg.norm(given[inside])
    unaligned = np.linalg.norm((estimated - given)[inside]) / np.linalg.norm(given[inside])
    assert error < 0.05 and unaligned > 0.5


@pytest.mark.skipif(shutil.which("bart") is None, reason="needs BART (Debian package bart)")
def test_the_workflow_engines_agree():
    """reconstruct_kspace with engine bart (the workflow's ``recon: {engine: bart}``) against engine torch, on an odd
    grid."""
    from crbnet.basis import Basis

    r = 3
    kspace, U, _ = asymmetric_bart_problem((11, 9), r)
    basis = Basis(U, np.ones(r), "s")
    ours, _ = reconstruct_kspace(kspace, basis, "given", iterations=8)
    bart, _ = reconstruct_kspace(kspace, basis, "given", engine="bart", iterations=10)
    assert bart.shape == ours.shape == (11, 9, 1, r)
    assert np.linalg.norm(bart - ours) / np.linalg.norm(ours) < 0.01


def test_a_well_conditioned_noise_only_reconstruction_has_std_one_over_snr():
    """Every frame fully sampled on the Cartesian grid (F unitary), one coil of unit sensitivity, an orthonormal
    basis: A^H A = I, so the reconstruction of the acquisition's noise alone (acquisition_noise at noise_sigma's
    level) has std 1/snr per real channel. Checks the noise level, the noise draw and the reconstruction's scale."""
    from crbnet.acquisition import acquisition_noise, noise_sigma

    shape, frames, r, snr = (12, 10), 6, 3, 40.0
    grid = np.stack(np.meshgrid(*[2 * np.pi * (np.arange(n) - n // 2) / n for n in shape], indexing="ij"), -1)
    traj = np.broadcast_to(grid, (frames, *grid.shape)).copy()  # (frames, "spokes" = X, readout = Y, 2)
    U = np.linalg.qr(random_complex(np.random.default_rng(0), frames, r))[0]
    maps = np.ones((1, *shape), dtype=complex)
    sigma = noise_sigma(snr, np.prod(shape), shape)
    stds = []
    for seed in range(8):
        noise = acquisition_noise((1, frames, *shape), sigma, seed)
        c = reconstruct(noise, traj, U, maps, iterations=2, cg_iterations=5)
        stds.append(np.sqrt(np.mean(np.abs(c) ** 2) / 2))
    assert np.mean(stds) * snr == pytest.approx(1.0, rel=0.05)


def test_acquire_adds_exactly_the_acquisition_noise():
    """acquire's noisy k-space minus acquisition_noise of the same seed is the noiseless acquisition: the
    reconstruct rule's noiseless and noise-only parts add up to what was acquired."""
    from crbnet.acquisition import acquisition_noise

    _, traj, U, maps, truth = random_problem(1, 4, 3, 16, 2)
    noisy, clean = (acquire(truth, U.T, traj, maps, sigma=s, seed=5) for s in (0.1, 0.0))
    np.testing.assert_allclose(noisy - acquisition_noise(noisy.shape, 0.1, 5), clean, atol=1e-6)


@pytest.mark.parametrize("shape", [(12, 10), (11, 9)])
@pytest.mark.parametrize("factor", [2, 3])
def test_finer_grid_data_are_the_voxel_models_times_the_sub_voxel_kernel(shape, factor):
    """k-space simulated on a grid ``factor`` times finer (each voxel split into equal sub-voxels at their own
    positions) equals the one-point-per-voxel NUFFT times the closed-form sum over the sub-voxel offsets
    (a - (f - 1) / 2) / f of exp(-i k offset) / f on each axis: centred, no shift, on even and odd axes."""
    from crbnet.acquisition import finer_grid_nufft

    rng = np.random.default_rng(0)
    image, points = random_complex(rng, *shape), rng.uniform(-np.pi, np.pi, size=(300, 2))
    offsets = (np.arange(factor) - (factor - 1) / 2) / factor
    kernel = np.prod([np.exp(-1j * points[:, i, None] * offsets).mean(axis=1) for i in (0, 1)], axis=0)
    coarse = nufft_forward(image, points)
    np.testing.assert_allclose(finer_grid_nufft(image, points, factor), coarse * kernel, atol=1e-6 * np.abs(coarse).max())
    assert np.abs(kernel).min() < 0.7  # the models differ where it matters: near the edge of k-space


def test_conjugate_gradient_shows_each_iterate_to_its_callback():
    """The callback sees steps 1..K, the last iterate is the one returned, and the residual falls (a 2x2 SPD
    system is solved exactly in 2 steps)."""
    A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.complex128)
    b = torch.tensor([1.0, 2.0], dtype=torch.complex128)
    seen = []
    x = conjugate_gradient(lambda v: A @ v, b, torch.zeros_like(b), 2, tol=0.0,
                           callback=lambda k, xk: seen.append((k, xk.clone())))
    assert [k for k, _ in seen] == [1, 2]
    assert torch.equal(seen[-1][1], x)
    np.testing.assert_allclose((A @ seen[1][1]).numpy(), b.numpy(), atol=1e-12)


def test_checkpoints_follow_cg_beyond_its_steps_and_keep_its_own_result():
    """With checkpoints past the reconstruction's step count, CG runs on to the last one, each checkpoint sees the
    iterate of a plain reconstruction of that many steps, and the result is still the one of its own count."""
    _, traj, U, maps, truth = random_problem(2, 4, 3, 16, 2)
    kspace = acquire(truth, U.T, traj, maps, sigma=0.05, seed=1)
    seen = {}
    result = reconstruct(kspace, traj, U, maps, iterations=2, cg_iterations=3, checkpoints=[2, 9],
                         on_checkpoint=lambda k, images: seen.update({k: images}))
    assert sorted(seen) == [2, 9]
    np.testing.assert_array_equal(result, reconstruct(kspace, traj, U, maps, iterations=2, cg_iterations=3))
    for k, images in seen.items():
        np.testing.assert_array_equal(images, reconstruct(kspace, traj, U, maps, iterations=k, cg_iterations=1))
    assert not np.allclose(seen[9], result)
    with pytest.raises(AcquisitionError, match="plain CG"):
        reconstruct(kspace, traj, U, maps, lam=0.1, checkpoints=[3])


def test_checkpoints_after_cg_converged_get_its_final_iterate():
    """A fully sampled, well-conditioned problem converges in a few steps: later checkpoints still get an image,
    the converged one."""
    shape, frames, r = (8, 6), 4, 2
    grid = np.stack(np.meshgrid(*[2 * np.pi * (np.arange(n) - n // 2) / n for n in shape], indexing="ij"), -1)
    traj = np.broadcast_to(grid, (frames, *grid.shape)).copy()
    U = np.linalg.qr(random_complex(np.random.default_rng(1), frames, r))[0]
    data = random_complex(np.random.default_rng(2), 1, frames, *shape)
    seen = {}
    result = reconstruct(data, traj, U, np.ones((1, *shape), dtype=complex), iterations=1, cg_iterations=2,
                         checkpoints=[1, 500], on_checkpoint=lambda k, images: seen.update({k: images}))
    assert sorted(seen) == [1, 500]
    np.testing.assert_allclose(seen[500], result, atol=1e-6)


def test_error_budget_splits_the_error_and_follows_it_over_steps():
    """error_budget on a smooth object: its reconstruction is reconstruct_kspace's; the recon_noise_only source is
    the reconstruction of the noise alone (zero noise: zero error); the curve has a row per source, checkpoint and
    coefficient, and its step-count row equals the error table's; with locally low rank configured, an llr row.
    With a regularized recon the curve comes from CG runs of their own (same checkpoints)."""
    from dataclasses import replace

    from crbnet.basis import Basis
    from crbnet.recon import error_budget

    x, y = disc_grid()
    kspace, _, U = smooth_object_kspace(2.0 * x - 1.0 * y + 1.0)
    basis = Basis(U, np.ones(2), "s")
    labels = ((x**2 + y**2 < 0.6).astype(int))[..., None]
    clean, _ = reconstruct_kspace(kspace, basis, "given", iterations=50, cg_iterations=1)
    rng = np.random.default_rng(3)
    noise = (0.02 * random_complex(rng, *kspace.data.shape)).astype(np.complex64)
    noisy = replace(kspace, data=kspace.data + noise)
    options = {"engine": "torch", "lam": 0.0, "iterations": 2, "cg_iterations": 4, "block": 4, "seed": 0}
    curve = {"steps": [2, 8, 16], "lambdas": [0.01], "admm": 2}
    image, errors, table = error_budget(noisy, basis, noise, clean, labels, {1: "disc"}, 50.0, options, curve, "given")
    np.testing.assert_array_equal(image, reconstruct_kspace(noisy, basis, "given", **options)[0])
    cg = table[table.method == "cg"]
    assert len(cg) == 3 * 3 * 3 and set(cg.source) == {"recon", "recon_noiseless", "recon_noise_only"}
    at = cg[(cg.steps == 8) & (cg.coefficient == "all")].set_index("source").relative_error
    mine = errors[(errors.region == "all") & (errors.coefficient == "all")].set_index("source").relative_error
    for source in at.index:
        assert at[source] == pytest.approx(mine[source], rel=1e-6)
    assert mine["recon_noise_only"] > 0.001 and list(table[table.method == "llr"]["lambda"].unique()) == [0.01]
    _, zero, _ = error_budget(kspace, basis, np.zeros_like(noise), clean, labels, {1: "disc"}, 50.0, options, curve,
                              "given")
    assert zero.set_index(["source", "region", "coefficient"]).loc[("recon_noise_only", "all", "all"),
                                                                   "relative_error"] == 0
    _, _, regularized = error_budget(noisy, basis, noise, clean, labels, {1: "disc"}, 50.0,
                                     options | {"lam": 0.01}, curve | {"lambdas": []}, "given")
    np.testing.assert_allclose(regularized.relative_error, table[table.method == "cg"].relative_error.to_numpy(),
                               rtol=1e-5)
