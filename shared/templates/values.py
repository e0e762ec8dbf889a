"""How Go sees the data: types, truth, `%v` printing and encoding/json output.

Data is JSON-like Python (dict, list, str, int, float, bool, None). JSON numbers reach Go templates
as float64, so `normalize` turns data ints into floats; ints that templates produce (literals,
`len`) are Go `int`, sprig's arithmetic yields `I64` (int64). `Missing` is Go's invalid value (a
map key that is absent), printed `<no value>`. `GoTyped` lets a caller hand over a value that Go
would see with a named type (e.g. the CSR's public key as `*rsa.PublicKey` for `typeIs`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.templates.errors import TemplateError


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


class I64(int):
    """A Go int64 (sprig's arithmetic results); plain Python int is Go's int."""

    __slots__ = ()


class U8(int):
    """A Go uint8 (a byte of a string, from `index`)."""

    __slots__ = ()


class StrList(list):  # type: ignore[type-arg]
    """A Go []string (splitList, keys)."""

    __slots__ = ()


class IntList(list):  # type: ignore[type-arg]
    """A Go []int (until)."""

    __slots__ = ()


class StrMap(dict):  # type: ignore[type-arg]
    """A Go map[string]string (split)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class GoTyped:
    """An opaque value with a Go type name; toJson renders `json`, printing renders `text`."""

    go_type: str
    kind: str
    json: Any = None
    text: str = ""


class Lazy:
    """A struct field's value computed the first time a template reads it.

    Why: step-ca hands every template the whole request (`.Insecure.CR`: subject, names,
    extensions), but most templates read one or two fields of it; building the rest for every
    certificate cost more CPU than rendering the template. Only Cirrus's own code makes these.
    """

    __slots__ = ("arg", "compute")

    def __init__(self, compute: Callable[[Any, str], Any], arg: Any = None) -> None:
        # `compute(arg, field name)`: one Lazy can stand for several fields of a struct (the CSR's
        # subject, names and extensions), so a request's struct makes one object, not a closure each.
        self.compute = compute
        self.arg = arg


class GoStruct:
    """A Go struct value, as step-ca hands templates its own types (`.Subject`, `.SANs`, `.Insecure.CR`).

    Templates reach fields by their Go names (`.Subject.CommonName`); `toJson` writes the JSON names
    in declaration order, dropping `omitempty` fields that are empty and fields tagged `json:"-"`.
    A field's value may be `Lazy`: it is computed on first read and kept.
    """

    __slots__ = ("fields", "go_type", "values")

    def __init__(self, go_type: str, fields: list[tuple[str, str | None, bool, Any]]) -> None:
        self.go_type = go_type
        self.fields = [(go, js, omit) for go, js, omit, _ in fields]  # (Go name, JSON name or None, omitempty)
        self.values = {go: value for go, _, _, value in fields}

    def field(self, name: str) -> Any:
        """The field's value; KeyError when the struct has no such field."""
        value = self.values[name]
        if type(value) is Lazy:
            value = self.values[name] = value.compute(value.arg, name)
        return value

    @classmethod
    def of(cls, layout: StructLayout, values: dict[str, Any]) -> GoStruct:
        """A struct of a layout made once (no per-value copy of the field list); `values` by Go name."""
        obj = cls.__new__(cls)
        obj.go_type = layout.go_type
        obj.fields = layout.fields
        obj.values = values
        return obj


class StructLayout:
    """A Go struct type's fields, for `GoStruct.of`: (Go name, JSON name or None, omitempty)."""

    __slots__ = ("fields", "go_type")

    def __init__(self, go_type: str, fields: list[tuple[str, str | None, bool]]) -> None:
        self.go_type = go_type
        self.fields = fields


class PreparedData(dict):  # type: ignore[type-arg]
    """Template data some of whose keys (`prepared`) hold values already as Go sees them (Cirrus's
    own structs, numbers as float64, containers fresh for this render), so `Template.render` does
    not copy them again; every other key (templateData, `.Inventory`, `.Webhooks`...) is normalized
    as usual. A copy made with dict() is plain data again, normalized whole."""

    __slots__ = ("prepared",)

    def __init__(self, values: Mapping[str, Any], prepared: frozenset[str]) -> None:
        super().__init__(values)
        self.prepared = prepared


def go_bytes(s: str) -> bytes:
    """A string's bytes as Go sees them (invalid UTF-8 kept as lone surrogates round-trips)."""
    return s.encode("utf-8", "surrogateescape")


def go_string(b: bytes) -> str:
    """Bytes as a template string (invalid UTF-8 survives as lone surrogates, like Go's raw bytes)."""
    return b.decode("utf-8", "surrogateescape")


def normalize(value: Any, depth: int = 0) -> Any:
    """Data as Go's encoding/json would decode it: every number a float64, containers copied."""
    kind = type(value)
    if kind is PreparedData:
        out: dict[str, Any] = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TemplateError("data keys must be strings")
            # A templateData string (the usual case) needs no copy: no call for it.
            out[k] = v if k in value.prepared or type(v) is str else normalize(v, depth + 1)
        return out
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if depth > 200:
        raise TemplateError("data nested too deeply")
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TemplateError("data keys must be strings")
            # Leaves inline (most of a token's claims): a call per value was most of this copy's time.
            t = type(v)
            if t is str or t is float or t is bool or v is None or t is GoStruct:
                out[k] = v
            elif t is int:
                out[k] = _float(v)
            else:
                out[k] = normalize(v, depth + 1)
        return out
    if kind is list or kind is tuple:
        return [v if type(v) is str or type(v) is GoStruct else normalize(v, depth + 1) for v in value]
    if kind is int:
        return _float(value)
    if isinstance(value, (GoTyped, GoStruct)):
        return value
    if isinstance(value, (bool, str, float)):
        return value
    if isinstance(value, int):
        return _float(value)
    if isinstance(value, dict):
        return normalize(dict(value), depth)
    if isinstance(value, (list, tuple)):
        return normalize(list(value), depth)
    raise TemplateError(f"unsupported data type {type(value).__name__}")


def _float(value: int) -> float:
    """A JSON integer as Go's float64; one beyond its range fails as Go's decoder does (not an OverflowError)."""
    try:
        return float(value)
    except OverflowError:
        raise TemplateError("data number out of range") from None


def type_name(v: Any) -> str:
    """Go's %T of a value."""
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, I64):
        return "int64"
    if isinstance(v, U8):
        return "uint8"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, StrList):
        return "[]string"
    if isinstance(v, IntList):
        return "[]int"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, StrMap):
        return "map[string]string"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, (GoTyped, GoStruct)):
        return v.go_type
    return "<nil>"


