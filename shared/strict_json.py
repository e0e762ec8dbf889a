"""Strict JSON for everything clients send (JWS headers and payloads, one-time tokens, request bodies).

What `json.loads` accepts that a signed object or a request must not carry (JOSE-02, I-JSON RFC 7493 s.2):
- a repeated member: which value wins differs between parsers, so a signer and a verifier
  could read different claims from the same bytes;
- an unpaired surrogate escape (`"\\ud800"`): it decodes to a string no UTF-8 encoder can
  write back, so a claim carrying one fails wherever it is stored or logged. It used to reach
  the token ledger as a `jti` and answer 500; refusing it here makes it the client's 4xx;
- `NaN`, `Infinity`, `-Infinity` (not JSON at all) and number literals too large for a double
  (`1e400`, read as infinity): a token time of NaN or infinity broke date arithmetic;
- nesting deeper than the interpreter's recursion limit, which `json.loads` reports as a
  `RecursionError` (a 500 for a body of 1,000 `[`): refused as too deep.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# A `\uD800`-`\uDFFF` escape somewhere in the text; only then are the strings walked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class StrictJSONError(ValueError):
    """Valid JSON that a signed object may not carry; the message names what was refused."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)  # at C speed; a repeated member collapses, so the sizes differ
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise StrictJSONError(f"duplicate member {k!r}")
            seen.add(k)
    return out


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise StrictJSONError("unpaired surrogate in a string") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(k)
            _check_strings(v)
    elif isinstance(value, list):
        for v in value:
            _check_strings(v)


def _no_constant(name: str) -> Any:
    raise StrictJSONError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise StrictJSONError("number out of range")
    return value


def loads_strict(data: bytes) -> Any:
    """Decode UTF-8 JSON, refusing repeated members, unpaired surrogates, non-finite numbers, deep nesting.

    Raises:
        StrictJSONError: one of those (its message says which).
        ValueError: not JSON (`json.JSONDecodeError`, `UnicodeDecodeError`).
    """
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_finite)
        if _SURROGATE_ESCAPE.search(data):
            _check_strings(value)
    except RecursionError:
        raise StrictJSONError("nesting too deep") from None
    return value
