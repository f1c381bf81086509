"""Model files, inference paths, Monte-Carlo evaluation and the ``crbnet fit`` command."""

from __future__ import annotations

import json

import h5py
import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import toy_examples
from crbnet.basis import BasisError, svd_basis
from crbnet.cli import main
from crbnet.estimator import Estimator, ModelError, NetworkEstimator
from crbnet.evaluation import monte_carlo
from crbnet.io.atomic import atomic_hdf5
from crbnet.tables import summarize
from crbnet.training import TrainConfig, build_estimator, train

CFG = TrainConfig.from_mapping({"estimate": ["R2f", "omega0"], "hidden": [32, 64, 32, 8], "epochs": 5,
                                "batch_size": 64, "lr": 3e-3, "noise": {"snr": [30, 100]}, "seed": 1})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    basis, ex = toy_examples(n=640)
    est = build_estimator(ex, basis, CFG)
    train(est, ex.subset(slice(0, 512)), ex.subset(slice(512, None)), CFG, torch.device("cpu"), progress=False)
    path = tmp_path_factory.mktemp("model") / "crb.pt"
    est.save(path)
    return path, est, ex


def test_model_file_round_trip(trained):
    path, est, ex = trained
    loaded = NetworkEstimator.load(path)
    assert isinstance(loaded, Estimator)
    c = ex.coefficients.numpy()[:50]
    np.testing.assert_array_equal(loaded.predict(c), est.predict(c))
    assert loaded.names == ("R2f", "omega0") and loaded.units == ("1/s", "rad/s")
    assert loaded.basis.sha256 == est.basis.sha256 and loaded.metadata["training"]["loss"] == "crb"


def test_fingerprints_and_coefficients_give_the_same_estimates(trained):
    _, est, ex = trained
    c = ex.coefficients.numpy()[:50]
    fp = c.astype(np.complex128) @ est.basis.U.T  # back to the time domain
    np.testing.assert_allclose(est.predict(fp), est.predict(c), rtol=1e-4, atol=1e-4)
    with torch.no_grad():  # the folded inference network agrees with the trained one
        from crbnet.basis import normalize
        direct = est.net.eval()(normalize(torch.as_tensor(c), "unit_norm")).double().numpy()
    np.testing.assert_allclose(est.predict(c), direct, rtol=1e-4, atol=1e-4)


def test_bf16_inference_is_close(trained, monkeypatch):
    monkeypatch.setattr("crbnet.devices.bf16_native", lambda device: True)  # also on AVX2-only CPUs
    _, est, ex = trained
    c = ex.coefficients.numpy()
    diff = np.abs(est.predict(c, precision="bf16") - est.predict(c))
    spread = est.predict(c).std(axis=0)
    assert np.all(np.median(diff, axis=0) < 0.02 * spread)


def test_bad_inputs_are_named(trained, tmp_path):
    path, est, _ = trained
    with pytest.raises(BasisError, match="expected 4 coefficients or 32-sample"):
        est.predict(np.ones((3, 7), dtype=np.complex64))
    with pytest.raises(ModelError, match="complex"):
        est.predict(np.ones((3, 4)))
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(ModelError, match="not a crbnet model"):
        NetworkEstimator.load(tmp_path / "junk.pt")


def test_monte_carlo_of_a_constant_estimator(trained):
    """A network that ignores its input has zero variance and bias = constant - truth, exactly."""
    _, est, ex = trained
    const = NetworkEstimator.load(trained[0])
    with torch.no_grad():
        const.net.head.weight.zero_()
        const.net.head.bias.zero_()
    table = monte_carlo(const, ex.subset(slice(0, 20)), snr=40.0, realizations=30, seed=0, rows_per_batch=100)
    assert len(table) == 20 * 2
    for k, name in enumerate(ex.names):
        rows = table[table.parameter == name]
        np.testing.assert_allclose(rows.variance, 0.0, atol=1e-8)
        np.testing.assert_allclose(rows.bias, const.net.shift[k].item() - ex.parameters[:20, k].numpy(), rtol=1e-5)
        np.testing.assert_allclose(rows.crb, ex.crb[:20, k].numpy() / 40.0**2, rtol=1e-12)
    summary = summarize(table)
    np.testing.assert_allclose(summary.crb_loss, summary.bias_part + summary.variance_part)


def test_monte_carlo_of_the_trained_network(trained):
    _, est, ex = trained
    table = monte_carlo(est, ex.subset(slice(512, 560)), snr=50.0, realizations=64, seed=0)
    assert np.isfinite(table[["bias", "variance", "crb"]].to_numpy()).all()
    assert (table.variance > 0).all()


