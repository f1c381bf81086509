"""Pins have one source, requirements-lock.txt: envs/*.yaml are what envs/generate.py writes from it, and every
range that pyproject.toml declares admits its pin."""

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
        assert ("torch==2.13.0" in pip) == (family != "plotting") and all("==" in p for p in pip)
    assert {p.stem for p in (ROOT / "envs").glob("*.yaml")} == set(generate.FAMILIES)


def test_a_changed_pin_or_a_missing_one_is_caught():
    generate = _generator()
    pinned = generate.pins()
    changed = dict(pinned, numpy="numpy==1.0.0")
    assert generate.render("training", changed) != (ROOT / "envs" / "training.yaml").read_text()
    with pytest.raises(KeyError, match="seaborn"):
        generate.render("plotting", {k: v for k, v in pinned.items() if k != "seaborn"})


def _project() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_library_dependencies_leave_the_workflow_to_an_extra():
    from packaging.requirements import Requirement

    project = _project()
    runtime = {Requirement(d).name for d in project["dependencies"]}
    assert "snakemake" not in runtime and "torch" in runtime
    assert any(Requirement(d).name == "snakemake" for d in project["optional-dependencies"]["workflow"])
    assert "crbnet[workflow]" in project["optional-dependencies"]["test"]
    # the onsuccess report (snakemake --report) needs pygments, which only pytest brings into the test environment,
    # so a fresh `pip install -e ".[workflow]"` ran the workflow but failed its report
    assert any(Requirement(d).name == "pygments" for d in project["optional-dependencies"]["workflow"])


def test_the_library_declares_ranges_that_admit_the_locked_pins():
    """A library you can depend on: no exact pins in pyproject.toml (they would force torch==2.13.0 on anyone who
    imports crbnet); the lock file's known-good versions satisfy every declared range."""
    from packaging.requirements import Requirement

    project = _project()
    locked = {name: spec.split("==")[1] for name, spec in _generator().pins().items()}
    assert locked["torch"] == "2.13.0"
    specs = list(project["dependencies"]) + [d for extra in ("workflow", "test")
                                             for d in project["optional-dependencies"][extra]]
    for spec in (Requirement(d) for d in specs if not d.startswith("crbnet")):
        assert "==" not in str(spec.specifier), f"{spec}: an exact pin belongs in requirements-lock.txt"
        assert spec.name.lower() in locked, f"requirements-lock.txt pins no {spec.name}"
        assert spec.specifier.contains(locked[spec.name.lower()]), f"{spec} excludes the locked {locked[spec.name.lower()]}"


def test_the_readme_and_ci_install_with_the_lock_file():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for text in (readme, ci):
        assert "-c requirements-lock.txt" in text
