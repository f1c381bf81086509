"""Code digests of rule scripts follow the crbnet modules they import, and only those; the git commit recorded in\noutputs names the checkout."""

import functools
import re
import shutil
import subprocess

import pytest

from crbnet import provenance
from crbnet.provenance import git_commit


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A throw-away crbnet package: a imports b (inside a function), b imports nothing, c stands alone."""
    root = tmp_path / "crbnet"
    (root / "signals").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("def f():\n    from crbnet.signals import b\n    return b\n")
    (root / "signals" / "__init__.py").write_text("")
    (root / "signals" / "b.py").write_text("import numpy\nX = 1\n")
    (root / "c.py").write_text("Y = 2\n")
    monkeypatch.setattr(provenance, "PACKAGE", root)
    script = tmp_path / "rule.py"
    script.write_text("import sys\nfrom crbnet.a import f  # noqa\n")
    return root, script


def test_digest_follows_transitive_imports_only(package):
    root, script = package
    before = provenance.source_digest(script)
    (root / "c.py").write_text("Y = 3\n")  # not imported: same digest
    assert provenance.source_digest(script) == before
    (root / "signals" / "b.py").write_text("import numpy\nX = 2\n")  # imported through a: new digest
    changed = provenance.source_digest(script)
    assert changed != before
    shutil.copy(script, script.with_name("copy.py"))  # the digest is of the package, not of the script's name
    assert provenance.source_digest(script.with_name("copy.py")) == changed


def test_digest_of_the_real_training_script_covers_the_network_code():
    from conftest import ROOT

    seen = provenance._imports(ROOT / "workflow" / "scripts" / "train_network.py")
    assert provenance.PACKAGE / "training.py" in seen
    assert len(provenance.source_digest(ROOT / "workflow" / "scripts" / "train_network.py")) == 64


def test_git_commit_names_the_checkout_and_its_changes(tmp_path):
    assert git_commit(tmp_path) is None  # not a checkout
    run = functools.partial(subprocess.run, cwd=tmp_path, check=True, capture_output=True)
    run(["git", "init", "-q"])
    (tmp_path / "a.txt").write_text("1")
    run(["git", "add", "a.txt"])
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a"])
    head = run(["git", "rev-parse", "HEAD"], text=True).stdout.strip()
    assert git_commit(tmp_path) == head and re.fullmatch(r"[0-9a-f]{40}", head)
    (tmp_path / "b.txt").write_text("untracked files do not count")
    assert git_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("2")
    assert git_commit(tmp_path) == f"{head}-dirty"
