"""Random input never makes the engine raise anything but its own TemplateError (issue 15)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.templates import Limits, Template, TemplateError
from tests.templates import corpus

_PIECES = ["{{", "}}", "{{-", "-}}", "{{ ", " }}", "/*", "*/", "if", "else", "end", "range", "with", "define",
           "template", "block", "break", "continue", "$", "$x", ":=", "=", "|", "(", ")", ".", ".a", ".str", '"',
           "`", "'", "1", "-2", "0x1F", "1e3", "nil", "true", ",", " ", "\n", "printf", "index", "len", "slice",
           "toJson", "fail", "and", "or", "eq", "dict", "list", "until", "regexMatch", "\\", "%d", "%", "x"]

_LIMITS = Limits(max_steps=20_000, max_depth=20, max_output=1 << 16)


def _exercise(text: str) -> None:
    try:
        Template(text).render(corpus.DATA, _LIMITS)
    except TemplateError:
        pass


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=40).map("".join))
def test_token_soup_only_raises_template_errors(text: str) -> None:
    _exercise(text)


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_template_errors(text: str) -> None:
    _exercise(text)
    _exercise("{{ " + text + " }}")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CIRRUS_LONG_FUZZ"), reason="long fuzz run: set CIRRUS_LONG_FUZZ=1")
@settings(max_examples=20_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_PIECES), max_size=80).map("".join))
def test_token_soup_long_run(text: str) -> None:
    _exercise(text)
