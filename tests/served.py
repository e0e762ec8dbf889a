"""`cirrus up` as the end-to-end and integration tests meet it: a subprocess on a loopback port.

The config gets that port (so the CLI's `--dir` commands reach it) and, through `cirrus_up`, any
provisioners or edits the test needs; the server counts as up when `cirrus health` answers, and
SIGTERM stops it (SIGKILL if it ignores that).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cirrus(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the CLI from this checkout (whatever the caller's working folder)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, timeout=60,
                         env=env, cwd=ROOT)  # fmt: skip
    if check:
        assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out


@contextlib.contextmanager
def serve(folder: Path, log_path: Path, *, port: int | None = None, workers: int = 1) -> Iterator[str]:
    """`cirrus up` for `folder` on a loopback port (a free one unless given); yields its URL."""
    port = port or free_port()
    cfg = json.loads((folder / "config.json").read_text())
    cfg["address"] = f"127.0.0.1:{port}"
    (folder / "config.json").write_text(json.dumps(cfg))
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "up", "--dir", str(folder), "--workers", str(workers)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while cirrus("health", "--dir", str(folder), check=False).returncode != 0:
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.2)
            yield f"https://127.0.0.1:{port}"
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def cirrus_up(
    authority_dir: Path,
    tmp_path: Path,
    *,
    provisioners: Sequence[dict[str, Any]] = (),
    edit: Callable[[dict[str, Any]], None] | None = None,
    workers: int = 2,
) -> Iterator[str]:
    """Serve `authority_dir` with `provisioners` appended and `edit` applied to its config; yield its URL."""
    cfg = json.loads((authority_dir / "config.json").read_text())
    cfg["authority"]["provisioners"].extend(provisioners)
    if edit is not None:
        edit(cfg)
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    with serve(authority_dir, tmp_path / "server.log", workers=workers) as url:
        yield url
