"""Go `text/template` + sprig, as step-ca renders certificate templates.

Why hand-written: users migrating from step-ca bring templates in Go's template language, and no
Python package implements it (Jinja2 is a different language: other whitespace control, truthiness,
pipelines and functions). The engine is a tokenizer (`lexer`), a parser (`parser`) and an
evaluator (`execute`) over JSON-like data only, with Go's builtins (`builtins`) and the sprig
functions step-ca users rely on plus step's `fail` (`sprig`). Every failure is a `TemplateError`
naming the template line; every run is bounded in steps, depth and output.

The engine's modules are imported by the first `Template`, not with this package: the issuing
pipeline imports `TemplateError` and the value types from here for every `/sign`, and most
provisioners have no template, so a cold Cloud Function should not load a parser it never runs.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from shared.templates.errors import TemplateError
from shared.templates.values import GoStruct, GoTyped, PreparedData, normalize

if TYPE_CHECKING:
    from shared.templates.execute import Limits
    from shared.templates.functions import Func
    from shared.templates.reads import Reads

    FUNCS: dict[str, Func]

MAX_TEMPLATE_BYTES = 256 * 1024


@functools.cache
def _funcs() -> dict[str, Func]:
    """Go's builtins and the sprig functions, by name (imported on first use)."""
    from shared.templates.builtins import BUILTINS
    from shared.templates.sprig import SPRIG

    return {**BUILTINS, **SPRIG}


@functools.cache
def _default_limits() -> Limits:
    from shared.templates.execute import Limits

    return Limits()


def __getattr__(name: str) -> Any:
    """`Limits` and `FUNCS`, importing the engine when first asked for (PEP 562)."""
    if name == "Limits":
        from shared.templates.execute import Limits

        return Limits
    if name == "FUNCS":
        return _funcs()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Template:
    """A parsed template, ready to render many times."""

    def __init__(self, text: str, name: str = "template") -> None:
        if len(text) > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"template longer than {MAX_TEMPLATE_BYTES} bytes", 0, name)
        self.name = name
        from shared.templates.compiled import compile_template
        from shared.templates.parser import parse

        try:
            self.trees = parse(text, name, _funcs())
        except RecursionError:
            raise TemplateError("template nesting too deep", 0, name) from None
        self._compiled = compile_template(name, self.trees, _funcs())
        # The data keys it reads (`reads`): bounded for the templates the fast path compiles.
        from shared.templates.reads import data_reads, select

        self.data_reads: Reads | None = data_reads(self.trees, name) if self._compiled is not None else None
        self._select = select

    def render(self, data: Any, limits: Limits | None = None) -> str:
        """The text of this template over `data` (JSON-like; numbers are seen as Go's float64)."""
        try:
            reads = self.data_reads
            if reads is not None and (type(data) is dict or type(data) is PreparedData):
                value = self._select(data, reads)  # only what it reads: the same text (`reads`)
            else:
                value = normalize(data)
        except TemplateError as exc:
            raise TemplateError(exc.message, 0, self.name) from None
        limits = limits or _default_limits()
        text = self._compiled.render(value, limits.max_output) if self._compiled is not None else None
        try:
            if text is None:  # not compiled, or the compiled run gave up: the walker renders (and errs)
                from shared.templates.execute import execute

                text = execute(self.name, self.trees, _funcs(), value, limits)
        except TemplateError as exc:
            if exc.name != self.name:
                raise TemplateError(exc.message, exc.line, self.name, failed=exc.failed, reason=exc.reason) from None
            raise
        # Go writes raw bytes; invalid UTF-8 in the output is shown as U+FFFD. ASCII output (most
        # certificate templates) cannot hold any: no round trip.
        if text.isascii():
            return text
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def render(text: str, data: Any, name: str = "template", limits: Limits | None = None) -> str:
    """Parse and render in one step."""
    return Template(text, name).render(data, limits)


__all__ = ["MAX_TEMPLATE_BYTES", "GoStruct", "GoTyped", "Limits", "Template", "TemplateError", "render"]
