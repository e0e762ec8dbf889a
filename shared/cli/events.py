"""`cirrus events tail`: the lifecycle event log, for people.

    cirrus events tail --dir DIR [--since 1h] [--limit 50] [--type T]... [--json] [--follow]

Reads the store's event log (every event is recorded there before any sink sees
it), so it shows what happened even when a webhook or Pub/Sub sink was down.
Without `--json` each event is one line: time, type, subject and the data's
main fields; with it, each line is the CloudEvents JSON a sink receives.
`--follow` polls the log and prints new events as they are recorded.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shared.cli.folder import load_settings
from shared.clock import SystemClock
from shared.durations import parse_duration
from shared.model import Event
from shared.store.open import open_store

PAGE = 500


def register(sub: Any) -> None:
    """Add `cirrus events tail`."""
    p = sub.add_parser("events", help="show the lifecycle event log")
    esub = p.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    tp = esub.add_parser("tail", help="print the latest events (and, with --follow, new ones)")
    tp.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    tp.add_argument("--since", type=_duration, default=dt.timedelta(hours=24),
                    help="how far back to look, a Go duration such as 30m or 2h (default 24h)")  # fmt: skip
    tp.add_argument("--limit", type=_limit, default=50, help="print at most this many past events (1..10000)")
    tp.add_argument("--type", action="append", default=[], metavar="T",
                    help="only this event type, e.g. certificate.revoked (repeatable)")  # fmt: skip
    tp.add_argument("--json", action="store_true", help="print each event as its CloudEvents JSON line")
    tp.add_argument("--follow", action="store_true", help="keep printing new events until interrupted")
    tp.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    tp.set_defaults(func=cmd_tail)


def _duration(text: str) -> dt.timedelta:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a duration such as 30m or 2h: {text!r}") from exc
    if value <= dt.timedelta(0):
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _limit(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 5 or not 1 <= int(text) <= 10_000:
        raise argparse.ArgumentTypeError(f"must be a number from 1 to 10000, not {text!r}")
    return int(text)


def _wanted(types: list[str]) -> frozenset[str]:
    """Full CloudEvents types; a short form (`certificate.revoked`) gets the `dev.cirrus.` prefix."""
    return frozenset(t if t.startswith("dev.cirrus.") else f"dev.cirrus.{t}" for t in types)


def _events_since(store: Any, since: dt.datetime) -> Iterator[Event]:
    """Every event with time >= since, in (time, id) order, a page at a time."""
    seen_at_edge: set[str] = set()
    while True:
        page = list(store.list_events(since=since, limit=PAGE))
        fresh = [e for e in page if e.id not in seen_at_edge]
        yield from fresh
        if len(page) < PAGE or not fresh:
            return
        edge = page[-1].time
        seen_at_edge = {e.id for e in page if e.time == edge} | (seen_at_edge if edge == since else set())
        since = edge


#: The data fields shown, in this order, when an event has them (every type).
_COMMON = ("serial", "endpointId", "reasonCode", "notAfter", "linkedAuthority")
#: Further fields of the types whose main facts are not in the common ones.
_BY_TYPE: dict[str, tuple[str, ...]] = {
    "inventory.changed": ("inventory", "kind", "action", "count", "keys", "actor"),
    "provisioner.changed": ("added", "removed", "changed"),
    "crl.published": ("authorityId", "crlNumber", "entries"),
    "crl.failed": ("authorityId", "error"),
    "authority.expiring": ("subject",),
    "endpoint.created": ("name",),
    "certificate.revoked": ("revokeToken",),  # at a linked Cirrus: the central asked, with this token
    "linked.revocation.delivered": ("attempts", "result"),
    "linked.revocation.failed": ("attempts", "error"),
}
#: Lists are cut to this many items in a line (the JSON form has them all).
_LIST_ITEMS = 5


def _value(value: Any) -> str:
    """One field for a line: a provisioner list as its names, other lists comma-joined, cut short."""
    if isinstance(value, list):
        names = [str(v.get("name") or v.get("id", "")) if isinstance(v, dict) else str(v) for v in value]
        shown = ",".join(names[:_LIST_ITEMS]) + (f",+{len(names) - _LIST_ITEMS}" if len(names) > _LIST_ITEMS else "")
        return _printable(f"[{shown}]")
    return _printable(str(value))


def _printable(text: str) -> str:
    """A field as one line of at most 200 characters: event data can hold names an outside party
    chose (inventory keys, linked reports), so control characters and spaces are escaped and
    never reach the terminal as such."""
    text = "".join(c if c.isprintable() and c != " " else f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}"
                   for c in text)  # fmt: skip
    return text if len(text) <= 200 else text[:199] + "…"


def _detail(kind: str, data: Mapping[str, Any]) -> str:
    """`key=value` pairs of an event's main fields: the common ones, then its type's own."""
    keys = _COMMON + tuple(k for k in _BY_TYPE.get(kind, ()) if k not in _COMMON)
    return " ".join(f"{k}={_value(data[k])}" for k in keys if k in data and data[k] not in (None, "", []))


def _line(event: Event, as_json: bool) -> str:
    if as_json:
        return event.to_cloudevent_json()
    kind = event.type.removeprefix("dev.cirrus.")
    detail = _detail(kind, event.data)
    return f"{event.time.isoformat(timespec='seconds')}  {kind:<22} {event.subject}  {detail}".rstrip()


def cmd_tail(args: argparse.Namespace) -> int:
    """Print the latest events; with --follow, new ones as they come."""
    types = _wanted(args.type)
    clock = SystemClock()
    settings = load_settings(args.dir)
    store = open_store(settings.store, clock=clock)
    try:
        since = clock.now() - args.since
        latest: collections.deque[Event] = collections.deque(maxlen=args.limit)
        last_time, last_ids = since, set[str]()
        for event in _events_since(store, since):
            if event.time > last_time:
                last_time, last_ids = event.time, set()
            last_ids.add(event.id)
            if not types or event.type in types:
                latest.append(event)
        for event in latest:
            print(_line(event, args.json), flush=True)
        while args.follow:
            time.sleep(max(0.05, args.interval))
            for event in _events_since(store, last_time):
                if event.id in last_ids:
                    continue
                if event.time > last_time:
                    last_time, last_ids = event.time, set()
                last_ids.add(event.id)
                if not types or event.type in types:
                    print(_line(event, args.json), flush=True)
    except KeyboardInterrupt:
        return 0
    finally:
        store.close()
    return 0