def kind_name(v: Any) -> str:
    """Go's reflect Kind name."""
    if v is None or v is MISSING:
        return "invalid"
    if isinstance(v, GoTyped):
        return v.kind
    if isinstance(v, GoStruct):
        return "ptr" if v.go_type.startswith("*") else "struct"
    t = type_name(v)
    if t.startswith("[]"):
        return "slice"
    if t.startswith("map["):
        return "map"
    return t


def truth(v: Any) -> bool:
    """Go template truth: false, 0, nil, empty string/slice/map are false."""
    if v is None or v is MISSING:
        return False
    if isinstance(v, (GoTyped, GoStruct)):
        return True
    if isinstance(v, (bool, int, float, str, list, dict)):
        return bool(v)
    return True


def format_float(f: float, fmt: str = "g", prec: int = -1) -> str:
    """Go's strconv.FormatFloat for 'g' / 'e' / 'f' with shortest (-1) or fixed precision."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if fmt == "f":
        if prec < 0:
            digits, exp = _shortest(f)
            return _fixed_from_digits(f < 0 or (f == 0 and math.copysign(1, f) < 0), digits, exp)
        return f"{f:.{prec}f}"
    if fmt == "e":
        if prec < 0:
            digits, exp = _shortest(f)
            return _exp_from_digits(math.copysign(1, f) < 0, digits, exp)
        return f"{f:.{prec}e}"
    # 'g'
    if prec < 0:
        digits, exp = _shortest(f)
        neg = math.copysign(1, f) < 0
        x = exp - 1
        if x < -4 or x >= 6:
            return _exp_from_digits(neg, digits, exp)
        return _fixed_from_digits(neg, digits, exp)
    return _go_g(f, prec or 1)


def _go_g(f: float, prec: int) -> str:
    s = f"{f:.{prec}g}"
    return s


def _shortest(f: float) -> tuple[str, int]:
    """Shortest round-trip digits and decimal exponent (value = 0.d1d2... * 10**exp)."""
    if f == 0:
        return "0", 1
    r = repr(abs(f))
    mantissa, _, e = r.partition("e")
    exp10 = int(e) if e else 0
    intpart, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    digits = (intpart + frac).lstrip("0")
    lead = len(intpart) if intpart != "0" else -(len(frac) - len(frac.lstrip("0")))
    digits = digits.rstrip("0") or "0"
    return digits, lead + exp10


def _exp_from_digits(neg: bool, digits: str, exp: int) -> str:
    x = exp - 1
    body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sign = "-" if x < 0 else "+"
    return ("-" if neg else "") + body + "e" + sign + f"{abs(x):02d}"


def _fixed_from_digits(neg: bool, digits: str, exp: int) -> str:
    if exp <= 0:
        body = "0." + "0" * (-exp) + digits
    elif exp >= len(digits):
        body = digits + "0" * (exp - len(digits))
    else:
        body = digits[:exp] + "." + digits[exp:]
    return ("-" if neg else "") + body


def sprint_value(v: Any, top: bool = True) -> str:
    """fmt's %v of a value (Print of a template action)."""
    if v is MISSING:
        return "<no value>" if top else "<nil>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return format_float(v, "g", -1)
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        return "[" + " ".join(sprint_value(x, False) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{sprint_value(v[k], False)}" for k in sorted(v)) + "]"
    if isinstance(v, GoTyped):
        return v.text
    if isinstance(v, GoStruct):
        body = "{" + " ".join(sprint_value(v.field(go), False) for go, _, _ in v.fields) + "}"
        return "&" + body if v.go_type.startswith("*") else body
    return "<nil>"
