"""Go's fmt.Sprintf / Sprint / Sprintln over template values.

Hand-written (Python's % and format() differ from Go in verbs, flags, %v of containers, %q quoting
and the `%!d(string=x)` error forms); covers the verbs templates use: v s d q x X o b c t e E f F
g G T U and %%, with flags - + # 0 space, width and precision (including `*`).
"""

from __future__ import annotations

import math
from typing import Any

from shared.templates.values import MISSING, GoStruct, GoTyped, format_float, sprint_value, type_name


def go_quote(s: str, ascii_only: bool = False) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable() and not (ascii_only and o > 0x7E) and ch != "\u00ad":
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append("\\ufffd")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def sprint(args: list[Any]) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out: list[str] = []
    prev_string = True
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(sprint_value(a, False))
        prev_string = is_string
    return "".join(out)


def sprintln(args: list[Any]) -> str:
    """fmt.Sprintln: always spaces, then a newline."""
    return " ".join(sprint_value(a, False) for a in args) + "\n"


class _Spec:
    __slots__ = ("minus", "plus", "prec", "sharp", "sharp_v", "space", "width", "zero")

    def __init__(self) -> None:
        self.minus = self.plus = self.sharp = self.sharp_v = self.zero = self.space = False
        self.width: int | None = None
        self.prec: int | None = None


def _pad(spec: _Spec, s: str, numeric: bool = False) -> str:
    if spec.width is None or len(s) >= spec.width:
        return s
    fill = spec.width - len(s)
    if spec.minus:
        return s + " " * fill
    if spec.zero and numeric:
        sign = s[0] if s and s[0] in "+- " else ""
        body = s[len(sign):]
        return sign + "0" * fill + body
    if spec.zero and not numeric:
        return "0" * fill + s
    return " " * fill + s


def _fmt_int(spec: _Spec, v: int, verb: str) -> str:
    neg = v < 0
    a = -v if neg else v
    if verb == "d" or verb == "v":
        digits = str(a)
    elif verb == "x":
        digits = format(a, "x")
    elif verb == "X":
        digits = format(a, "X")
    elif verb == "o" or verb == "O":
        digits = format(a, "o")
    elif verb == "b":
        digits = format(a, "b")
    elif verb == "c":
        return _pad(spec, chr(v) if 0 <= v <= 0x10FFFF and not 0xD800 <= v <= 0xDFFF else "\ufffd")
    elif verb == "q":
        c = chr(v) if 0 <= v <= 0x10FFFF and not 0xD800 <= v <= 0xDFFF else "\ufffd"
        q = go_quote(c)[1:-1]
        return _pad(spec, "'" + (q if c != "'" else "\\'").replace('\\"', '"') + "'")
    elif verb == "U":
        s = f"U+{v & ((1 << 64) - 1):04X}"
        return _pad(spec, s)
    else:
        return ""
    if spec.prec is not None:
        if spec.prec == 0 and v == 0:
            digits = ""
        digits = digits.rjust(spec.prec, "0")
    prefix = ""
    if spec.sharp:
        prefix = {"x": "0x", "X": "0X", "o": "0", "b": "0b"}.get(verb, "")
        if verb == "o" and digits.startswith("0"):
            prefix = ""
    if verb == "O":
        prefix = "0o"
    sign = "-" if neg else "+" if spec.plus else " " if spec.space else ""
    s = sign + prefix + digits
    if spec.zero and spec.prec is None and not spec.minus and spec.width is not None and len(s) < spec.width:
        return sign + prefix + "0" * (spec.width - len(s)) + digits
    return _pad(spec, s)


def _fmt_float(spec: _Spec, f: float, verb: str) -> str:
    if verb == "v":
        verb = "g"
    if math.isinf(f) or math.isnan(f):
        s = "NaN" if math.isnan(f) else ("+Inf" if f > 0 else "-Inf")
        if s[0] == "+" and not spec.plus:
            s = s[1:]
        elif math.isnan(f) and spec.plus:
            s = "+NaN"
        w = _Spec()
        w.width, w.minus = spec.width, spec.minus
        return _pad(w, s)
    low = verb.lower()
    if spec.sharp:
        # '#' keeps the decimal point (and, for %g, trailing zeros to the precision, 6 by default).
        prec = 6 if spec.prec is None else spec.prec
        s = f"{f:#.{prec}{low if low in 'ef' else 'g'}}"
    elif low == "f":
        s = format_float(f, "f", 6 if spec.prec is None else spec.prec)
    elif low == "e":
        s = format_float(f, "e", 6 if spec.prec is None else spec.prec)
    else:
        if spec.prec is None:
            s = format_float(f, "g", -1)
        else:
            s = format_float(f, "g", spec.prec)
    if verb in "EG":
        s = s.upper()
    if spec.plus and not s.startswith("-"):
        s = "+" + s
    elif spec.space and not s.startswith("-"):
        s = " " + s
    return _pad(spec, s, numeric=True)


def _bad(verb: str, v: Any, spec: _Spec | None = None) -> str:
    if v is None or v is MISSING:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({type_name(v)}={_fmt_value(spec or _Spec(), 'v', v)})"


def _sharp_v(v: Any, top: bool = True) -> str:
    """%#v: Go-syntax representation."""
    if v is None or v is MISSING:
        return "<nil>" if top else "interface {}(nil)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        return format_float(v, "g", -1)
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, list):
        return type_name(v) + "{" + ", ".join(_sharp_v(x, False) for x in v) + "}"
    if isinstance(v, dict):
        return type_name(v) + "{" + ", ".join(f"{go_quote(k)}:{_sharp_v(v[k], False)}" for k in sorted(v)) + "}"
    if isinstance(v, GoTyped):
        return v.text
    return "<nil>"


