"""Code provenance: a digest of the crbnet modules a rule script imports, so Snakemake's rerun triggers and its
between-workflow cache see changes to the package code and not only to the thin script."""

from __future__ import annotations

import ast
import hashlib
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _module_file(name: str) -> Path | None:
    """The source file of ``crbnet.a.b`` (module or package), or None for names outside crbnet."""
    parts = name.split(".")
    if parts[0] != "crbnet":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[Path]:
    """Files of the crbnet modules that ``path`` imports (``import crbnet.x``, ``from crbnet.x import y``; ``y`` as
    a submodule when it is one), at any place in the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {f for f in map(_module_file, names) if f is not None}
    return found


def source_digest(script: str | Path) -> str:
    """SHA-256 over the sources of every crbnet module ``script`` imports, directly or through other modules."""
    seen: set[Path] = set()
    todo = _imports(Path(script))
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo |= _imports(path) - seen
    digest = hashlib.sha256()
    for path in sorted(seen):
        digest.update(path.relative_to(PACKAGE).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def git_commit(path: str | Path) -> str | None:
    """The git commit checked out at ``path`` (``-dirty`` appended when tracked files differ from it), or None
    outside a git checkout or without git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")
