"""Serve a `cirrus init` folder with granian (WSGI) or gunicorn (gthread), built as `cirrus up` builds it.

For `bench/http_fronts.py` only: the same app (`CirrusApp` with the default
mounts), the workers' shared ACME nonce ledger (created here, before the
workers fork), a server certificate from the CA's own intermediate, INFO
logging, and `cirrus up`'s background process (WAL checkpoints, CRL schedule)
beside the workers. Requests run on threads there, so the loop-turn group
commit of `shared.httpserver` has nothing to hook into; `ThreadCommitGroup`
is the thread-per-request equivalent. Granian's hardening knobs are set as
close to ours as they go (head deadline 10 s, 64 KiB read buffer, HTTP/1 only).

Run: python bench/front_launch.py {granian,gunicorn} DIR PORT [--workers N] [--threads N] [--no-group-commit]
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class ThreadCommitGroup:
    """Group commit for a thread-per-request front: one commit thread records the writes of concurrent requests.

    The authority hands `add()` its issuance write instead of committing it
    (`shared.groupcommit`'s contract). Here `add()` blocks the request thread
    until the commit thread has recorded its write together with whatever
    other threads queued meanwhile, then publishes the events and returns, or
    raises the error its write met; so the request answers exactly as if it
    had committed alone (nothing is answered before it is recorded).
    """

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self._queue: queue.SimpleQueue[tuple[Any, list[BaseException | None], threading.Event]] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True, name="group-commit").start()

    def add(self, write: Any, publish: Callable[[], None]) -> None:
        outcome: list[BaseException | None] = []
        done = threading.Event()
        self._queue.put((write, outcome, done))
        done.wait()
        if outcome[0] is not None:
            raise outcome[0]
        publish()

    def _run(self) -> None:
        from shared.errors import BackendError, Unavailable

        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                outcomes: list[BaseException | None] = list(self._ledger.record_issuances([b[0] for b in batch]))
            except Exception as exc:  # the commit itself: nothing was recorded
                failure: BaseException = (
                    Unavailable("the certificate could not be recorded; retry later")
                    if isinstance(exc, BackendError)
                    else exc
                )
                outcomes = [failure] * len(batch)
            for (_write, outcome, done), result in zip(batch, outcomes, strict=True):
                outcome.append(result)
                done.set()


class LazyApp:
    """The `cirrus up` app, built once per worker process on its first request (after the fork)."""

    def __init__(self, directory: Path, ledger: Any, group_commit: bool) -> None:
        self._directory = directory
        self._ledger = ledger
        self._group_commit = group_commit
        self._lock = threading.Lock()
        self._pid = 0
        self._app: Any = None
        self._group: ThreadCommitGroup | None = None

    def _build(self) -> None:
        from shared.acme.nonce_ledger import NONCE_LEDGER_EXTRA
        from shared.api.app import CirrusApp
        from shared.api.mounts import default_direct_mounts, default_mounts
        from shared.cli.folder import load_settings
        from shared.runtime import build_services
        from shared.store.base import BatchIssuanceLedger

        services = build_services(load_settings(self._directory))
        services.extras[NONCE_LEDGER_EXTRA] = self._ledger
        self._app = CirrusApp(services, mounts=default_mounts(services), direct=default_direct_mounts(services))
        store = services.store
        self._group = (
            ThreadCommitGroup(store) if self._group_commit and isinstance(store, BatchIssuanceLedger) else None
        )
        self._pid = os.getpid()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._build()
        if self._group is not None:
            from shared.api.wsgi import COMMIT_GROUP_KEY

            environ[COMMIT_GROUP_KEY] = self._group
        result: Iterable[bytes] = self._app(environ, start_response)
        return result


def _background(settings: Any) -> int:
    """Fork the process that runs `cirrus up`'s background work (checkpoints, CRLs)."""
    from shared.cli.up import background_tasks

    pid = os.fork()
    if pid:
        return pid
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        background_tasks(stop, settings)
        stop.wait()
    finally:
        os._exit(0)


def serve(front: str, directory: Path, port: int, workers: int, threads: int, group_commit: bool) -> None:
    """Serve the authority in `directory` with granian or gunicorn, as `cirrus up` would."""
    from shared.acme.nonce_ledger import SharedNonceLedger
    from shared.cli.folder import load_settings
    from shared.cli.up import configure_logging
    from shared.runtime import build_services
    from shared.server import issue_server_certificate

    settings = load_settings(directory)
    runtime = Path(tempfile.mkdtemp(prefix="cirrus-front-"))
    probe = build_services(settings)
    try:
        cert, key, _ = issue_server_certificate(probe, runtime)
    finally:
        probe.close()
    configure_logging("INFO")
    app = LazyApp(directory, SharedNonceLedger(workers), group_commit)
    background = _background(settings)
    try:
        if front == "granian":
            from granian import Granian
            from granian.constants import HTTPModes, Interfaces, SSLProtocols
            from granian.http import HTTP1Settings

            Granian(
                "cirrus",
                address="127.0.0.1",
                port=port,
                interface=Interfaces.WSGI,
                http=HTTPModes.http1,
                # Its hardening knobs set as close to ours as they go: the head's deadline
                # (ours: 10 s) and the read buffer (ours: 64 KiB head, then the body).
                http1_settings=HTTP1Settings(header_read_timeout=10_000, max_buffer_size=64 * 1024),
                workers=workers,
                blocking_threads=threads,
                ssl_cert=cert,
                ssl_key=key,
                ssl_protocol_min=SSLProtocols.tls12,
                log_level="warning",
            ).serve(target_loader=lambda _target: app)
        elif front == "gunicorn":
            from gunicorn.app.base import BaseApplication

            class Gunicorn(BaseApplication):  # type: ignore[misc]
                def load_config(self) -> None:
                    for k, v in {
                        "bind": f"127.0.0.1:{port}",
                        "workers": workers,
                        "worker_class": "gthread",
                        "threads": threads,
                        "certfile": str(cert),
                        "keyfile": str(key),
                        "loglevel": "warning",
                    }.items():
                        self.cfg.set(k, v)

                def load(self) -> Any:
                    return app

            Gunicorn().run()
        else:
            raise SystemExit(f"unknown front {front!r}")
    finally:
        os.kill(background, signal.SIGTERM)
        os.waitpid(background, 0)
        shutil.rmtree(runtime, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("front", choices=("granian", "gunicorn"))
    ap.add_argument("dir", type=Path)
    ap.add_argument("port", type=int)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--no-group-commit", action="store_true")
    args = ap.parse_args()
    serve(args.front, args.dir.resolve(), args.port, args.workers, args.threads, not args.no_group_commit)


if __name__ == "__main__":
    main()
