"""The documentation the code cites exists: every "docs/FILE.md, section N" in the package, benchmarks, tests and
configs names a file of docs/ with a heading "## N."; every docs/ link of the README resolves."""

import re

from conftest import ROOT

CITATION = re.compile(r"docs/([\w-]+\.md),? section (\d+)")


def _sources():
    for folder in ("workflow", "benchmarks", "tests", "config", "rules"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".yaml", ".smk", ".md", ".rst") and "egg-info" not in str(path):
                yield path


def test_cited_sections_exist():
    cited = {(m[1], m[2], path.relative_to(ROOT)) for path in _sources() for m in CITATION.finditer(path.read_text())}
    assert len({c[:2] for c in cited}) >= 5  # the model's sections are cited by the modules that implement them
    for name, section, source in cited:
        doc = ROOT / "docs" / name
        assert doc.is_file(), f"{source} cites docs/{name}, which does not exist"
        assert re.search(rf"^## {section}\. ", doc.read_text(), re.M), f"{source} cites docs/{name} section {section}"
    outside = "physics" + ".md"  # the design spec outside the repository (spelt so that this file does not cite it)
    assert not [p for p in _sources() if outside in p.read_text()]


def test_readme_links_to_docs_resolve():
    links = re.findall(r"\]\((docs/[^)#]+)", (ROOT / "README.md").read_text())
    assert {"docs/model.md", "docs/outputs.md"} <= set(links)
    assert all((ROOT / link).is_file() for link in links)
