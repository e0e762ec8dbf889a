"""The whole outbound call ends by its deadline, whatever a server drips and wherever it drips it.

Each server here sends one byte a little more often than the timeout (`DRIP` < `TIMEOUT`), so
every socket read succeeds in time and only a deadline on the whole call (resolving, connecting,
the TLS handshake, sending, reading: `shared.webhooks.watchdog`) can end it. The servers keep
dripping for `DRIP_FOR` seconds, far past the deadline: without the watchdog each test takes that
long and fails its time bound (checked: the body and header cases took 8.1 s before the watchdog
came to `bounded_post`). A dripping TLS handshake is bounded twice: CPython's `do_handshake` treats
the socket timeout as a deadline for the whole handshake, and the watchdog cuts it too; those
tests guard against either being lost. `bounded_post` serves the events webhook sink and the
linked clients; `WebhookClient` the step-ca webhooks.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Callable

import pytest

from shared.errors import BackendError, Unavailable
from shared.events.base import CERTIFICATE_ISSUED, authority_event
from shared.events.webhook import WebhookSink
from shared.webhooks.bounded_post import PostFailed, post
from shared.webhooks.client import WebhookClient
from tests.unit.webhooks.test_webhook_client import _hook, raw_server

TIMEOUT = 0.6
DRIP = 0.45  # under TIMEOUT: no single read times out
DRIP_FOR = 8.0
MARGIN = 0.4  # scheduling noise on a shared 2-core machine; the watchdog itself cuts within milliseconds


def _drip(head: bytes, byte: bytes = b" ") -> Callable[[socket.socket], None]:
    def serve(conn: socket.socket) -> None:
        conn.sendall(head)
        end = time.monotonic() + DRIP_FOR
        while time.monotonic() < end:
            conn.sendall(byte)
            time.sleep(DRIP)

    return serve


BODY = _drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n")
HEADERS = _drip(b"HTTP/1.1 200 OK\r\nX-Slow: ", b"y")
# A TLS record header announcing a 16 KiB handshake record, then its bytes one at a time: OpenSSL
# waits for the whole record, each byte arriving well within the socket timeout.
HANDSHAKE = _drip(b"\x16\x03\x03\x40\x00", b"\x00")


@pytest.mark.parametrize("serve", [BODY, HEADERS], ids=["body", "headers"])
def test_bounded_post_ends_at_its_deadline_against_a_dripping_server(serve: Callable[[socket.socket], None]) -> None:
    with raw_server(serve) as url:
        started = time.monotonic()
        with pytest.raises(PostFailed, match="timed out"):
            post(url, b"{}", {"Content-Type": "application/json"}, timeout=TIMEOUT)
        took = time.monotonic() - started
    assert TIMEOUT - 0.05 < took < TIMEOUT + MARGIN, took


def test_bounded_post_ends_at_its_deadline_during_a_dripping_tls_handshake() -> None:
    with raw_server(HANDSHAKE) as url:
        started = time.monotonic()
        with pytest.raises(PostFailed, match="timed out"):
            post(url.replace("http://", "https://"), b"{}", {}, timeout=TIMEOUT)
        took = time.monotonic() - started
    assert TIMEOUT - 0.05 < took < TIMEOUT + MARGIN, took


def test_the_events_webhook_sink_gives_up_at_its_timeout() -> None:
    event = authority_event("a", CERTIFICATE_ISSUED, "1", dt.datetime.now(dt.UTC), {"serial": "1"})
    with raw_server(BODY) as url:
        sink = WebhookSink(url=url, secret=b"s" * 32, timeout=TIMEOUT, deadline=0.0)
        started = time.monotonic()
        with pytest.raises(BackendError, match="1 of 1 events not delivered"):
            sink.publish([event])
        took = time.monotonic() - started
    assert took < TIMEOUT + MARGIN, took


def test_a_step_ca_webhook_ends_at_its_deadline_during_a_dripping_tls_handshake() -> None:
    with raw_server(HANDSHAKE) as url:
        url = url.replace("http://", "https://")
        started = time.monotonic()
        with pytest.raises(Unavailable, match="timed out"):
            WebhookClient().call(_hook(url, timeout=TIMEOUT), url, b"{}")
        took = time.monotonic() - started
    assert TIMEOUT - 0.05 < took < TIMEOUT + MARGIN, took


def test_an_answer_within_the_deadline_is_read_whole() -> None:
    """The watchdog does not cut a call that ends in time (and leaves nothing behind)."""

    def answer(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    with raw_server(answer) as url:
        for _ in range(20):
            reply = post(url, b"{}", {}, timeout=TIMEOUT)
            assert (reply.status, reply.body) == (200, b"ok")


def test_a_sooner_deadline_registered_after_a_later_one_is_kept() -> None:
    """The one watchdog thread wakes for a call whose deadline comes before the one it waits for."""
    import threading

    results: dict[str, float] = {}

    def call(name: str, timeout: float, url: str) -> None:
        started = time.monotonic()
        with pytest.raises(PostFailed, match="timed out"):
            post(url, b"{}", {}, timeout=timeout)
        results[name] = time.monotonic() - started

    with raw_server(BODY) as url:
        slow = threading.Thread(target=call, args=("slow", 3.0, url))
        slow.start()
        time.sleep(0.2)  # the thread is now waiting for the 3 s deadline
        call("quick", TIMEOUT, url)
        slow.join()
    assert results["quick"] < TIMEOUT + MARGIN, results
    assert 3.0 - 0.05 < results["slow"] < 3.0 + MARGIN, results


def test_the_deadline_holds_in_a_forked_child() -> None:
    """`cirrus up` forks its workers after the parent may have used the watchdog thread, which a
    child does not inherit: the child must start its own."""
    import os

    with raw_server(BODY) as url:
        with pytest.raises(PostFailed):  # the parent's watchdog thread is running now
            post(url, b"{}", {}, timeout=0.1)
        pid = os.fork()
        if pid == 0:  # the child: exit 0 only if its call is cut at the deadline
            code = 1
            try:
                started = time.monotonic()
                post(url, b"{}", {}, timeout=TIMEOUT)
            except PostFailed:
                code = 0 if time.monotonic() - started < TIMEOUT + MARGIN else 2
            finally:
                os._exit(code)
        end = time.monotonic() + DRIP_FOR + 2
        while time.monotonic() < end:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.05)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child's call was never cut")
    assert os.waitstatus_to_exitcode(status) == 0