def test_cli_fit_npy_h5_and_nifti(trained, tmp_path):
    path, est, ex = trained
    c = ex.coefficients.numpy()[:24]
    expected = est.predict(c)
    np.save(tmp_path / "c.npy", c.reshape(4, 6, -1))
    assert main(["fit", "--model", str(path), "--data", str(tmp_path / "c.npy"), "--out", str(tmp_path / "e.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "e.npy").reshape(24, 2), expected, rtol=1e-6)

    with atomic_hdf5(tmp_path / "c.h5") as f:
        f.create_dataset("signals", data=c.astype(np.complex128) @ est.basis.U.T)
        f.attrs["sequence_sha256"] = est.basis.sequence_sha256
    assert main(["fit", "--model", str(path), "--data", str(tmp_path / "c.h5"), "--out", str(tmp_path / "e.h5")]) == 0
    with h5py.File(tmp_path / "e.h5") as f:
        np.testing.assert_allclose(f["estimates"][()], expected, rtol=1e-4, atol=1e-4)
        assert list(f["estimates"].attrs["names"]) == ["R2f", "omega0"]

    image = c.reshape(2, 3, 4, -1)
    mask = np.zeros((2, 3, 4), dtype=np.uint8)
    mask[1] = 1
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "c.nii.gz")
    nib.save(nib.Nifti1Image(mask, affine), tmp_path / "mask.nii.gz")
    out = tmp_path / "maps.nii.gz"
    assert main(["fit", "--model", str(path), "--data", str(tmp_path / "c.nii.gz"), "--mask",
                 str(tmp_path / "mask.nii.gz"), "--out", str(out)]) == 0
    maps = nib.load(out)
    np.testing.assert_allclose(maps.affine, affine)
    data = np.asarray(maps.dataobj)
    assert data.shape == (2, 3, 4, 2) and np.all(np.isnan(data[0]))  # NaN outside the mask
    np.testing.assert_allclose(data[1].reshape(12, 2), expected[12:], rtol=1e-5)
    assert json.loads((tmp_path / "maps.json").read_text())["names"] == ["R2f", "omega0"]


@pytest.mark.parametrize("case, message", [
    ("missing_model", "does not exist"),
    ("wrong_length", "expected 4 coefficients"),
    ("other_basis", "another basis"),
    ("other_sequence", "another sequence"),
    ("mask_shape", "mask"),
    ("bad_suffix", "unsupported"),
])
def test_cli_fit_errors(trained, tmp_path, capsys, case, message):
    path, est, ex = trained
    c = ex.coefficients.numpy()[:8]
    data, model, mask, out = tmp_path / "c.npy", str(path), None, tmp_path / "e.npy"
    np.save(data, c)
    if case == "missing_model":
        model = str(tmp_path / "none.pt")
    elif case == "wrong_length":
        np.save(data, c[:, :3])
    elif case in ("other_basis", "other_sequence"):
        data = tmp_path / "c.h5"
        with atomic_hdf5(data) as f:
            f.create_dataset("coefficients", data=c)
            if case == "other_basis":
                f.attrs["basis_sha256"] = svd_basis([np.eye(32, dtype=complex)], 4).sha256
            else:
                f.attrs["sequence_sha256"] = "another"
    elif case == "mask_shape":
        np.save(tmp_path / "m.npy", np.ones(3, dtype=bool))
        mask = str(tmp_path / "m.npy")
    elif case == "bad_suffix":
        out = tmp_path / "e.txt"
    argv = ["fit", "--model", model, "--data", str(data), "--out", str(out)] + (["--mask", mask] if mask else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_raw_estimates_match_the_monte_carlo_summary(trained):
    """Both read the same seeded noise stream: the mean of the raw estimates is the Monte-Carlo mean."""
    from crbnet.evaluation import estimates_table

    _, est, ex = trained
    part = ex.subset(slice(0, 7))
    raw = estimates_table(est, part, snr=30.0, realizations=11, seed=2)
    assert len(raw) == 7 * 11 * 2 and set(raw.realization) == set(range(11))
    summary = monte_carlo(est, part, snr=30.0, realizations=11, seed=2)
    means = raw.groupby(["fingerprint", "parameter"]).estimate.mean()
    expected = summary.set_index(["fingerprint", "parameter"])["mean"]
    np.testing.assert_allclose(means.loc[expected.index], expected, rtol=1e-10)
    np.testing.assert_allclose(raw.true.to_numpy().reshape(11, 7, 2)[0], part.parameters.numpy())


def test_welch_tests_detect_a_shift_only_where_there_is_one():
    from crbnet.tables import welch_tests

    rng = np.random.default_rng(0)
    rows = lambda shift: pd.DataFrame({  # noqa: E731
        "at_R2f": np.repeat([10.0, 20.0], 200), "parameter": "m0s", "true": 0.2,
        "estimate": 0.2 + rng.normal(0, 0.01, 400) + np.repeat([0.0, shift], 200)})
    table = welch_tests(rows(0.0), rows(0.01), "R2f").set_index("value")
    assert table.loc[10.0, "p"] > 1e-3 and table.loc[20.0, "p"] < 1e-10
