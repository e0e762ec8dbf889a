"""Go constants in templates: string, raw-string, character and number literals.

The parser's lexing and tree building follow `text/template/parse`; these are the
`strconv` rules it leans on (`Unquote`, `ParseInt`/`ParseFloat` with Go's prefixes,
underscores and character constants), kept apart because they are a concern of
their own: what a literal's text means, not where it may appear. Hand-written
because Python's own literal rules differ from Go's (`int("0755", 0)` is an error
where Go reads octal; Go has character constants and `0x1p-2` floats), and a
template must render exactly as step-ca's does.
"""

from __future__ import annotations

from shared.templates import nodes as n
from shared.templates.errors import TemplateError
from shared.templates.lexer import Token


def token_string(tok: Token, name: str) -> str:
    """The value of a string or raw-string token (Go drops carriage returns from raw strings)."""
    if tok.kind == "rawstring":
        return tok.value[1:-1].replace("\r", "")
    value = unquote_go(tok.value[1:-1], '"')
    if value is None:
        raise TemplateError(f"invalid syntax: {tok.value}", tok.line, name)
    return value


_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def unquote_go(text: str, quote: str) -> str | None:
    """Go's strconv.Unquote for "..." or '...' bodies; None when the syntax is invalid."""
    out: list[str] = []
    i = 0
    body = text
    while i < len(body):
        c = body[i]
        if c == quote:
            return None
        if c != "\\":
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= len(body):
            return None
        e = body[i]
        i += 1
        if e in _GO_ESCAPES:
            out.append(_GO_ESCAPES[e])
        elif e == quote:
            out.append(e)
        elif e in "xuU":
            width = {"x": 2, "u": 4, "U": 8}[e]
            digits = body[i:i + width]
            if len(digits) != width or any(d not in "0123456789abcdefABCDEF" for d in digits):
                return None
            code = int(digits, 16)
            i += width
            if e == "x":
                if quote == "'" and code > 0x7F:
                    return None
                out.append(chr(code) if code < 0x80 else bytes([code]).decode("latin-1"))
            else:
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    return None
                out.append(chr(code))
        elif e in "01234567":
            digits = body[i - 1:i + 2]
            if len(digits) != 3 or any(d not in "01234567" for d in digits):
                return None
            code = int(digits, 8)
            if code > 255:
                return None
            i += 2
            out.append(chr(code))
        else:
            return None
    return "".join(out)


def _parse_int(text: str) -> int | None:
    body = text.lstrip("+-")
    neg = text.startswith("-")
    if not body:
        return None
    # Go allows underscores only between digits (or after a base prefix).
    if "_" in body and (body.startswith("_") or body.endswith("_") or "__" in body):
        return None
    lower = body.lower()
    try:
        if lower.startswith("0x"):
            value = int(body[2:].replace("_", ""), 16) if body[2:].strip("_") else None
        elif lower.startswith("0o"):
            value = int(body[2:].replace("_", ""), 8) if body[2:].strip("_") else None
        elif lower.startswith("0b"):
            value = int(body[2:].replace("_", ""), 2) if body[2:].strip("_") else None
        elif len(body) > 1 and body[0] == "0":
            value = int(body.replace("_", ""), 8)
        else:
            value = int(body.replace("_", ""), 10)
    except ValueError:
        return None
    if value is None:
        return None
    return -value if neg else value


def _parse_float(text: str) -> float | None:
    body = text.replace("_", "")
    lower = body.lower().lstrip("+-")
    try:
        if lower.startswith("0x"):
            if "p" not in lower:
                return None
            return float.fromhex(body)
        if lower.startswith(("0o", "0b")) or lower in ("inf", "infinity", "nan"):
            return None
        return float(body)
    except (ValueError, OverflowError):
        return None


def make_number(tok: Token, name: str) -> n.Number:
    """Go's parse.newNumber: which of int/float a constant can be (chars and hex included)."""
    text = tok.value
    if text.endswith("i"):
        raise TemplateError(f"complex constants are not supported: {text}", tok.line, name)
    if tok.kind == "char":
        value = unquote_go(text[1:-1], "'")
        if value is None or len(value) != 1:
            raise TemplateError(f"malformed character constant: {text}", tok.line, name)
        code = ord(value)
        return n.Number(tok.line, text, True, True, code, float(code), False)
    as_int = _parse_int(text)
    is_int = as_int is not None and -(1 << 63) <= as_int < (1 << 63)
    as_float = float(as_int) if is_int and as_int is not None else _parse_float(text)
    if as_int is not None and not is_int and as_float is None:
        raise TemplateError(f"illegal number syntax: {text!r}", tok.line, name)
    is_float = as_float is not None
    if not is_int and as_float is not None and as_float == int(as_float) and abs(as_float) < 2**63:
        is_int = True
        as_int = int(as_float)
    if not is_int and not is_float:
        raise TemplateError(f"illegal number syntax: {text!r}", tok.line, name)
    lower = text.lower()
    hex_int = lower.lstrip("+-").startswith("0x") and "p" not in lower
    ideal_float = is_float and not hex_int and any(c in text for c in ".eEpP")
    return n.Number(tok.line, text, is_int, is_float, as_int if is_int and as_int is not None else 0,
                    as_float if as_float is not None else 0.0, ideal_float)
