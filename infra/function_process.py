"""One Functions Framework process per entry point, for local cloud mode (infra/cloud_local.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "functions" / "main.py"


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free now (a race with other binders is possible, and harmless here)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class FunctionProcess:
    """One Functions Framework process serving one entry point."""

    name: str
    signature: str
    port: int
    host: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the function."""
        return f"http://{self.host}:{self.port}"

    def start(self, env: dict[str, str]) -> None:
        """Start `python -m functions_framework` for this entry point in its own session."""
        cmd = [
            sys.executable,
            "-m",
            "functions_framework",
            "--target",
            self.name,
            "--source",
            str(MAIN),
            "--signature-type",
            self.signature,
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        with self.log.open("ab") as fh:
            # Own session: a Ctrl-C in the terminal reaches this script only, which then stops the
            # function (gunicorn master and worker) through its process group in order.
            self.proc = subprocess.Popen(
                cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, start_new_session=True
            )

    def answers(self) -> bool:
        """True once the server answers HTTP at all (an event function answers a GET with an error)."""
        path = "/health" if self.signature == "http" else "/"
        try:
            with urllib.request.urlopen(self.url + path, timeout=2):  # noqa: S310 - our own loopback server
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def exited(self) -> int | None:
        """The exit status if the process has ended."""
        return None if self.proc is None else self.proc.poll()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group this script started, then SIGKILL it if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # leader of its own session (start_new_session)
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 30) -> str:
        """The end of the function's log (for error messages)."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
