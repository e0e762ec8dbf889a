"""Function arguments as Go's text/template checks them: a value against a parameter's type, a
literal converted to it, and the errors Go gives when they do not fit (`exec.go`'s validateType
and evalArg). Split from the evaluator (`execute`) so its hot loop stays small to read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shared.templates import nodes as n
from shared.templates.errors import TemplateError
from shared.templates.values import I64, MISSING, type_name

Fail = Callable[[str], TemplateError]

GO_TYPES = {"any": "interface {}", "value": "reflect.Value", "string": "string", "int": "int",
            "int64": "int64", "float64": "float64", "bool": "bool", "map": "map[string]interface {}",
            "list": "[]interface {}"}


def ideal_constant(num: n.Number, fail: Fail) -> Any:
    """A number literal where any type is accepted: float if written as one, else a Go int."""
    if num.ideal_float:
        return num.float_value
    if num.is_int:
        if not -(1 << 63) <= num.int_value < (1 << 63):
            raise fail(f"{num.text} overflows int")
        return num.int_value
    raise fail(f"{num.text} overflows int")


def literal_arg(node: n.Node, typ: str, fail: Fail) -> Any:
    """A literal argument converted to the parameter's type, or Go's error."""
    if typ in ("any", "value", "any_raw"):
        if isinstance(node, n.Bool):
            return node.value
        if isinstance(node, n.Number):
            return ideal_constant(node, fail)
        if isinstance(node, n.String):
            return node.value
    elif (typ == "bool" and isinstance(node, n.Bool)) or (typ == "string" and isinstance(node, n.String)):
        return node.value
    elif typ in ("int", "int64") and isinstance(node, n.Number):
        if not node.is_int:
            raise fail(f"expected integer; found {node.text}")
        return I64(node.int_value) if typ == "int64" else node.int_value
    elif typ == "float64" and isinstance(node, n.Number):
        if not node.is_float:
            raise fail(f"expected float; found {node.text}")
        return node.float_value
    names = {"bool": "bool", "string": "string", "int": "integer", "int64": "integer", "float64": "float"}
    expected = names.get(typ)
    if expected is not None:
        raise fail(f"expected {expected}; found {_node_text(node)}")
    raise fail(f"can't handle {_node_text(node)} for arg of type {GO_TYPES.get(typ, typ)}")


def check_value(value: Any, typ: str, fail: Fail) -> Any:
    """A value passed to a parameter of type `typ` (a missing value becomes nil where Go allows)."""
    if typ == "any_raw":
        return value
    if value is MISSING:
        if typ == "value":
            return MISSING
        if typ in ("any", "map", "list"):
            return None
        raise fail(f"invalid value; expected {GO_TYPES[typ]}")
    if typ in ("any", "value"):
        return value
    ok = False
    if typ == "string":
        ok = isinstance(value, str)
    elif typ == "int":
        ok = isinstance(value, int) and not isinstance(value, (bool, I64))
    elif typ == "int64":
        ok = isinstance(value, I64)
    elif typ == "float64":
        ok = isinstance(value, float)
    elif typ == "bool":
        ok = isinstance(value, bool)
    elif typ == "map":
        ok = isinstance(value, dict) and type_name(value) == "map[string]interface {}"
    elif typ == "list":
        ok = isinstance(value, list) and type_name(value) == "[]interface {}"
    if not ok:
        got = "interface {}" if value is None else type_name(value)
        raise fail(f"wrong type for value; expected {GO_TYPES[typ]}; got {got}")
    return value


def _node_text(node: n.Node) -> str:
    if isinstance(node, n.Number):
        return node.text
    if isinstance(node, n.String):
        return repr(node.value)
    if isinstance(node, n.Bool):
        return "true" if node.value else "false"
    return type(node).__name__.lower()
