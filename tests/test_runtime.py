"""Device and precision policy (crbnet.devices) and the torch-free run-time helpers (crbnet.runtime)."""

import pandas as pd
import pytest
import torch

from conftest import DEFAULT_SEQUENCE
from crbnet import devices, runtime
from crbnet.cli import main
from crbnet.devices import DeviceError, pick_device, resolve_precision

CPU = torch.device("cpu")


def test_auto_takes_cuda_only_for_jobs_that_reserved_a_gpu(monkeypatch):
    monkeypatch.setattr(devices, "cuda_usable", lambda: True)
    assert pick_device("auto", gpus=0).type == "cpu"  # a physics job without a GPU reservation
    assert pick_device("auto", gpus=1).type == "cuda"
    assert pick_device("cpu", gpus=1).type == "cpu"
    monkeypatch.setattr(devices, "cuda_usable", lambda: False)  # no GPU, or one the probe kernel fails on
    assert pick_device("auto", gpus=1).type == "cpu"
    with pytest.raises(DeviceError, match="no usable CUDA GPU"):
        pick_device("cuda")
    with pytest.raises(DeviceError, match="auto, cpu or cuda"):
        pick_device("gpu")


def test_cli_asking_for_cuda_without_one_exits_2_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(devices, "cuda_usable", lambda: False)
    out = tmp_path / "crb.csv"
    rc = main(["crb", "--sequence", str(DEFAULT_SEQUENCE), "--estimate", "T1", "--device", "cuda", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "no usable CUDA GPU" in err and len(err.strip().splitlines()) == 1 and not out.exists()


def test_cli_auto_device_runs_here(tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cuda_usable", lambda: False)
    out = tmp_path / "crb.csv"
    assert main(["crb", "--sequence", str(DEFAULT_SEQUENCE), "--estimate", "T1", "--out", str(out)]) == 0
    assert pd.read_csv(out).crb.iloc[0] > 0


@pytest.mark.parametrize("flags, asked, expected", [
    (set(), "auto", "fp32"), (set(), "fp32", "fp32"), ({"avx512_bf16"}, "auto", "bf16"),
    ({"amx_bf16"}, "bf16", "bf16"), ({"avx512_bf16"}, "fp32", "fp32"), ({"avx2", "avx512f"}, "auto", "fp32")])
def test_bf16_only_where_the_cpu_has_it(monkeypatch, flags, asked, expected):
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset(flags))
    assert resolve_precision(asked, CPU) == expected


def test_bf16_asked_for_where_emulated_warns_and_runs_fp32(monkeypatch):
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset({"avx2"}))
    with pytest.warns(UserWarning, match="bf16 is emulated"):
        assert resolve_precision("bf16", CPU) == "fp32"
    with pytest.raises(DeviceError, match="auto, fp32 or bf16"):
        resolve_precision("fp16", CPU)


def test_cpu_flags_are_read_from_this_machine():
    flags = runtime.cpu_flags()
    assert not flags or "sse2" in flags  # x86-64 Linux always has sse2; other systems report none


def test_batch_sizes_come_from_free_gpu_memory(monkeypatch):
    from crbnet.devices import batch_entries

    assert batch_entries(CPU, 1e6, 128) == 128
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8e9, 80e9))
    assert batch_entries(torch.device("cuda"), 2.5e6, 128) == 800  # a quarter of 8 GB free at 2.5 MB per entry
    assert batch_entries(torch.device("cuda"), 1e12, 128) == 1


def test_the_plotting_side_of_the_library_imports_no_torch():
    """The figure rules' environment (envs/plotting.yaml) has no torch: what their scripts import must not need it."""
    import subprocess
    import sys

    from conftest import ROOT

    scripts = [p for p in (ROOT / "workflow" / "scripts").glob("*.py")
               if p.stem in ("plot_sequence", "plot_crb_slice", "plot_evaluation", "summary_table", "plot_maps",
                             "plot_agreement", "learning_curve", "sequence_comparison", "claims", "nifti_map",
                             "nlls_agreement", "recon_bias", "plot_design")]
    imports = sorted({line.split("  #")[0] for p in scripts for line in p.read_text().splitlines()
                      if line.startswith(("from crbnet", "import crbnet"))})
    code = "\n".join(imports + ["import sys", "assert 'torch' not in sys.modules, 'torch imported'"])
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT / "workflow")
    assert run.returncode == 0, run.stderr[-2000:]
