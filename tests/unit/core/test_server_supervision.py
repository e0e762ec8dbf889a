"""`cirrus up`'s master: a dead worker is replaced, and only a crash loop stops the service."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import logging, pathlib, sys, tempfile
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from shared.server import serve

def make_services():
    raise RuntimeError("every worker meets this")

sys.exit(serve(make_services, lambda services: None, "127.0.0.1:0", workers=2,
               runtime_dir=pathlib.Path(tempfile.mkdtemp()), restart_limit=3, restart_window=30.0))
"""


def test_a_crash_loop_is_bounded() -> None:
    """Workers that die at once are replaced `restart_limit` times, then the service stops with status 1
    (today the first death stopped everything)."""
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1, out.stderr
    assert out.stderr.count("starting a new one") == 3, out.stderr
    assert "4 children exited within 30 s; shutting down" in out.stderr
    assert out.stderr.count("worker failed") == 4
