"""Pins have one source: envs/*.yaml are what envs/generate.py writes from pyproject.toml."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from conftest import ROOT


def _generator():
    spec = importlib.util.spec_from_file_location("generate", ROOT / "envs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_env_files_are_generated_from_pyproject():
    generate = _generator()
    for family in generate.FAMILIES:
        on_disk = (ROOT / "envs" / f"{family}.yaml").read_text()
        assert on_disk == generate.render(family), f"envs/{family}.yaml is stale: run python envs/generate.py"
        pip = yaml.safe_load(on_disk)["dependencies"][-1]["pip"]
        assert "torch==2.13.0" in pip and all("==" in p for p in pip)
    assert {p.stem for p in (ROOT / "envs").glob("*.yaml")} == set(generate.FAMILIES)


def test_a_changed_pin_or_a_missing_one_is_caught():
    generate = _generator()
    pinned = generate.pins()
    changed = dict(pinned, numpy="numpy==1.0.0")
    assert generate.render("training", changed) != (ROOT / "envs" / "training.yaml").read_text()
    with pytest.raises(KeyError, match="seaborn"):
        generate.render("plotting", {k: v for k, v in pinned.items() if k != "seaborn"})


def test_library_dependencies_leave_the_workflow_to_an_extra():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {d.split("==")[0] for d in project["dependencies"]}
    assert "snakemake" not in runtime and "torch" in runtime
    assert any(d.startswith("snakemake==") for d in project["optional-dependencies"]["workflow"])
    assert "crbnet[workflow]" in project["optional-dependencies"]["test"]
    # the onsuccess report (snakemake --report) needs pygments, which only pytest brings into the test environment,
    # so a fresh `pip install -e ".[workflow]"` ran the workflow but failed its report
    assert any(d.startswith("pygments==") for d in project["optional-dependencies"]["workflow"])
