"""The one error type the template engine raises.

Every failure (lexing, parsing, execution, a limit, step's `fail`) is a `TemplateError` carrying the
template's name and the line it happened on, so a caller can show `name:line: message` and
a hostile or broken template can never surface as some other Python exception.
"""

from __future__ import annotations


class TemplateError(Exception):
    """A template could not be parsed or rendered."""

    def __init__(self, message: str, line: int = 0, name: str = "template", *, failed: bool = False,
                 reason: str = "") -> None:
        self.message = message
        self.line = line
        self.name = name
        self.failed = failed  # True when the template itself called `fail`
        self.reason = reason or message  # for `fail`: the template's own message, as step-ca answers it
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.line:
            return f"template: {self.name}:{self.line}: {self.message}"
        return f"template: {self.name}: {self.message}"
