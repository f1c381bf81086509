"""Report captions are reStructuredText: every one must render without warnings (an undefined substitution such as
``|M0|`` breaks Snakemake's report)."""

import io
from pathlib import Path

import pytest
from docutils.core import publish_doctree

CAPTIONS = sorted((Path(__file__).resolve().parents[1] / "workflow" / "report").glob("*.rst"))


@pytest.mark.parametrize("caption", CAPTIONS, ids=lambda p: p.name)
def test_caption_renders_cleanly(caption):
    messages = io.StringIO()
    publish_doctree(caption.read_text(), settings_overrides={"warning_stream": messages, "report_level": 2,
                                                             "halt_level": 5})
    assert messages.getvalue() == ""


def test_a_broken_caption_would_be_caught():
    messages = io.StringIO()
    publish_doctree("sigma at |M0| = 1", settings_overrides={"warning_stream": messages, "report_level": 2,
                                                              "halt_level": 5})
    assert "M0" in messages.getvalue()
