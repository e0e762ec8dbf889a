"""sprig's text functions with Go's exact behaviour: title/trim/split, RE2 regular expressions with
Go's `$1`/`${name}` expansion, base64 decoding with Go's error offsets, and Go time layouts.

Hand-written because Python's equivalents differ in the details templates can observe (Python's
`re` is not RE2 and expands `\\1`, `base64` reports other errors, `strftime` is not Go's layout).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import re2  # type: ignore[import-untyped]

from shared.templates.functions import FuncError
from shared.templates.values import GoTyped


def _is_title_separator(c: str) -> bool:
    if ord(c) <= 0x7F:
        return not (c.isalnum() or c == "_")
    if c.isalpha() or c.isdigit():
        return False
    return c.isspace()


def title(s: str) -> str:
    out = []
    prev = " "
    for c in s:
        out.append(c.title() if len(c.title()) == 1 and _is_title_separator(prev) else c)
        prev = c
    return "".join(out)


def go_trim_space(s: str) -> str:
    return s.strip(" \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
                   "\u200a\u2028\u2029\u202f\u205f\u3000")


def go_split(s: str, sep: str) -> list[str]:
    if sep == "":
        return list(s)
    return s.split(sep)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _compile(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except Exception as exc:  # re2's own error type: any failure is a bad pattern
        raw = exc.args[0] if exc.args else ""
        detail = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        raise FuncError(f"error parsing regexp: {detail}") from None


def regex_match(pattern: str, s: str) -> bool:
    try:
        return _compile(pattern).search(s) is not None
    except FuncError:
        return False


def regex_find(pattern: str, s: str) -> str:
    m = _compile(pattern).search(s)
    return m.group(0) if m else ""


def _expand(template: str, m: Any, names: dict[str, int]) -> str:
    """Go's Regexp.Expand: $1, ${1}, $name, ${name}, $$."""
    out: list[str] = []
    i = 0
    while i < len(template):
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < len(template) and template[i] == "$":
            out.append("$")
            i += 1
            continue
        name = ""
        if i < len(template) and template[i] == "{":
            k = template.find("}", i + 1)
            candidate = template[i + 1:k] if k >= 0 else ""
            if k < 0 or not candidate or not all(c.isalnum() or c == "_" for c in candidate):
                out.append("$")
                continue
            name = candidate
            i = k + 1
        else:
            k = i
            while k < len(template) and (template[k].isalnum() or template[k] == "_"):
                k += 1
            if k == i:
                out.append("$")
                continue
            name = template[i:k]
            i = k
        group: int | None
        if name.isdigit() and name.isascii():
            group = int(name)
        else:
            group = names.get(name)
        if group is not None and group <= m.re.groups:
            value = m.group(group)
            if value:
                out.append(value)
    return "".join(out)


def regex_replace_all(pattern: str, s: str, repl: str) -> str:
    rx = _compile(pattern)
    names = dict(rx.groupindex)
    out: list[str] = []
    pos = 0
    last_match_end = -1
    search_pos = 0
    while search_pos <= len(s):
        m = rx.search(s, search_pos)
        if m is None:
            break
        start, end = m.span()
        if start == end and start == last_match_end:
            # Go skips an empty match right after the previous match.
            if search_pos >= len(s):
                break
            search_pos = start + 1
            continue
        out.append(s[pos:start])
        out.append(_expand(repl, m, names))
        pos = end
        last_match_end = end
        search_pos = end if end > start else end + 1
    out.append(s[pos:])
    return "".join(out)


def b64dec(s: str) -> str:
    data = s.encode("utf-8", "surrogateescape")
    try:
        decoded = _go_b64decode(data)
    except _B64Error as exc:
        return f"illegal base64 data at input byte {exc.offset}"
    return decoded.decode("utf-8", "surrogateescape")


class _B64Error(Exception):
    def __init__(self, offset: int) -> None:
        self.offset = offset


_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_MAP = {c: i for i, c in enumerate(_B64)}


def _go_b64decode(src: bytes) -> bytes:
    """base64.StdEncoding.DecodeString, quantum by quantum as Go's decodeQuantum (same error offsets)."""
    out = bytearray()
    si = 0
    n = len(src)
    while True:
        dbuf = [0, 0, 0, 0]
        dlen = 4
        j = 0
        done = False
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                raise _B64Error(si - j)
            c = src[si]
            si += 1
            if c in _B64_MAP:
                dbuf[j] = _B64_MAP[c]
                j += 1
                continue
            if c in (0x0A, 0x0D):
                continue
            if c != ord("="):
                raise _B64Error(si - 1)
            if j in (0, 1):
                raise _B64Error(si - 1)
            if j == 2:
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    raise _B64Error(n)
                if src[si] != ord("="):
                    raise _B64Error(si - 1)
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                raise _B64Error(si)
            dlen = j
            done = True
            break
        val = (dbuf[0] << 18) | (dbuf[1] << 12) | (dbuf[2] << 6) | dbuf[3]
        out += val.to_bytes(3, "big")[: dlen - 1 if dlen < 4 else 3]
        if done:
            return bytes(out)


_LAYOUT = ["January", "Jan", "Monday", "Mon", "MST", "2006", "-07:00", "-0700", "Z07:00", "Z0700", "01", "02",
           "03", "04", "05", "06", "15", "_2", "1", "2", "3", "4", "5", "PM", "pm"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _layout_chunk(token: str, t: dt.datetime) -> str:
    hour12 = t.hour % 12 or 12
    values = {
        "January": _MONTHS[t.month - 1], "Jan": _MONTHS[t.month - 1][:3], "Monday": _DAYS[t.weekday()],
        "Mon": _DAYS[t.weekday()][:3], "MST": "UTC", "2006": f"{t.year:04d}", "-07:00": "+00:00", "-0700": "+0000",
        "Z07:00": "Z", "Z0700": "Z", "01": f"{t.month:02d}", "02": f"{t.day:02d}", "03": f"{hour12:02d}",
        "04": f"{t.minute:02d}", "05": f"{t.second:02d}", "06": f"{t.year % 100:02d}", "15": f"{t.hour:02d}",
        "_2": f"{t.day:>2d}", "1": str(t.month), "2": str(t.day), "3": str(hour12), "4": str(t.minute),
        "5": str(t.second), "PM": "PM" if t.hour >= 12 else "AM", "pm": "pm" if t.hour >= 12 else "am",
    }
    return values[token]


def date(layout: str, when: Any) -> str:
    """sprig's date: a Go layout over a time or Unix seconds (UTC)."""
    if isinstance(when, GoTyped) and when.go_type == "time.Time":
        moment = dt.datetime.fromisoformat(str(when.json).replace("Z", "+00:00"))
    elif isinstance(when, int) and not isinstance(when, bool):
        moment = dt.datetime.fromtimestamp(int(when), dt.UTC)
    else:
        moment = dt.datetime.now(dt.UTC)
    out: list[str] = []
    i = 0
    while i < len(layout):
        for token in _LAYOUT:
            if layout.startswith(token, i):
                out.append(_layout_chunk(token, moment))
                i += len(token)
                break
        else:
            out.append(layout[i])
            i += 1
    return "".join(out)