def _float_hex(f: float, upper: bool) -> str:
    """%x of a float64: Go's hexadecimal mantissa and p exponent (at least two exponent digits)."""
    if f == 0:
        s = "0x0p+00"
    else:
        h = float.hex(abs(f))  # 0x1.4000000000000p+1
        mant, _, exp = h.partition("p")
        mant = mant.rstrip("0").rstrip(".")
        e = int(exp)
        s = f"{mant}p{'-' if e < 0 else '+'}{abs(e):02d}"
        if f < 0:
            s = "-" + s
    return s.upper().replace("0X", "0X") if upper else s


def _float_binary(f: float) -> str:
    """%b of a float64: decimal mantissa, binary exponent."""
    if f == 0:
        return "0p-1074"
    m, e = math.frexp(abs(f))
    mant = int(m * (1 << 53))
    exp = e - 53
    if exp < -1074:
        mant >>= -1074 - exp
        exp = -1074
    return ("-" if f < 0 else "") + f"{mant}p{'-' if exp < 0 else '+'}{abs(exp)}"


def _fmt_value(spec: _Spec, verb: str, v: Any, depth: int = 0) -> str:
    if verb == "T":
        return _pad(spec, type_name(v))
    if spec.sharp_v and verb == "v":
        return _pad(spec, _sharp_v(v))
    if v is None or v is MISSING:
        if depth > 0:
            return "<nil>"
        if verb == "v":
            return _pad(spec, "<nil>")
        return _bad(verb, v)
    if isinstance(v, bool):
        if verb in "vt":
            return _pad(spec, "true" if v else "false")
        return _bad(verb, v, spec)
    if isinstance(v, int):
        if verb in "vdxXobcqUO":
            return _fmt_int(spec, int(v), verb)
        return _bad(verb, v, spec)
    if isinstance(v, float):
        if verb in "veEfFgG":
            return _fmt_float(spec, v, verb)
        if verb in "xX" and spec.prec is None:
            s = _float_hex(v, verb == "X")
            if spec.plus and v >= 0:
                s = "+" + s
            elif spec.space and v >= 0:
                s = " " + s
            return _pad(spec, s, numeric=True)
        if verb == "b":
            return _pad(spec, _float_binary(v), numeric=True)
        return _bad(verb, v, spec)
    if isinstance(v, str):
        if verb in "vs":
            s = v if spec.prec is None else v[: spec.prec]
            return _pad(spec, s)
        if verb == "q":
            s = v if spec.prec is None else v[: spec.prec]
            if spec.sharp and "`" not in s and all(c.isprintable() or c == "\t" for c in s):
                return _pad(spec, "`" + s + "`")
            return _pad(spec, go_quote(s, spec.plus))
        if verb in "xX":
            data = (v if spec.prec is None else v[: spec.prec]).encode("utf-8", "surrogateescape")
            hexs = data.hex() if verb == "x" else data.hex().upper()
            if spec.space:
                sep = [hexs[i:i + 2] for i in range(0, len(hexs), 2)]
                if spec.sharp:
                    sep = [("0x" if verb == "x" else "0X") + h for h in sep]
                hexs = " ".join(sep)
            elif spec.sharp and hexs:
                hexs = ("0x" if verb == "x" else "0X") + hexs
            return _pad(spec, hexs)
        return _bad(verb, v, spec)
    if isinstance(v, list):
        if depth > 50:
            return "[...]"
        return "[" + " ".join(_fmt_value(_plain_like(spec), verb, x, depth + 1) for x in v) + "]"
    if isinstance(v, dict):
        if depth > 50:
            return "map[...]"
        inner = _plain_like(spec)
        d = depth + 1
        pairs = (f"{_fmt_value(inner, verb, k, d)}:{_fmt_value(inner, verb, v[k], d)}" for k in sorted(v))
        return "map[" + " ".join(pairs) + "]"
    if isinstance(v, (GoTyped, GoStruct)):
        return _pad(spec, sprint_value(v, False))
    return _bad(verb, v, spec)


def _plain_like(spec: _Spec) -> _Spec:
    return spec


def sprintf(fmt: str, args: list[Any]) -> str:
    """fmt.Sprintf with Go's verbs, flags and error forms."""
    # The usual template call, text and plain %s over strings (`printf "%s.%s" .a .b`): no verb parsing.
    pieces = fmt.split("%s")
    if len(pieces) == len(args) + 1 and all(type(a) is str for a in args) and all("%" not in p for p in pieces):
        return pieces[0] + "".join(a + p for a, p in zip(args, pieces[1:], strict=True))
    out: list[str] = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        if i >= n:
            out.append("%!(NOVERB)")
            break
        spec = _Spec()
        while i < n and fmt[i] in "-+# 0":
            c = fmt[i]
            if c == "-":
                spec.minus = True
                spec.zero = False
            elif c == "+":
                spec.plus = True
            elif c == "#":
                spec.sharp = True
            elif c == " ":
                spec.space = True
            elif c == "0":
                spec.zero = not spec.minus
            i += 1
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                spec.width = int(args[argi])
                if spec.width < 0:
                    spec.minus, spec.zero, spec.width = True, False, -spec.width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > start:
                spec.width = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                    spec.prec = int(args[argi])
                    if spec.prec < 0:
                        spec.prec = None
                        out.append("%!(BADPREC)")
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                spec.prec = int(fmt[start:i]) if i > start else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[argi]
        argi += 1
        if verb == "v" and spec.sharp:
            spec.sharp, spec.sharp_v = False, True
        out.append(_fmt_value(spec, verb, arg))
    if argi < len(args):
        extra = ", ".join(f"{type_name(a)}={sprint_value(a, False)}" if a is not None and a is not MISSING else "<nil>"
                          for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
