"""The API's reading of the WSGI environ (`shared.api.wsgi`), whichever server fills it."""

from __future__ import annotations

import io

import pytest

from shared.api.wsgi import content_length, wsgi_body, wsgi_path


@pytest.mark.parametrize("text,expected", [
    ("12", 12), ("0", 0), ("", None), ("\u00b2", None), ("\u0661\u0662", None), ("1" * 4401, None),
    ("-1", None), ("+1", None), (" 1", None), ("1e3", None),
])
def test_content_length_is_ascii_digits_only(text: str, expected: int | None) -> None:
    """`"²".isdigit()` is true and `int()` of 4,401 digits raises: both were a 500 (or worse) before."""
    assert content_length({"CONTENT_LENGTH": text}) == expected


def test_the_body_reader_never_reads_past_the_declared_length() -> None:
    length, read = wsgi_body({"CONTENT_LENGTH": "3", "wsgi.input": io.BytesIO(b"abcdef")})
    assert length == 3 and read(100) == b"abc"
    length, read = wsgi_body({"CONTENT_LENGTH": "\u00b2", "wsgi.input": io.BytesIO(b"abcdef")})
    assert length is None and read(100) == b""


def test_the_path_is_decoded_as_werkzeug_decodes_it() -> None:
    assert wsgi_path({"PATH_INFO": "/acme/\u00c3\u00a9"}) == "/acme/\u00e9"
    assert wsgi_path({}) == "/"
