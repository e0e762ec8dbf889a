"""The WSGI environ as the API reads it, and the keys a hosting server may add to it.

The API runs under `cirrus up`'s loop (`shared.httpserver`) and under the
Functions Framework (Werkzeug); these helpers read what both give, so the API
never needs to know which server hosts it. A server that offers the optional
extensions (a shared commit per loop turn, work after the answer) puts them
under the keys named here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

COMMIT_GROUP_KEY = "cirrus.commit_group"  # where a request finds the loop's group (shared.groupcommit.ENVIRON_KEY)
AFTER_RESPONSE_KEY = "cirrus.after_response"  # a list the app may append after-answer work to

# More digits than any body a server would take: a longer CONTENT_LENGTH is refused, never converted
# (`int()` of thousands of digits is slow, and past 4,300 it raises).
_MAX_LENGTH_DIGITS = 18


def wsgi_text(value: str) -> str:
    """A WSGI (latin-1) string as the UTF-8 text it carries, decoded as Werkzeug decodes paths."""
    return value.encode("latin-1").decode("utf-8", "replace")


def wsgi_path(environ: dict[str, Any]) -> str:
    """The request path as Werkzeug's `Request.path` gives it (decoded, one leading slash)."""
    return "/" + wsgi_text(environ.get("PATH_INFO", "")).lstrip("/")


def content_length(environ: dict[str, Any]) -> int | None:
    """CONTENT_LENGTH as a number: ASCII digits only (`"²".isdigit()` is true), None when absent or invalid."""
    text = environ.get("CONTENT_LENGTH") or ""
    if not (text.isascii() and text.isdigit()) or len(text) > _MAX_LENGTH_DIGITS:
        return None
    return int(text)


def wsgi_body(environ: dict[str, Any]) -> tuple[int | None, Callable[[int], bytes]]:
    """`(Content-Length or None, read(n))`: a reader that never reads past the declared length."""
    length = content_length(environ)
    stream = environ["wsgi.input"]
    return length, lambda n: stream.read(min(n, length or 0))


def after_response(environ: dict[str, Any]) -> list[Callable[[], None]] | None:
    """The list a request may leave after-answer work in (`AFTER_RESPONSE_KEY`), if its server runs any."""
    after = environ.get(AFTER_RESPONSE_KEY)
    return after if isinstance(after, list) else None
