"""Hostile-HTTP checks against any HTTPS front, over raw TLS sockets (used by `bench/http_fronts.py`).

What each front does with request smuggling heads (CL+TE, duplicate
Content-Length, obs-fold, ...), oversized heads, clients that drip a head or
a body, and many such clients at once. Every request names /nope: the Cirrus
app answers 404 there to any method, so a 404 means the front passed the
request on, and any other 4xx is the front's own refusal.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

SLOW_CLIENTS = int(os.environ.get("BENCH_SLOW_CLIENTS", "40"))
DRIP_FOR = float(os.environ.get("BENCH_DRIP_SECONDS", "45"))

SMUGGLING = {
    "cl_te": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te_cl": b"POST /nope HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
    "duplicate_cl_same": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "duplicate_cl_differ": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 5\r\n\r\nabcde",
    "cl_list": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
    "obs_fold_space": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A: one\r\n two\r\n\r\n",
    "obs_fold_tab": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A: one\r\n\ttwo\r\n\r\n",
    "space_before_colon": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A : v\r\n\r\n",
    "bare_cr_in_value": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
    "nul_in_value": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    "two_hosts": b"GET /nope HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}
OVERSIZED = {
    "header_value_100k": b"GET /nope HTTP/1.1\r\nHost: h\r\nX-Big: " + b"x" * 100_000 + b"\r\n\r\n",
    "header_lines_500": b"GET /nope HTTP/1.1\r\nHost: h\r\n" + b"X: y\r\n" * 500 + b"\r\n",
    "target_20k": b"GET /nope" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    "body_cl_100m": b"POST /nope HTTP/1.1\r\nHost: h\r\nContent-Length: 100000000\r\n\r\n",
}
PASSED_ON = "404"  # the app's answer for /nope
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"


def _tls(port: int, timeout: float) -> ssl.SSLSocket:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the checks are about HTTP framing, not the certificate
    ctx.set_alpn_protocols(["http/1.1"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def _read_all(c: ssl.SSLSocket, until: float) -> bytes:
    chunks = []
    while time.monotonic() < until:
        try:
            data = c.recv(65536)
        except TimeoutError:
            break
        except (OSError, ssl.SSLError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _statuses(answer: bytes) -> list[str]:
    return [line.split(b" ")[1].decode() for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def framing_check(port: int, raw: bytes, smuggle: bool) -> dict[str, Any]:
    """Send `raw` (plus a second request when `smuggle`); what came back, and was the second one answered?"""
    try:
        with _tls(port, 5) as c:
            c.sendall(raw + (SMUGGLED if smuggle else b""))
            answer = _read_all(c, time.monotonic() + 5)
    except OSError as exc:
        return {"statuses": [], "closed": True, "error": type(exc).__name__}
    statuses = _statuses(answer)
    out: dict[str, Any] = {"statuses": statuses}
    out["refused"] = bool(statuses) and statuses[0].startswith("4") and statuses[0] != PASSED_ON
    if smuggle:
        out["second_request_answered"] = len(statuses) > 1 or b"smuggled" in answer
    return out


def drip_check(port: int, at_once: bytes, dripped: bytes, every: float, give_up: float) -> dict[str, Any]:
    """Send `at_once`, then `dripped` a byte every `every` s: when (if ever, within `give_up` s) is it cut off?"""
    started = time.monotonic()
    try:
        with _tls(port, give_up + 5) as c:
            c.sendall(at_once)
            c.settimeout(every)
            for i in range(len(dripped)):
                if time.monotonic() - started > give_up:
                    return {"cut_off_after_s": None, "held_for_s": round(time.monotonic() - started, 1)}
                try:
                    c.sendall(dripped[i : i + 1])
                except OSError:
                    break
                try:
                    if not c.recv(65536):  # closed, or an answer (408) came back
                        break
                    break
                except (TimeoutError, ssl.SSLWantReadError):
                    continue
                except OSError:
                    break
            else:
                return {"cut_off_after_s": None, "completed": True}
    except OSError:
        pass
    return {"cut_off_after_s": round(time.monotonic() - started, 1)}


def lockout_check(port: int, slow: int, hold: float, body: bool = False) -> dict[str, Any]:
    """Open `slow` connections that drip their heads (or bodies); is a normal client still answered meanwhile?"""
    stop = threading.Event()

    def dripper() -> None:
        with contextlib.suppress(OSError), _tls(port, hold + 10) as c:
            if body:  # a whole head for the real /sign, then its body a byte at a time
                c.sendall(b"POST /1.0/sign HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n")
            else:
                c.sendall(b"GET /health HTTP/1.1\r\nHost: h\r\n")
            while not stop.wait(0.5):
                c.sendall(b"b" if body else b"X-Drip: 1\r\n")

    threads = [threading.Thread(target=dripper, daemon=True) for _ in range(slow)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    started = time.monotonic()
    try:
        with _tls(port, hold) as c:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            answer = _read_all(c, time.monotonic() + hold)
        ok = _statuses(answer)[:1] == ["200"]
    except OSError:
        ok = False
    waited = round(time.monotonic() - started, 2)
    stop.set()
    for t in threads:
        t.join(15)
    return {"slow_connections": slow, "normal_client_served": ok, "waited_s": waited}


def hostile_checks(ports: dict[str, int], drip: float = DRIP_FOR) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {name: {} for name in ports}
    for name, port in ports.items():
        for case, raw in SMUGGLING.items():
            results[name][case] = framing_check(port, raw, smuggle=True)
        for case, raw in OVERSIZED.items():
            results[name][case] = framing_check(port, raw, smuggle=False)
    # The slow cases take up to DRIP_FOR each: all fronts and cases at once.
    slow_cases: dict[str, tuple[bytes, bytes]] = {
        "slow_head": (b"", b"GET /health HTTP/1.1\r\nHost: h\r\nX-Padding: " + b"p" * 400 + b"\r\n\r\n"),
        "slow_body": (b"POST /1.0/sign HTTP/1.1\r\nHost: h\r\nContent-Length: 400\r\n\r\n", b"b" * 400),
    }
    with ThreadPoolExecutor(max_workers=len(ports) * len(slow_cases)) as pool:
        futures = {
            (name, case): pool.submit(drip_check, port, at_once, dripped, 0.2, drip)
            for name, port in ports.items()
            for case, (at_once, dripped) in slow_cases.items()
        }
        for (name, case), fut in futures.items():
            results[name][case] = fut.result()
    for name, port in ports.items():
        results[name]["slow_head_lockout"] = lockout_check(port, SLOW_CLIENTS, 10.0)
        results[name]["slow_body_lockout"] = lockout_check(port, SLOW_CLIENTS, 10.0, body=True)
    return results


def summarize_hostile(checks: dict[str, Any], drip: float = DRIP_FOR) -> dict[str, str]:
    """One word per check: what a reader of the table needs."""
    out: dict[str, str] = {}
    for case in [*SMUGGLING, *OVERSIZED]:
        r = checks[case]
        if r.get("second_request_answered"):
            out[case] = "SMUGGLED: the bytes after it were read as a second request"
        elif r["refused"]:
            out[case] = f"refused {r['statuses'][0]}"
        elif r["statuses"]:
            out[case] = f"PASSED ON to the app ({r['statuses'][0]})" + (", then closed" if case in SMUGGLING else "")
        else:
            out[case] = "no answer within 5 s"
    for case in ("slow_head", "slow_body"):
        cut = checks[case].get("cut_off_after_s")
        out[case] = f"cut off at {cut} s" if cut is not None else f"NOT cut off in {drip:.0f} s"
    for case in ("slow_head_lockout", "slow_body_lockout"):
        lock = checks[case]
        out[case] = (
            f"served in {lock['waited_s']} s beside {lock['slow_connections']} slow"
            if lock["normal_client_served"]
            else f"LOCKED OUT by {lock['slow_connections']} slow connections"
        )
    return out
