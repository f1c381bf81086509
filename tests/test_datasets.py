"""Noise model and noisy examples: distributions, CRB rescaling, reproducibility."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from conftest import short_sequence, toy_examples
from crbnet.basis import BasisError, dataset_basis
from crbnet.datasets import NoiseModel, generator, load_examples
from crbnet.signals.qmt import QMTSignalModel
from crbnet.parameters import ParameterError
from crbnet.simulation import write_dataset


@pytest.mark.parametrize("cfg, match", [
    ({}, "either"),
    ({"snr": [10, 50], "M0_magnitude": [0.1, 1], "sigma": 0.01}, "either"),
    ({"M0_magnitude": [0.1, 1]}, "either"),
    ({"snr": [50, 10]}, "snr"),
    ({"M0_magnitude": [0, 1], "sigma": 0.01}, "M0_magnitude"),
    ({"M0_magnitude": [0.1, 1], "sigma": -1}, "sigma"),
])
def test_noise_config_errors(cfg, match):
    with pytest.raises(ValueError, match=match):
        NoiseModel.from_config(cfg)


def test_draws_follow_the_configured_ranges():
    n = 20000
    M0, sigma = NoiseModel.from_config({"M0_magnitude": [0.1, 1.0], "sigma": 0.01}).draw(n, generator(0, "a"))
    assert M0.abs().min() >= 0.1 and M0.abs().max() <= 1.0 and torch.all(sigma == 0.01)
    assert M0.abs().mean().item() == pytest.approx(0.55, abs=0.01)
    assert M0.angle().std().item() == pytest.approx(2 * math.pi / math.sqrt(12), rel=0.03)  # uniform phase
    M0, sigma = NoiseModel.from_config({"snr": [10, 50]}).draw(n, generator(0, "a"))
    snr = M0.abs() / sigma
    assert snr.min() >= 10 - 1e-9 and snr.max() <= 50 + 1e-9 and snr.mean().item() == pytest.approx(30, abs=0.5)


def test_streams_are_reproducible_and_distinct():
    def draw(*key):
        return torch.rand(4, generator=generator(*key))

    assert torch.equal(draw(1, "train", 3), draw(1, "train", 3))
    assert not torch.equal(draw(1, "train", 3), draw(1, "train", 4))
    assert not torch.equal(draw(1, "train", 3), draw(1, "validation", 3))
    assert not torch.equal(draw(1, "train", 3), draw(2, "train", 3))


def test_noisy_examples_have_the_drawn_noise_and_rescaled_crbs():
    _, ex = toy_examples(n=256)
    M0, sigma = NoiseModel.from_config({"M0_magnitude": [0.1, 1.0], "sigma": 0.05}).draw(len(ex), generator(0, "n"))
    y, crb = ex.noisy(M0, sigma, generator(0, "noise"), realizations=50)
    assert y.shape == (50, *ex.coefficients.shape) and crb.shape == ex.crb.shape
    residual = y.to(torch.complex128) - M0[:, None] * ex.coefficients.to(torch.complex128)
    assert residual.real.std().item() == pytest.approx(0.05, rel=0.02)
    assert residual.imag.std().item() == pytest.approx(0.05, rel=0.02)
    assert abs(torch.mean(residual.real * residual.imag).item()) < 1e-4  # independent channels
    torch.testing.assert_close(crb, ex.crb * 0.05**2 / M0.abs()[:, None] ** 2)


def test_dataset_files_carry_coefficient_crbs(tmp_path, apparent_t1):
    signal_model = QMTSignalModel(short_sequence(24), apparent_t1)
    rng = np.random.default_rng(0)
    values = apparent_t1.complete({})
    values = {k: np.full(12, v) * rng.uniform(0.9, 1.1, 12) if k != "omega0" else rng.uniform(-50, 50, 12)
              for k, v in values.items()}
    write_dataset(tmp_path / "basis.h5", signal_model, values, crb=False)
    basis = dataset_basis(tmp_path / "basis.h5", 8)
    write_dataset(tmp_path / "train.h5", signal_model, values, basis=basis)
    ex = load_examples(tmp_path / "train.h5", basis, ["m0s", "T1"])
    assert ex.crb_domain == "coefficients" and ex.coefficients.shape == (12, 8)
    with pytest.raises(BasisError, match="no CRBs"):
        load_examples(tmp_path / "basis.h5", basis, ["m0s"])
    # compression cannot add information: the coefficient CRB bounds the fingerprint CRB from above
    with h5py.File(tmp_path / "train.h5") as f:
        assert np.all(f["crb_coefficients"][()] >= f["crb"][()] * (1 - 1e-9))
    other = dataset_basis(tmp_path / "basis.h5", 10)
    # another basis: the file's CRBs bound other data, so it is refused naming both bases (no silent fallback)
    with pytest.raises(BasisError, match=f"{other.sha256[:12]}.*{basis.sha256[:12]}"):
        load_examples(tmp_path / "train.h5", other, ["m0s"])
    with pytest.raises(ParameterError, match="R1f"):
        load_examples(tmp_path / "train.h5", basis, ["R1f"])
    foreign = QMTSignalModel(short_sequence(24, seed=1), apparent_t1)
    write_dataset(tmp_path / "foreign.h5", foreign, values, crb=False)
    with pytest.raises(BasisError, match="another sequence"):
        load_examples(tmp_path / "foreign.h5", basis, ["m0s"])
