"""The function table shape shared by Go's builtins and the sprig functions.

Go's template engine converts each argument to the function's declared parameter type before the
call (and refuses a wrong type), so every function here declares its parameters the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class FuncError(Exception):
    """A function refused its arguments (Go: returned an error or panicked)."""


# Parameter types: "any" (interface{}), "value" (reflect.Value: missing passes through), "string",
# "int", "int64", "float64", "bool", "map" (map[string]interface{}), "list" ([]interface{}).
@dataclass(frozen=True, slots=True)
class Func:
    """One callable template function with Go's parameter types."""

    call: Callable[..., Any]
    params: tuple[str, ...]
    variadic: str | None = None
