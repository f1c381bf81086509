"""YAML as users write numbers: PyYAML follows YAML 1.1, where ``3e-4`` (an exponent without a dot) is text; here
it is the number YAML 1.2 and every other tool read. Non-finite numbers (``.nan``, ``.inf``) are found by path so
that a schema error can name them."""

from __future__ import annotations

import re
from collections.abc import Iterator

import yaml


class Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2's float syntax (``1e5``, ``3e-4``, ``-2E+3``) on top of YAML 1.1's."""


Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load(text: str) -> object:
    """Parse YAML text (raises yaml.YAMLError on malformed input)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader)


def non_finite(value: object, path: tuple = ()) -> Iterator[tuple[tuple, float]]:
    """(path, value) of every NaN or infinite number in nested mappings and lists."""
    if isinstance(value, float) and not (value - value == 0):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from non_finite(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from non_finite(v, (*path, i))


def schema_message(error) -> str:
    """``path: message`` of a jsonschema ValidationError (its best-matching cause for oneOf/anyOf), with the fix
    where a number was read as text (YAML 1.1 readers such as Snakemake's take ``3e-4`` for a string)."""
    import jsonschema

    error = jsonschema.exceptions.best_match([error])
    where = "/".join(map(str, error.absolute_path)) or "(top level)"
    hint = ""
    if isinstance(error.instance, str):
        try:
            float(error.instance)
            hint = f" (a number read as text: write it with a dot, e.g. {float(error.instance):.1e})"
        except ValueError:
            pass
    return f"{where}: {error.message}{hint}"
