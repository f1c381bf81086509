"""CRB-optimal sequence design: gradients against finite differences, the differentiable signal against the numba
kernel, constraints, resume, the written files and the command's bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from conftest import DEFAULT_SEQUENCE, ROOT, TR, short_sequence
from crbnet.cli import main
from crbnet.design import TISSUES, DesignError, DesignProblem, optimize, write_design
from crbnet.parameters import PARAMETERIZATIONS
from crbnet.sequences import Pattern, QMTSequence, load_sequence
from crbnet.signals.qmt import QMTSignalModel, pattern_signal

PZ = PARAMETERIZATIONS["apparent_t1"]
ESTIMATE = ("m0s", "T1", "T2f")


def _problem(n: int = 24, **kwargs) -> DesignProblem:
    return DesignProblem(short_sequence(n, seed=2), PZ, TISSUES, ESTIMATE, knot_spacing=4, **kwargs)


def test_differentiable_pattern_signal_matches_the_numba_kernel():
    seq = short_sequence(30, seed=5)
    p = seq.patterns[0]
    values = {k: torch.tensor([PZ.complete(TISSUES["white_matter"])[k]], dtype=torch.float64) for k in PZ.names}
    alpha = torch.tensor(p.alpha, requires_grad=True)
    s, j = pattern_signal(alpha, torch.tensor(p.TRF), torch.tensor(p.crushed), seq.TR, values, PZ, PZ.names)
    ref_s, ref_j = QMTSignalModel(seq, PZ, kernel="numba").simulate(values, PZ.names)
    np.testing.assert_allclose(s.detach().numpy(), ref_s.numpy(), rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(j.detach().numpy(), ref_j.numpy(), rtol=1e-8, atol=1e-12)


def _head_problem(**kwargs) -> DesignProblem:
    """The first 300 pulses of the default pattern (well conditioned: a random train's CRBs are too ill-conditioned
    for finite differences)."""
    full = load_sequence(DEFAULT_SEQUENCE).patterns[0]
    head = Pattern(full.alpha[:300], full.TRF[:300], full.crushed[:300])
    return DesignProblem(QMTSequence(TR=TR, patterns=(head,)), PZ, TISSUES, ESTIMATE, knot_spacing=8, **kwargs)


def _assert_gradient_matches_central_differences(problem: DesignProblem, rel: float) -> None:
    """Autograd of the summed relative CRB against central differences (step 1e-3 in the logit domain) at a
    flip-angle and a pulse-duration knot."""
    theta = problem.initial()

    def cost(t: torch.Tensor) -> float:
        with torch.no_grad():
            return float(problem.relative_crb(problem.patterns(t)).sum())

    x = theta.clone().requires_grad_(True)
    problem.relative_crb(problem.patterns(x)).sum().backward()
    for k in (3, len(theta) // 2 + 3):
        e = torch.zeros_like(theta)
        e[k] = 1e-3
        assert float(x.grad[k]) == pytest.approx((cost(theta + e) - cost(theta - e)) / 2e-3, rel=rel)


def test_gradient_of_the_cost_matches_central_differences():
    """Autograd through the exact Jacobian. rel 5e-5: the CRB inverse amplifies the rounding of threaded reductions
    to about 1e-5 between runs."""
    _assert_gradient_matches_central_differences(_head_problem(), rel=5e-5)


def test_design_lowers_the_cost_within_the_constraints():
    problem = _problem()
    theta, history = optimize(problem, 6, lr=0.1, progress=False)
    designed = problem.sequence(theta)
    p, start = designed.patterns[0], problem.start.patterns[0]
    lo, hi = problem.trf_window
    free = ~start.crushed
    assert np.all((p.alpha >= 0) & (p.alpha <= np.pi)) and np.all((p.TRF[free] >= lo) & (p.TRF[free] <= hi))
    np.testing.assert_array_equal(p.crushed, start.crushed)
    assert (p.alpha[0], p.TRF[0]) == (start.alpha[0], start.TRF[0])  # the crushed inversion is kept
    assert float((p.alpha**2 / p.TRF).sum()) <= problem.energy_limit * (1 + 1e-12)
    final = float(problem.relative_crb([tuple(torch.as_tensor(a) for a in (p.alpha, p.TRF, p.crushed))]).sum())
    assert final < history.cost.iloc[0]


def test_a_resumed_design_equals_an_uninterrupted_one(tmp_path, caplog):
    caplog.set_level("INFO", logger="crbnet")
    problem = _problem(16)
    _, straight = optimize(problem, 4, progress=False)
    optimize(problem, 2, checkpoint=tmp_path / "d.ckpt", checkpoint_every=1, progress=False)
    _, resumed = optimize(problem, 4, checkpoint=tmp_path / "d.ckpt", checkpoint_every=1, progress=False)
    assert len(resumed) == 4 and "resuming at iteration 2" in caplog.text
    np.testing.assert_allclose(resumed.cost, straight.cost, rtol=1e-5)  # threaded reductions: not bitwise


def test_written_design_loads_back(tmp_path):
    problem = _problem(16)
    designed = problem.sequence(problem.initial())
    write_design(tmp_path / "d.yaml", designed, "test", "made by a test")
    back = load_sequence(tmp_path / "d.yaml")
    assert back.sha256 == designed.sha256
    assert (tmp_path / "d.yaml").read_text().startswith("# made by a test")


def test_design_command_records_itself_in_the_yaml(tmp_path):
    out = tmp_path / "d.yaml"
    args = ["design", "--sequence", str(DEFAULT_SEQUENCE), "--estimate", "m0s,T1,T2f", "--iterations", "0",
            "--knot-spacing", "64", "--tissue", "white_matter", "--out", str(out)]
    assert main(args) == 0
    assert out.read_text().startswith("# Made by: crbnet " + " ".join(args))
    assert load_sequence(out).n_samples == 1142


def test_default_tissues_are_the_default_configs_white_and_grey_matter():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    brain = config["experiments"]["default"]["phantoms"]["brain"]["tissues"]
    assert TISSUES == {k: brain[k] for k in TISSUES}


def test_impossible_problems_are_refused():
    with pytest.raises(DesignError, match="TRF window"):
        _problem(trf_window=(5e-4, 2e-4))
    with pytest.raises(DesignError, match="energy limit"):
        _problem(energy_limit=1.0)


@pytest.mark.parametrize("args, phrase", [
    (["--sequence", "config/sequences/mrf_fisp_default.yaml"], "hybrid-state qMT"),
    (["--sequence", "config/sequences/hybrid_state_default.yaml", "--tissue", "m0s=0.1,T9=1"], "unknown parameter"),
    (["--sequence", "config/sequences/hybrid_state_default.yaml", "--trf-window-us", "600,100"], "TRF window"),
    (["--sequence", "config/sequences/hybrid_state_default.yaml", "--energy-limit", "10"], "energy limit"),
])
def test_design_command_bad_input_exits_2_without_files(tmp_path, capsys, args, phrase):
    out = tmp_path / "d.yaml"
    rc = main(["design", *[str(ROOT / a) if a.startswith("config/") else a for a in args], "--estimate",
               "m0s,T1,T2f", "--iterations", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and phrase in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_shipped_design_beats_the_published_control_on_every_bound():
    """The shipped pattern's claims, checked with the numba kernel and crbnet.crb (not the design code): each
    sqrt(CRB) of m0s, T1 and T2f at white and grey matter below the published control's, the summed relative CRB
    1.25x below (the issue's aim), alpha <= pi, RF energy at most the published control's."""
    from crbnet.crb import unit_crb

    def bounds(path):
        seq = load_sequence(ROOT / "config" / "sequences" / path)
        values = {k: np.array([PZ.complete(t)[k] for t in TISSUES.values()]) for k in PZ.names}
        crb = unit_crb(*QMTSignalModel(seq, PZ).simulate(values, PZ.names))
        energy = sum(float((p.alpha**2 / p.TRF).sum()) for p in seq.patterns)
        relative = crb[:, [PZ.names.index(k) for k in ESTIMATE]].numpy() / np.stack([values[k] for k in ESTIMATE], 1) ** 2
        return relative, energy, max(p.alpha.max() for p in seq.patterns)

    designed, energy, alpha_max = bounds("hybrid_state_designed.yaml")
    published, published_energy, _ = bounds("zhang2022_published.yaml")
    assert np.all(designed < published) and designed.sum() < published.sum() / 1.25
    assert energy <= published_energy and alpha_max <= np.pi


def test_over_prior_draws_the_cost_is_the_mean_log_and_its_scale_only_shifts_it():
    """log(CRB / scale^2): another scale shifts the cost by a constant and leaves its gradient alone; a draw with
    m0s near 0 (CRB / m0s^2 near infinite) keeps a finite cost and gradient."""
    draws = {"a": TISSUES["white_matter"], "b": dict(TISSUES["grey_matter"], m0s=1e-3)}
    grads, costs = [], []
    for factor in (1.0, 3.0):
        problem = DesignProblem(short_sequence(24, seed=2), PZ, draws, ESTIMATE, knot_spacing=4,
                                scales={"m0s": 0.08 * factor, "T1": 0.8, "T2f": 0.2})
        theta = problem.initial().requires_grad_(True)
        rel = problem.relative_crb(problem.patterns(theta))
        cost = problem.cost(rel)
        cost.backward()
        np.testing.assert_allclose(float(cost.detach()), np.log(rel.detach().numpy()).sum(axis=1).mean(), rtol=1e-12)
        costs.append(float(cost.detach()))
        grads.append(theta.grad.numpy())
    assert np.all(np.isfinite(grads[0])) and np.isfinite(costs[0])
    # two runs of the CRB inverse differ by threaded rounding (about 1e-8 here), so not to machine precision
    assert costs[0] - costs[1] == pytest.approx(np.log(9.0), rel=1e-6)  # 2 draws x log(3^2) / 2
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-9 * np.abs(grads[0]).max())
    with pytest.raises(DesignError, match="positive scale"):
        DesignProblem(short_sequence(24, seed=2), PZ, draws, ESTIMATE, scales={"m0s": 0.1})


def test_design_command_over_prior_draws(tmp_path, capsys):
    out = tmp_path / "d.yaml"
    args = ["design", "--sequence", str(DEFAULT_SEQUENCE), "--estimate", "m0s,T1,T2f", "--iterations", "1",
            "--knot-spacing", "64", "--prior", f"{ROOT / 'config' / 'config.yaml'}:default", "--draws", "2",
            "--out", str(out)]
    assert main(args) == 0
    assert "mean over 2 prior draws of the summed log(CRB / prior scale^2) of m0s (scale 0.08)" in out.read_text()
    import pandas as pd

    table = pd.read_csv(tmp_path / "d_crb.csv")
    assert set(table.tissue) == {"draw1", "draw2"} and np.all(np.isfinite(table.sqrt_crb))
    for bad, phrase in [(["--prior", f"{ROOT / 'config' / 'config.yaml'}:nothing"], "no experiment 'nothing'"),
                        (["--prior", str(ROOT / "config" / "config.yaml"), "--tissue", "white_matter"], "exclude"),
                        (["--prior", str(tmp_path / "missing.yaml")], "missing.yaml"),
                        (["--prior", str(ROOT / "config" / "config.yaml") + ":default", "--rank", "4", "--basis-draws",
                          "2"], "at least 4 basis draws")]:
        capsys.readouterr()
        assert main([*args[:-2], *bad, "--out", str(tmp_path / "e.yaml")]) == 2
        assert phrase in capsys.readouterr().err
    without_prior = args[:9] + ["--rank", "4", "--out", str(tmp_path / "e.yaml")]
    assert main(without_prior) == 2 and "--rank needs --prior" in capsys.readouterr().err
    assert not (tmp_path / "e.yaml").exists()


def _prior_draws(n: int, seed: int) -> dict:
    from crbnet.parameters import ParameterSpace

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    return ParameterSpace.from_config(config["experiments"]["default"]["parameter_space"]).sample(n, seed)


def test_a_full_rank_basis_gives_the_fingerprint_crb_and_a_low_rank_one_a_larger_crb():
    seq = short_sequence(20, seed=2)
    full = DesignProblem(seq, PZ, TISSUES, ESTIMATE, knot_spacing=4)
    pats = full.patterns(full.initial())
    reference = full.relative_crb(pats)
    for rank, check in ((20, "equal"), (8, "larger")):
        problem = DesignProblem(seq, PZ, TISSUES, ESTIMATE, knot_spacing=4, rank=rank, basis_values=_prior_draws(32, 1))
        with torch.no_grad():
            rel = problem.relative_crb(pats)
        if check == "equal":  # the basis spans every time point: the projection loses nothing
            np.testing.assert_allclose(rel.numpy(), reference.detach().numpy(), rtol=1e-6)
        else:  # compressing can only lose information
            assert np.all(rel.numpy() >= reference.detach().numpy() * (1 - 1e-9))
    with pytest.raises(DesignError, match="at least 40 basis draws"):
        DesignProblem(seq, PZ, TISSUES, ESTIMATE, rank=40, basis_values=_prior_draws(32, 1))


def test_gradient_through_the_svd_basis_matches_central_differences():
    """With a rank-8 basis of 48 prior draws' signals, differentiated through the SVD. Its cost, about 9e7, is
    large enough that round-off puts 0.025 into the phase component of the basis' gradient, which torch's SVD
    backward refuses (tolerance 1e-2) unless crbnet.design drops that component."""
    _assert_gradient_matches_central_differences(_head_problem(rank=8, basis_values=_prior_draws(48, 1)), rel=1e-3)
