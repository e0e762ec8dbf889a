"""`cirrus up`: serve the CA over HTTPS on embedded defaults."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared import linelog
from shared.cli import at_rest
from shared.cli.errors import CLIError
from shared.cli.folder import load_settings
from shared.config import Settings

if TYPE_CHECKING:  # the server and the app load in `run` only: `cirrus health` need not pay for them
    from shared.api.app import CirrusApp
    from shared.runtime import Services


def register(sub: Any) -> None:
    """Add `cirrus up`."""
    p = sub.add_parser("up", help="serve the CA over HTTPS")
    p.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    p.add_argument("--address", default=None, help="HOST:PORT to listen on (default from config, 127.0.0.1:9443)")
    p.add_argument(
        "--workers", type=_workers, default=os.cpu_count() or 1, help="worker processes (default: one per core)"
    )
    p.add_argument("--init", action="store_true", help="create the authority first if DIR has none")
    p.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="lowest level logged (INFO)"
    )
    p.set_defaults(func=run)


MAX_WORKERS = 256


def _workers(text: str) -> int:
    """`--workers`: a whole number of processes, 1..MAX_WORKERS."""
    if not re.fullmatch(r"[0-9]{1,4}", text) or not 1 <= int(text) <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to {MAX_WORKERS}, not {text!r}")
    return int(text)


def check_address(address: str) -> str:
    """`HOST:PORT` as `cirrus up` can listen on it: ASCII port 0..65535, IPv6 in brackets.

    Checked here, before anything starts, so a typo is one line (`socket.bind` would
    raise OverflowError for port 99999, which is not an OSError).

    Raises:
        CLIError: malformed address.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or int(port) > 65535:
        raise CLIError(f"address must be HOST:PORT with a port from 0 to 65535, not {address!r}")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise CLIError(f"an IPv6 address must be in brackets, as in [::1]:9443, not {address!r}")
    return address


_JSON_LOGGERS = frozenset(("cirrus.access", "cirrus.events"))


class _JSONLineFormatter(logging.Formatter):
    """Access-log and event records are JSON lines already; wrap anything else as JSON too."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.name in _JSON_LOGGERS:
            return msg
        out: dict[str, object] = {"level": record.levelname.lower(), "logger": record.name}
        if msg.startswith("{"):
            try:
                out.update(json.loads(msg))
            except ValueError:
                out["message"] = msg
        else:
            out["message"] = msg
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(out)


def configure_logging(level: str) -> None:
    """One JSON object per line on stdout.

    Records gather no caller, thread or process details: the JSON lines never
    print them, and gathering them cost ~10 us of the two records each
    certificate logs (the settings the logging HOWTO's "Optimization" section
    lists; `_srcfile = None` is how it says to skip the caller lookup).
    """
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    setattr(logging, "_srcfile", None)  # noqa: B010 - documented switch, not in the type stubs
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JSONLineFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # The access and event lines skip the records for the same output (`shared.linelog`).
    linelog.attach(sys.stdout, _JSON_LOGGERS)


REVOCATION_POLL_SECONDS = 5.0
ALERT_EVERY_TICKS = 12  # expiry alerts once a minute


def publish_crls_until(stop: threading.Event, settings: Settings) -> None:
    """CRL schedule inside `cirrus up`: publish at start, every `crl.publishInterval`,
    and within REVOCATION_POLL_SECONDS of any revocation (so OCSP, which answers from the
    published CRLs, reflects it quickly). The serial index is brought up to date on every
    tick in between (incremental; writes only when something was issued), so OCSP says
    `good` for a new certificate within seconds, well inside OCSP-08's 15 minutes."""
    from shared.cli.crl import run_publish, run_publish_index
    from shared.runtime import build_services

    log = logging.getLogger("cirrus.crl")
    services = build_services(settings)
    last: dt.datetime | None = None
    checked: dt.datetime | None = None
    ticks = 0
    try:
        while not stop.is_set():
            now = services.clock.now()
            due = last is None or now - last >= settings.crl.publish_interval
            if not due and checked is not None:
                due, checked = _revoked_since(services, checked)
            else:
                checked = now
            if due:
                try:
                    results = run_publish(services)
                    last = checked = now
                    log.info(json.dumps({"event": "crl published", "objects": [r.blob_name for r in results]}))
                except Exception as exc:  # keep serving; retry at the next tick
                    log.error(json.dumps({"event": "crl publication failed", "error": type(exc).__name__}))
            else:
                try:
                    added = sum(r.added for r in run_publish_index(services))
                    if added:
                        log.info(json.dumps({"event": "serial index published", "added": added}))
                except Exception as exc:  # keep serving; retry at the next tick
                    log.error(json.dumps({"event": "serial index publication failed", "error": type(exc).__name__}))
            ticks += 1
            if ticks % ALERT_EVERY_TICKS == 1:
                try:
                    raised = services.expiry_alerts()
                    if raised:
                        log.info(json.dumps({"event": "expiry alerts raised", "count": raised}))
                except Exception as exc:
                    log.error(json.dumps({"event": "expiry alerts failed", "error": type(exc).__name__}))
                try:
                    redelivered = services.redeliver_events()
                    if redelivered:
                        log.info(json.dumps({"event": "events re-delivered", "count": redelivered}))
                except Exception as exc:
                    log.error(json.dumps({"event": "event re-delivery failed", "error": type(exc).__name__}))
            stop.wait(REVOCATION_POLL_SECONDS)
    finally:
        services.close()


