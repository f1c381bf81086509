import textwrap

import h5py
import numpy as np
import pytest

from conftest import DEFAULT_SEQUENCE
from crbnet.sequences import SequenceError, load_sequence


def _write(tmp_path, text, name="seq.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _pattern_files(tmp_path, alpha, TRF):
    np.savez(tmp_path / "p.npz", alpha=alpha, TRF=TRF)
    (tmp_path / "p.csv").write_text("alpha,TRF\n" + "".join(f"{float(a)!r},{float(t)!r}\n" for a, t in zip(alpha, TRF)))
    with h5py.File(tmp_path / "p.mat", "w") as f:
        f["alpha"], f["TRF"] = np.stack([alpha, alpha[::-1]]), np.stack([TRF, TRF])


def test_default_sequence_facts():
    seq = load_sequence(DEFAULT_SEQUENCE)
    p = seq.patterns[0]
    assert seq.TR == 3.5e-3 and seq.n_samples == 1142 and p.crushed[0] and p.crushed.sum() == 1
    assert np.rad2deg(p.alpha[1:]).max() == pytest.approx(126, abs=3)
    assert 217e-6 <= p.TRF.min() and p.TRF.max() <= 500e-6
    np.testing.assert_allclose(np.rad2deg(p.alpha[1:8]), [96, 60, 31, 14, 7.6, 4.9, 3.6])
    np.testing.assert_allclose(p.alpha[-7:], p.alpha[1:8][::-1])


def test_shipped_published_control_is_the_upstream_file_with_its_licence():
    import hashlib

    folder = DEFAULT_SEQUENCE.parent / "zhang2022_control"
    data = (folder / "control_MT_v3p2_TR3p5ms_discretized.mat").read_bytes()
    assert hashlib.sha256(data).hexdigest() in (folder / "README.md").read_text()
    assert "MIT License" in (folder / "LICENSE").read_text()
    seq = load_sequence(DEFAULT_SEQUENCE.parent / "zhang2022_published.yaml")
    p = seq.patterns[0]
    # facts of the published pattern (../shared/reference/README.md)
    assert seq.n_samples == 1142 and p.crushed[0] and p.crushed.sum() == 1 and p.alpha[0] == pytest.approx(np.pi)
    assert np.rad2deg(p.alpha[1:]).min() == pytest.approx(2.3, abs=0.1)
    assert np.rad2deg(p.alpha[1:]).max() == pytest.approx(126.5, abs=0.1)
    assert np.rad2deg(p.alpha[1:]).mean() == pytest.approx(22.4, abs=0.25)


def test_file_formats_agree_and_paths_are_relative_to_the_yaml(tmp_path):
    rng = np.random.default_rng(0)
    alpha, TRF = rng.uniform(0, 1, 10), rng.uniform(2e-4, 4e-4, 10)
    sub = tmp_path / "sub"
    sub.mkdir()
    _pattern_files(sub, alpha, TRF)
    seqs = {ext: load_sequence(_write(sub, f"kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{{file: p.{ext}}}]\n",
                                      f"{ext}.yaml")) for ext in ("npz", "csv", "mat")}
    for ext in ("npz", "csv"):
        np.testing.assert_array_equal(seqs[ext].patterns[0].alpha, alpha)
        np.testing.assert_array_equal(seqs[ext].patterns[0].TRF, TRF)
    assert len(seqs["mat"].patterns) == 2 and seqs["mat"].n_samples == 20
    assert seqs["npz"].sha256 == seqs["csv"].sha256 != seqs["mat"].sha256
    picked = load_sequence(_write(sub, "kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: p.mat, rows: [1]}]\n"))
    np.testing.assert_array_equal(picked.patterns[0].alpha, alpha[::-1])


def test_crushed_pulses_configurable(tmp_path):
    alpha, TRF = np.array([np.pi, 0.2, 0.3, 0.4]), np.full(4, 3e-4)
    _pattern_files(tmp_path, alpha, TRF)
    auto = load_sequence(_write(tmp_path, "kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: p.npz}]\n"))
    assert auto.patterns[0].crushed.tolist() == [True, False, False, False]
    listed = load_sequence(_write(tmp_path, "kind: hybrid_state_qmt\nTR: 3.5e-3\ncrushed: [2, 4]\npatterns: [{file: p.npz}]\n"))
    assert listed.patterns[0].crushed.tolist() == [False, True, False, True]


BAD = {
    "malformed YAML": ("kind: hybrid_state_qmt\nTR: [3.5e-3\n", "malformed YAML"),
    "not a mapping": ("- 1\n- 2\n", "expected a mapping"),
    "unknown kind": ("kind: spin_echo\nTR: 1\npatterns: [{file: p.npz}]\n", "kind"),
    "missing TR": ("kind: hybrid_state_qmt\npatterns: [{file: p.npz}]\n", "'TR' is a required property"),
    "negative TR": ("kind: hybrid_state_qmt\nTR: -1\npatterns: [{file: p.npz}]\n", "TR"),
    "unknown key": ("kind: hybrid_state_qmt\nTR: 3.5e-3\nTE: 1\npatterns: [{file: p.npz}]\n", "'TE' was unexpected"),
    "no patterns": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: []\n", "patterns"),
    "missing file": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: nope.mat}]\n", "not found"),
    "file type": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: p.txt}]\n", "unsupported pattern file type"),
    "degrees as radians": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: deg.npz}]\n", "alpha must lie in [0, pi]"),
    "microseconds as seconds": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: us.npz}]\n", "TRF must lie in"),
    "TRF longer than TR": ("kind: hybrid_state_qmt\nTR: 2.0e-4\npatterns: [{file: p.npz}]\n", "shorter than TR"),
    "missing dataset": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: noTRF.npz}]\n", "lacks TRF"),
    "crushed beyond": ("kind: hybrid_state_qmt\nTR: 3.5e-3\ncrushed: [9]\npatterns: [{file: p.npz}]\n", "beyond the 4 pulses"),
    "rows beyond": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: p.npz, rows: [3]}]\n", "holds 1 pattern"),
    "NaN": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: nan.npz}]\n", "finite"),
    "NaN in the YAML": ("kind: mrf_fisp\nflip_angle: [0.1, .nan]\nTR: 0.012\nTE: 0.002\n",
                        "flip_angle/1: nan is not a finite number"),
    "two mistakes": ("kind: hybrid_state_qmt\nTR: -1\nTE: 1\npatterns: [{file: p.npz}]\n", "('TE' was unexpected); TR: -1 is less than"),
    "length mismatch": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: short.npz}]\n", "differ in shape"),
    "knots not increasing": ("kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns:\n  - parametric: {n_pulses: 10, "
                             "alpha_deg: [[0.1, 5], [0.0, 10]], TRF_us: [[0, 300], [1, 300]]}\n", "increase strictly"),
}


