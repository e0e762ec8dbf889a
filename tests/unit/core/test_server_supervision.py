"""`cirrus up`'s master: a dead worker is replaced, and only a crash loop stops the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

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
    assert "4 workers exited within 30 s; shutting down" in out.stderr
    assert out.stderr.count("worker failed") >= 4  # (a sibling may fail too before the final SIGTERM)


BACKGROUND = """
import logging, pathlib, sys, tempfile, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
from shared import server

server.BACKGROUND_PAUSE = 0.2

def make_services():
    time.sleep(60)  # a worker that stays up

def background(stop):
    raise RuntimeError("the checkpoint failed")

sys.exit(server.serve(make_services, lambda services: None, "127.0.0.1:0", workers=1,
                      runtime_dir=pathlib.Path(tempfile.mkdtemp()), background=background, restart_limit=1))
"""


def test_a_failing_background_process_is_retried_and_never_stops_the_service() -> None:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", BACKGROUND], stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(3.0)
    assert proc.poll() is None  # still serving, though the background died more than restart_limit times
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    restarts = err.count("background process")
    assert 3 <= restarts <= 6, err  # 0.2, 0.4, 0.8, 1.6 s apart: retried, with a growing pause