CHECKPOINT_SECONDS = 1.0


def checkpoint_until(stop: threading.Event, settings: Settings) -> None:
    """Checkpoint the SQLite store's WAL from the master process, so request-serving workers
    never pay for it inside a commit (see shared/store/sqlite.py). Every 1/4 s while the
    WAL is long (under load), every second otherwise; returns at once for other stores."""
    from shared.clock import SystemClock
    from shared.store.open import open_store
    from shared.store.sqlite import CHECKPOINT_FORCE_FRAMES, SQLiteStore

    if not settings.store.startswith("sqlite:"):
        return
    store = open_store(settings.store, clock=SystemClock())
    try:
        while isinstance(store, SQLiteStore):
            try:
                frames, _ = store.checkpoint()
            except Exception as exc:  # keep serving; the workers' safety valve still bounds the WAL
                log = logging.getLogger("cirrus.store")
                log.error(json.dumps({"event": "checkpoint failed", "error": type(exc).__name__}))
                frames = 0
            if stop.wait(CHECKPOINT_SECONDS / 4 if frames >= CHECKPOINT_FORCE_FRAMES else CHECKPOINT_SECONDS):
                break
    finally:
        store.close()


def background_tasks(stop: threading.Event, settings: Settings) -> None:
    """The master's background work: WAL checkpoints always, CRL publication when enabled."""
    threading.Thread(target=checkpoint_until, args=(stop, settings), daemon=True, name="checkpoint").start()
    if settings.crl.enabled:
        publish_crls_until(stop, settings)


#: `revoked_at` is in whole seconds and is taken just before the revocation commits, so the poll
#: looks back this far past its last check (a revocation seen twice only publishes once more).
REVOCATION_LOOKBACK = dt.timedelta(seconds=2)


def _revoked_since(services: Services, since: dt.datetime) -> tuple[bool, dt.datetime]:
    """Whether any revocation was recorded after `since`, and the new cursor.

    One indexed store lookup (`revoked_since`); reading the event log instead decoded every
    issuance event of the last tick, which grows with the issuance rate.
    """
    now = services.clock.now()
    if services.store.revoked_since(since - REVOCATION_LOOKBACK):
        return True, since
    return False, now


def run(args: argparse.Namespace) -> int:
    """CLI entry for `cirrus up`."""
    directory = args.dir.resolve()
    if args.address is not None:
        check_address(args.address)
    if args.init and not (directory / "config.json").exists():
        from shared.cli.init import init_authority

        # The address goes into the new config, so the CLI's commands (`--dir`) reach this server.
        init_authority(directory, **({"address": args.address} if args.address else {}))
        print(f"Created a new authority in {directory}", flush=True)
    from shared.authorities import open_all
    from shared.runtime import build_services

    settings = load_settings(directory)
    address = check_address(args.address or settings.address)
    probe = build_services(settings)  # fail fast, in the parent, on a bad config
    try:
        probe.issuing()  # and on a key that cannot be opened or does not match the intermediate
        open_all(probe)  # the same for each further issuing authority (shared.authorities)
        at_rest.check(settings)  # after the store opened (it narrows its own files' modes)
        from shared.provisioners.changes import check_services

        check_services(probe)  # `provisioner.changed` when the config's provisioners differ from the last run's
    finally:
        probe.close()
    from shared.api.app import CirrusApp
    from shared.api.mounts import default_direct_mounts, default_mounts
    from shared.cli.init import root_fingerprint
    from shared.server import serve

    fingerprint = root_fingerprint(directory)
    configure_logging(args.log_level)

    from shared.acme.nonce_ledger import NONCE_LEDGER_EXTRA, SharedNonceLedger

    nonce_ledger = SharedNonceLedger(max(1, args.workers))  # before the workers fork: they share its memory

    def make_services() -> Services:
        services = build_services(settings)
        services.extras[NONCE_LEDGER_EXTRA] = nonce_ledger
        return services

    def make_app(services: Services) -> CirrusApp:
        return CirrusApp(services, mounts=default_mounts(services), direct=default_direct_mounts(services))

    def ready() -> None:
        print(f"Cirrus CA is serving https://{address} (root fingerprint {fingerprint})", flush=True)
        # An --address other than the config's is this run's alone: the CLI reads the config, so say how to reach it.
        url = "" if address == settings.address else f" --ca-url https://{address}"
        print(f"Try: cirrus certificate localhost localhost.crt localhost.key --dir {args.dir}{url}", flush=True)

    runtime_dir = Path(tempfile.mkdtemp(prefix="cirrus-up-"))
    def background(stop: threading.Event) -> None:
        background_tasks(stop, settings)

    try:
        return serve(
            make_services, make_app, address, workers=args.workers, runtime_dir=runtime_dir,
            on_ready=ready, background=background,
        )
    except OSError as exc:
        raise CLIError(f"cannot listen on {address}: {exc.strerror or exc}") from exc
    finally:
        try:
            runtime_dir.rmdir()
        except OSError:
            pass
