"""The compiled fast path (shared/templates/compiled.py) renders exactly what the tree walker renders,
or gives up and lets the walker render: checked over the whole differential corpus (step's default
and documented templates and the generated cases, errors included)."""

from __future__ import annotations

from typing import Any

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
