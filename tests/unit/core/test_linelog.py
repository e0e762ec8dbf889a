"""`shared.linelog`: access and event lines straight to the attached stream, batched per loop turn."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared import linelog
from tests.unit.core.test_httpserver import exchange, serving

ACCESS = logging.getLogger("cirrus.access")
OTHER = logging.getLogger("cirrus.test.other")


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    linelog.attach(out, frozenset({"cirrus.access"}))
    try:
        yield out
    finally:
        linelog.detach()


def test_unattached_lines_are_logging_records(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="cirrus.access"):
        linelog.write(ACCESS, '{"a":1}')
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [("cirrus.access", logging.INFO, '{"a":1}')]


def test_attached_lines_go_straight_to_the_stream(stream: io.StringIO, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        linelog.write(ACCESS, '{"a":1}')
        assert stream.getvalue() == '{"a":1}\n'  # unbatched: written at once
        linelog.write(OTHER, "not an attached logger")
    assert [r.getMessage() for r in caplog.records] == ["not an attached logger"]
    assert stream.getvalue() == '{"a":1}\n'


def test_batched_lines_wait_for_flush_and_keep_their_order(stream: io.StringIO) -> None:
    linelog.batch()
    for i in range(3):
        linelog.write(ACCESS, json.dumps({"n": i}))
    assert stream.getvalue() == ""
    linelog.flush()
    assert [json.loads(x)["n"] for x in stream.getvalue().splitlines()] == [0, 1, 2]
    linelog.flush()  # nothing pending: nothing written twice
    assert len(stream.getvalue().splitlines()) == 3


def test_a_long_turn_writes_before_it_ends(stream: io.StringIO) -> None:
    linelog.batch()
    for i in range(linelog.MAX_PENDING):
        linelog.write(ACCESS, str(i))
    assert len(stream.getvalue().splitlines()) == linelog.MAX_PENDING  # the bound, not the turn's end


def test_lines_from_threads_are_whole_and_none_is_lost(stream: io.StringIO) -> None:
    linelog.batch()

    def burst(t: int) -> None:
        for i in range(400):
            linelog.write(ACCESS, json.dumps({"t": t, "i": i}))

    threads = [threading.Thread(target=burst, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    linelog.flush()
    seen = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert sorted((d["t"], d["i"]) for d in seen) == [(t, i) for t in range(6) for i in range(400)]
    for t in range(6):
        assert [d["i"] for d in seen if d["t"] == t] == list(range(400))  # each thread's order kept


def test_the_http_loop_writes_a_turns_lines_without_waiting_for_more(stream: io.StringIO) -> None:
    linelog.batch()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        linelog.write(ACCESS, json.dumps({"path": environ["PATH_INFO"]}))
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with serving(app, after_turn=linelog.flush) as port:
        assert exchange(port, b"GET /one HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").endswith(b"ok")
        deadline = time.monotonic() + 2
        while "/one" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert json.loads(stream.getvalue()) == {"path": "/one"}  # written by the loop, not by the test