@pytest.mark.parametrize("label", BAD)
def test_bad_sequences_are_rejected_with_a_clear_message(tmp_path, label):
    text, phrase = BAD[label]
    alpha, TRF = np.array([np.pi, 0.2, 0.3, 0.4]), np.full(4, 3e-4)
    np.savez(tmp_path / "p.npz", alpha=alpha, TRF=TRF)
    np.savez(tmp_path / "deg.npz", alpha=np.rad2deg(alpha), TRF=TRF)
    np.savez(tmp_path / "us.npz", alpha=alpha, TRF=TRF * 1e6)
    np.savez(tmp_path / "noTRF.npz", alpha=alpha)
    np.savez(tmp_path / "nan.npz", alpha=np.array([0.1, np.nan, 0.2]), TRF=np.full(3, 3e-4))
    np.savez(tmp_path / "short.npz", alpha=alpha, TRF=TRF[:3])
    (tmp_path / "p.txt").write_text("1 2 3")
    path = _write(tmp_path, text)
    with pytest.raises(SequenceError) as err:
        load_sequence(path)
    message = str(err.value)
    assert phrase in message and "\n" not in message and str(path) in message


def test_numbers_as_yaml_1_2_reads_them(tmp_path):
    """``3.5e-3`` and ``35e-4`` are the same number (PyYAML's YAML 1.1 read the second as text)."""
    np.savez(tmp_path / "p.npz", alpha=np.array([np.pi, 0.2, 0.3, 0.4]), TRF=np.full(4, 3e-4))
    dotted = load_sequence(_write(tmp_path, "kind: hybrid_state_qmt\nTR: 3.5e-3\npatterns: [{file: p.npz}]\n"))
    (tmp_path / "b").mkdir()
    np.savez(tmp_path / "b" / "p.npz", alpha=np.array([np.pi, 0.2, 0.3, 0.4]), TRF=np.full(4, 3e-4))
    bare = load_sequence(_write(tmp_path / "b", "kind: hybrid_state_qmt\nTR: 35e-4\npatterns: [{file: p.npz}]\n"))
    assert bare.TR == dotted.TR == pytest.approx(3.5e-3) and bare.sha256 == dotted.sha256
    fisp = load_sequence(_write(tmp_path, "kind: mrf_fisp\nflip_angle: [1e-1, 2E-1]\nTR: 12e-3\nTE: 2e-3\n"))
    np.testing.assert_allclose(fisp.flip_angle, [0.1, 0.2])


def test_missing_sequence_file(tmp_path):
    with pytest.raises(SequenceError, match="sequence file not found"):
        load_sequence(tmp_path / "absent.yaml")
