"""Property tests for the request head parser and the loop: whatever the bytes, a 4xx or a request.

The parser may only return a head or raise `ProtocolError` (never ValueError,
UnicodeError, IndexError...: those killed the worker), and a live loop fed
mutated requests answers each with one status line and goes on serving.
"""

from __future__ import annotations

import socket

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.httpserver import Limits
from shared.httpserver.head import ProtocolError, check_request_line, parse_head
from tests.unit.core.test_httpserver import app, serving

VALID = (
    b"POST /1.0/sign?x=1 HTTP/1.1\r\nHost: ca.example:9443\r\nContent-Type: application/json\r\n"
    b"Content-Length: 2\r\nConnection: keep-alive\r\n"
)
# Bytes that matter to HTTP framing, weighted in so mutations hit them often.
SPECIAL = st.sampled_from([b"\r", b"\n", b"\x00", b" ", b"\t", b":", b"\xb2", b"\xff", b"0", b"9", b"-", b"[", b"%", b","])
FIXED = settings(derandomize=True, max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["insert", "replace", "delete"]))
        piece = draw(st.one_of(SPECIAL, st.binary(min_size=1, max_size=6)))
        if kind == "insert":
            data[at:at] = piece
        elif kind == "replace":
            data[at : at + len(piece)] = piece
        else:
            del data[at : at + draw(st.integers(1, 5))]
    return bytes(data)


def _parse(head: bytes) -> None:
    try:
        check_request_line(head)
        parse_head(head, max_lines=100, max_body=1000)
    except ProtocolError as exc:
        assert 400 <= exc.status < 600 and exc.status != 500


@FIXED
@given(st.binary(max_size=400))
def test_random_bytes_parse_or_give_a_protocol_error(head: bytes) -> None:
    _parse(head)


@FIXED
@given(mutated())
def test_mutated_heads_parse_or_give_a_protocol_error(head: bytes) -> None:
    _parse(head.rstrip(b"\r\n"))


def test_the_loop_answers_every_mutation_and_keeps_serving() -> None:
    with serving(app, limits=Limits(header_timeout=0.5, request_timeout=0.5, max_body=1000)) as port:

        @settings(derandomize=True, max_examples=150, deadline=None)
        @given(mutated())
        def check(raw: bytes) -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
                c.sendall(raw + b"\r\n{}")
                c.shutdown(socket.SHUT_WR)
                out = b""
                while data := c.recv(65536):
                    out += data
            # An answer (a 2xx for what is still valid, else a 4xx/505), or a quiet close for an
            # incomplete request the client gave up on; never a 500 from the front.
            assert out == b"" or out.startswith((b"HTTP/1.1 2", b"HTTP/1.1 4", b"HTTP/1.1 505")), out[:80]

        check()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.sendall(b"GET /alive HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            assert c.recv(65536).startswith(b"HTTP/1.1 200")
