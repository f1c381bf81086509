import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import DEFAULT_SEQUENCE
from crbnet.cli import main
from crbnet.signals.qmt import QMTSignalModel
from crbnet.parameters import PARAMETERIZATIONS
from crbnet.sequences import load_sequence


def test_simulate_writes_signal_and_derivatives(tmp_path):
    out = tmp_path / "sim.csv"
    rc = main(["simulate", "--sequence", str(DEFAULT_SEQUENCE), "--set", "T1=1.0", "--set", "T2f=0.08",
               "--jacobian", "T1,B1", "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["re", "im", "d_T1_re", "d_T1_im", "d_B1_re", "d_B1_im"] and len(table) == 1142
    pz = PARAMETERIZATIONS["apparent_t1"]
    signal = QMTSignalModel(load_sequence(DEFAULT_SEQUENCE), pz).signal(pz.complete({"T1": 1.0, "T2f": 0.08}))[0]
    np.testing.assert_allclose(table["re"], signal.real.numpy(), rtol=1e-8, atol=1e-12)


def test_crb_table(tmp_path):
    out = tmp_path / "crb.csv"
    assert main(["crb", "--sequence", str(DEFAULT_SEQUENCE), "--estimate", "m0s,T1,T2f,Rx,T2s,omega0,B1",
                 "--sigma", "0.01", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert list(table["parameter"]) == ["m0s", "T1", "T2f", "Rx", "T2s", "omega0", "B1"]
    assert np.all(np.isfinite(table["crb"])) and np.allclose(table["sqrt_crb"] ** 2, table["crb"], rtol=1e-8)
    loud = tmp_path / "crb1.csv"
    main(["crb", "--sequence", str(DEFAULT_SEQUENCE), "--estimate", "m0s,T1,T2f,Rx,T2s,omega0,B1", "--out", str(loud)])
    np.testing.assert_allclose(pd.read_csv(loud)["crb"] * 1e-4, table["crb"], rtol=1e-9)  # CRB ~ sigma^2


@pytest.mark.parametrize("args, phrase", [
    (["--set", "foo=1"], "unknown parameter 'foo'"),
    (["--set", "T1=abc"], "bad value for T1"),
    (["--set", "T1"], "expects NAME=VALUE"),
    (["--set", "m0s=1.5"], "m0s=1.5"),
    (["--set", "T1=inf"], "not finite"),
    (["--jacobian", "T1,R2f"], "cannot be combined"),
    (["--jacobian", "B1,B1"], "listed twice"),
    (["--parameterization", "canonical", "--set", "T1=1"], "not part of the canonical"),
])
def test_bad_input_exits_2_with_one_line_and_no_file(tmp_path, capsys, args, phrase):
    out = tmp_path / "x.csv"
    assert main(["simulate", "--sequence", str(DEFAULT_SEQUENCE), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert phrase in err and err.count("\n") == 1 and not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary leftovers either


def test_broken_sequence_and_missing_arguments(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: hybrid_state_qmt\nTR: 3.5e-3\n")
    assert main(["crb", "--sequence", str(bad), "--estimate", "m0s", "--out", str(tmp_path / "c.csv")]) == 2
    assert "'patterns' is a required property" in capsys.readouterr().err
    assert main(["crb", "--sequence", str(DEFAULT_SEQUENCE), "--out", str(tmp_path / "c.csv")]) == 2
    assert "--estimate" in capsys.readouterr().err
    assert not (tmp_path / "c.csv").exists()


CONSOLE = Path(sys.executable).parent / "crbnet"


@pytest.mark.skipif(not CONSOLE.exists(), reason="console script not installed next to this interpreter")
def test_console_script(tmp_path):
    run = subprocess.run([str(CONSOLE), "crb", "--sequence", str(DEFAULT_SEQUENCE), "--estimate", "nope",
                          "--out", str(tmp_path / "c.csv")], capture_output=True, text=True)
    assert run.returncode == 2 and run.stderr.strip() == "crbnet: error: unknown parameter 'nope' " \
        "(known: m0s, R1f, R2f, Rx, R1s, T2s, omega0, B1, T1, T2f, T2)"


@pytest.mark.parametrize("setting, hidden", [("m0s=0", {"Rx", "T2s"}), ("Rx=0", {"m0s", "T2s"})])
def test_crb_with_unidentifiable_parameters_reports_inf(tmp_path, setting, hidden):
    out = tmp_path / "crb.csv"
    assert main(["crb", "--sequence", str(DEFAULT_SEQUENCE), "--set", setting,
                 "--estimate", "m0s,T1,T2f,Rx,T2s,omega0,B1", "--out", str(out)]) == 0
    table = pd.read_csv(out).set_index("parameter")
    assert set(table.index[~table.identifiable]) == hidden
    assert np.isinf(table.loc[sorted(hidden), "crb"]).all() and np.isfinite(table.crb[table.identifiable]).all()


def test_design_defaults_are_the_workflow_schemas_and_the_librarys():
    """`crbnet design` and a workflow design share one set of defaults (the schema's); the library's own defaults
    (DesignProblem, optimize) agree with it."""
    import dataclasses
    import inspect

    from crbnet.cli import build_parser
    from crbnet.design import TRF_WINDOW, DesignProblem, optimize
    from crbnet.experiment import design_defaults

    defaults = design_defaults()
    args = build_parser().parse_args(["design", "--sequence", "s.yaml", "--estimate", "m0s", "--out", "o.yaml"])
    assert (args.iterations, args.lr, args.knot_spacing) == (defaults["iterations"], defaults["lr"],
                                                             defaults["knot_spacing"])
    assert (args.draws, args.draw_seed, args.basis_draws) == tuple(defaults["prior"][k] for k in
                                                                   ("draws", "seed", "basis_draws"))
    assert [float(x) for x in args.trf_window_us.split(",")] == defaults["trf_window_us"]
    assert np.allclose(np.array(TRF_WINDOW) * 1e6, defaults["trf_window_us"])
    fields = {f.name: f.default for f in dataclasses.fields(DesignProblem)}
    assert fields["knot_spacing"] == defaults["knot_spacing"]
    assert inspect.signature(optimize).parameters["lr"].default == defaults["lr"]
