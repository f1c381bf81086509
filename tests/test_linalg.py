"""Dual-stack algebra against independent references: scipy's expm and expm_frechet, and block-triangular
products [[X, X'], [0, X]] whose upper-right block carries the derivative of a product."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from crbnet import linalg


def _dual(rng: np.random.Generator, shape: tuple[int, ...], tangents: int, n: int) -> torch.Tensor:
    return torch.as_tensor(rng.normal(size=(1 + tangents, *shape, n, n)))


def test_dexpm_matches_scipy_over_several_chunks_and_norms(monkeypatch):
    monkeypatch.setattr(linalg, "_CHUNK_BYTES", 8 * 36 * 3 * 50)  # 50 matrices a chunk: 8 chunks below
    rng = np.random.default_rng(0)
    x = _dual(rng, (4, 100), 2, 6)
    x[0] *= torch.as_tensor(np.geomspace(1e-3, 20, 400).reshape(4, 100, 1, 1))  # each chunk squares differently
    out = linalg.dexpm(x).numpy()
    for b, m in [(0, 0), (1, 37), (2, 60), (3, 99)]:
        value = x[0, b, m].numpy()
        np.testing.assert_allclose(out[0, b, m], scipy.linalg.expm(value), rtol=1e-11, atol=1e-12)
        for p in (1, 2):
            frechet = scipy.linalg.expm_frechet(value, x[p, b, m].numpy(), compute_expm=False)
            scale = np.abs(frechet).max()
            np.testing.assert_allclose(out[p, b, m] / scale, frechet / scale, atol=1e-11)


@pytest.mark.parametrize("n", [1, 2, 9, 10, 37])
def test_dcumprod_matches_block_triangular_products(n):
    rng = np.random.default_rng(n)
    x = _dual(rng, (3, n), 2, 5) * 0.5
    out = linalg.dcumprod(x).numpy()
    assert out.shape == x.shape
    for b in range(3):
        for p in (1, 2):
            total = np.eye(10)
            for i in range(n):
                step = np.block([[x[0, b, i].numpy(), x[p, b, i].numpy()], [np.zeros((5, 5)), x[0, b, i].numpy()]])
                total = step @ total
                np.testing.assert_allclose(out[0, b, i], total[:5, :5], rtol=1e-12, atol=1e-12)
                np.testing.assert_allclose(out[p, b, i], total[:5, 5:], rtol=1e-12, atol=1e-12)
