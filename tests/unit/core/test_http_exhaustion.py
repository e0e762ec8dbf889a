"""Descriptor exhaustion: a server process with a low RLIMIT_NOFILE, flooded with connections.

Today's loop retried accept() at full CPU once it hit EMFILE, and every client
timed out. Now it pauses accepting (a growing pause) while no descriptor can
be freed, stays near idle, and serves the next client once descriptors free up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.core.test_httpserver import exchange

SERVER = """
import resource, socket, sys
from shared.httpserver import Limits, WSGIServer

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (48, hard))

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served"]

sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(256)
print(sock.getsockname()[1], flush=True)
# A cap above the descriptor limit, so accept() itself fails with EMFILE.
WSGIServer(sock, app, None, limits=Limits(max_connections=10000, header_timeout=30, request_timeout=30)).serve_forever()
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[str], int]]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield proc, port
    finally:
        proc.kill()
        proc.wait()


def test_out_of_descriptors_the_loop_pauses_and_recovers(server: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = server
    hogs = []
    try:
        for _ in range(80):  # more than the server can hold; each has begun a request, so none is idle
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"GET /hog HTTP/1.1\r\n")
            hogs.append(c)
        time.sleep(0.5)  # the server is at EMFILE now, with the rest in the listen backlog
        before = cpu_seconds(proc.pid)
        time.sleep(2.0)
        used = cpu_seconds(proc.pid) - before
        assert used < 0.3, f"the loop used {used:.2f} s of CPU in 2 s while out of descriptors"
        assert proc.poll() is None
    finally:
        for c in hogs:
            c.close()
    out = exchange(port, b"GET /after HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"served")
    assert proc.poll() is None
