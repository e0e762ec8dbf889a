"""The compiled fast path (shared/templates/compiled.py) renders exactly what the tree walker renders,
or gives up and lets the walker render: checked over the whole differential corpus (step's default
and documented templates and the generated cases, errors included)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.templates import FUNCS, Limits, Template, TemplateError
from shared.templates.compiled import compile_template
from shared.templates.execute import execute
from shared.templates.values import normalize
from tests.templates import corpus


def _walker(template: Template, data: Any) -> tuple[bool, str]:
    try:
        return True, execute(template.name, template.trees, FUNCS, normalize(data), Limits())
    except TemplateError as exc:
        return False, str(exc)


def test_compiled_output_is_the_walkers_over_the_corpus() -> None:
    compiled = gave_up = 0
    cases = corpus.fixed_cases() + corpus.generated_cases()
    for text, data in cases:
        try:
            template = Template(text)
        except TemplateError:
            continue
        fast = compile_template(template.name, template.trees, FUNCS)
        if fast is None:
            continue
        compiled += 1
        ok, walked = _walker(template, data)
        got = fast.render(normalize(data), Limits().max_output)
        if got is None:
            gave_up += 1
            continue
        assert ok and got == walked, (text, data, got, walked)
        # And through Template.render, which picks the fast path.
        assert template.render(data) == walked.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    # Not vacuous: a good share of the corpus compiles, and some compiled runs hand over to the walker.
    assert compiled > len(cases) // 4, (compiled, len(cases))
    assert 0 < gave_up < compiled


def test_step_default_templates_take_the_fast_path() -> None:
    for text in (*corpus.X509_DEFAULTS.values(), *corpus.SSH_DEFAULTS.values()):
        template = Template(text)
        assert compile_template(template.name, template.trees, FUNCS) is not None, text


def test_errors_and_limits_are_the_walkers() -> None:
    """A compiled template that fails renders the walker's error with its line; its output is bounded."""
    text = '{\n"a": {{ toJson .x }},\n"b": {{ fail "no b here" }}\n}'
    assert compile_template("template", Template(text).trees, FUNCS) is not None
    template = Template(text)
    walked = _walker(template, {"x": 1})
    try:
        template.render({"x": 1})
    except TemplateError as exc:
        assert (False, str(exc)) == walked and exc.line == 3 and exc.failed and exc.reason == "no b here"
    else:
        raise AssertionError("fail did not fail")
    big = Template('{{ printf "%s%s" .x .x }}{{ printf "%s%s" .x .x }}')
    try:
        big.render({"x": "y" * 300_000}, Limits(max_output=1_000_000))
    except TemplateError as exc:
        assert "output exceeds" in exc.message
    else:
        raise AssertionError("output limit not enforced")
    assert big.render({"x": "ab"}) == "abababab"


@pytest.mark.parametrize(("text", "data"), [
    ("plain text only", {}),
    ("{{ if .a }}yes{{ else }}no{{ end }}|{{ if .b }}B{{ end }}|", {"a": True}),
    ("{{ if .a }}{{ if .b }}ab{{ end }}{{ end }}{{ upper .s }}{{ printf \"%s-%s\" .s .s }}{{ now | typeOf }}", {"a": 1, "b": "x", "s": "q"}),
])
def test_constant_parts_and_branches_render_as_the_walker(text: str, data: dict[str, object]) -> None:
    template = Template(text)
    fast = compile_template(template.name, template.trees, FUNCS)
    assert fast is not None
    assert fast.render(normalize(data), Limits().max_output) == _walker(template, data)[1]


def test_an_over_long_compiled_text_goes_to_the_walker() -> None:
    template = Template("{{ .x }}{{ .x }}")
    fast = compile_template(template.name, template.trees, FUNCS)
    assert fast is not None
    assert fast.render({"x": "y" * 10}, 20) == "y" * 20
    assert fast.render({"x": "y" * 10}, 19) is None
