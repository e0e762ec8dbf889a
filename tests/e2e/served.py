"""`cirrus up` as the end-to-end tests meet it: a subprocess on a free loopback port.

The config gets that port (so the CLI's `--dir` commands reach it) and any provisioners or edits
the test needs; the server counts as up when `cirrus health` answers, and SIGTERM stops it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.interop.test_cli_session import cirrus, free_port


@contextmanager
def cirrus_up(
    authority_dir: Path,
    tmp_path: Path,
    *,
    provisioners: Sequence[dict[str, Any]] = (),
    edit: Callable[[dict[str, Any]], None] | None = None,
    workers: int = 2,
) -> Iterator[str]:
    """Serve `authority_dir` with `provisioners` appended and `edit` applied to its config; yield its URL."""
    port = free_port()
    cfg = json.loads((authority_dir / "config.json").read_text())
    cfg["address"] = f"127.0.0.1:{port}"
    cfg["authority"]["provisioners"].extend(provisioners)
    if edit is not None:
        edit(cfg)
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    log_path = tmp_path / "server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "up", "--dir", str(authority_dir), "--workers", str(workers)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while cirrus("health", "--dir", str(authority_dir), check=False).returncode != 0:
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
