"""Code digests of rule scripts follow the crbnet modules they import, and only those."""

import shutil

import pytest

from crbnet import provenance


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
