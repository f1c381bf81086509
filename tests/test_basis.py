"""SVD basis against numpy's SVD, projection, and the invariances of the input normalizations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from crbnet.basis import Basis, BasisError, dataset_basis, input_size, normalize, svd_basis
from crbnet.io.atomic import atomic_hdf5


def _low_rank(n=300, ns=40, k=5, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, k)) + 1j * rng.normal(size=(n, k))
    b = rng.normal(size=(k, ns)) + 1j * rng.normal(size=(k, ns))
    return a @ b


def test_basis_spans_the_leading_singular_subspace():
    s = _low_rank() + 1e-3 * _low_rank(k=40, seed=1)
    basis = svd_basis([s[:100], s[100:]], 5)  # chunked accumulation
    u, sv, _ = np.linalg.svd(s.T, full_matrices=False)
    np.testing.assert_allclose(basis.U.conj().T @ basis.U, np.eye(5), atol=1e-12)
    # same subspace: the principal angles are zero
    np.testing.assert_allclose(np.linalg.svd(u[:, :5].conj().T @ basis.U, compute_uv=False), 1.0, atol=1e-10)
    np.testing.assert_allclose(basis.spectrum[:10], sv[:10] ** 2, rtol=1e-9)
    assert basis.energy == pytest.approx((sv[:5] ** 2).sum() / (sv**2).sum(), rel=1e-12)


def test_exact_rank_reconstructs_and_is_order_independent():
    s = _low_rank()
    basis = svd_basis([s], 5)
    assert basis.energy == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(basis.project(s) @ basis.U.T, s, atol=1e-9)
    shuffled = svd_basis([s[::-1][:150], s[::-1][150:]], 5)
    np.testing.assert_allclose(shuffled.U, basis.U, atol=1e-9)  # phase convention makes it unique


def test_projection_of_torch_and_numpy_agree_and_checks_length():
    s = _low_rank()
    basis = svd_basis([s], 3)
    np.testing.assert_allclose(basis.project(torch.as_tensor(s)).numpy(), basis.project(s), atol=1e-12)
    with pytest.raises(BasisError, match="40"):
        basis.project(s[:, :39])
    with pytest.raises(BasisError, match="rank"):
        svd_basis([s], 41)


def test_save_load_and_dataset_basis(tmp_path):
    s = _low_rank().astype(np.complex64)
    with atomic_hdf5(tmp_path / "train.h5") as f:
        f.create_dataset("signals", data=s)
        f.attrs["sequence_sha256"] = "abc"
    basis = dataset_basis(tmp_path / "train.h5", 4, chunk=64)
    basis.save(tmp_path / "basis.h5")
    again = Basis.load(tmp_path / "basis.h5")
    assert again.sha256 == basis.sha256 and again.sequence_sha256 == "abc" and again.rank == 4


@pytest.fixture
def coefficients():
    g = torch.Generator().manual_seed(0)
    return torch.complex(torch.randn(64, 6, generator=g), torch.randn(64, 6, generator=g))


def test_unit_norm_inputs(coefficients):
    x = normalize(coefficients, "unit_norm")
    assert x.shape == (64, input_size(6, "unit_norm"))
    torch.testing.assert_close(torch.linalg.vector_norm(x, dim=1), torch.ones(64))
    torch.testing.assert_close(normalize(3.7 * coefficients, "unit_norm"), x)  # |M0| drops out
    assert not torch.allclose(normalize(1j * coefficients, "unit_norm"), x)  # the phase does not


def test_first_coefficient_inputs_remove_complex_scale(coefficients):
    x = normalize(coefficients, "first_coefficient")
    assert x.shape == (64, input_size(6, "first_coefficient"))
    torch.testing.assert_close(normalize((0.3 - 2j) * coefficients, "first_coefficient"), x, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize(coefficients, "l1")


def test_bart_export_reads_back_column_major(tmp_path):
    """write_cfl against a reader written from BART's format description: complex64 little-endian, first index
    fastest, dimensions padded to 16 in the header."""
    from crbnet.io.cfl import write_cfl

    rng = np.random.default_rng(0)
    U = (rng.normal(size=(7, 3)) + 1j * rng.normal(size=(7, 3))).reshape(1, 1, 1, 1, 1, 7, 3)
    write_cfl(tmp_path / "basis", U)
    lines = (tmp_path / "basis.hdr").read_text().splitlines()
    assert lines[0] == "# Dimensions"
    dims = [int(d) for d in lines[1].split()]
    assert dims == [1, 1, 1, 1, 1, 7, 3] + [1] * 9
    raw = np.fromfile(tmp_path / "basis.cfl", dtype="<c8")
    assert raw.size == 21
    # element (t, k) sits at offset t + 7 k (column-major)
    for t, k in ((0, 0), (6, 0), (2, 1), (6, 2)):
        assert raw[t + 7 * k] == np.complex64(U[0, 0, 0, 0, 0, t, k])
