"""The JSON lines of the access log and the event log, written once per turn of a worker's loop.

Why not each line through `logging`: a record costs a `LogRecord` (some twenty attributes
gathered), the handler's lock, a format call and a flush that is one `write` system call,
about 14 us per line measured in a `cirrus up` worker under load, and every certificate
writes two lines (its request and its `certificate.issued` event).

How: `cirrus up` attaches its stdout for the access and event loggers (`attach`). A line
then goes straight to that stream, skipping the record. In a worker process, whose HTTP
loop calls `flush()` at the end of every turn (at least twice a second, and when it stops),
`batch()` makes lines wait in a list until then: one write for all the lines of a turn. A
line waits at most one turn, and a worker that dies loses at most its current turn's lines;
a certificate's record is in the store before its answer is sent, whatever the log says.
Unattached (the Cloud Functions, the CLI, tests with `caplog`), `write` is `logger.info`.
The lines written here are the JSON the attached loggers' formatter would print unchanged.
"""

from __future__ import annotations

import logging
import threading
from typing import TextIO

_lock = threading.Lock()
_stream: TextIO | None = None
_names: frozenset[str] = frozenset()
_batching = False
_pending: list[str] = []
# A turn that produces more than this many lines writes them before the turn ends.
MAX_PENDING = 512


def attach(stream: TextIO, logger_names: frozenset[str]) -> None:
    """Write the INFO lines of `logger_names` straight to `stream` from now on."""
    global _stream, _names
    flush()
    with _lock:
        _stream, _names = stream, logger_names


def detach() -> None:
    """Back to `logging` for every logger (pending lines are written first)."""
    global _stream, _names, _batching
    flush()
    with _lock:
        _stream, _names, _batching = None, frozenset(), False


def batch() -> None:
    """Keep lines until `flush()`: for a process whose loop calls it at the end of every turn."""
    global _batching
    _batching = True


def write(logger: logging.Logger, line: str) -> None:
    """Write one JSON line for `logger` at INFO (the caller has checked `isEnabledFor(INFO)`)."""
    stream = _stream
    if stream is None or logger.name not in _names:
        logger.info(line)
        return
    with _lock:  # written under the lock, as a logging handler does: lines never interleave
        _pending.append(line)
        if not _batching or len(_pending) >= MAX_PENDING:
            _emit(stream)


def flush() -> None:
    """Write the pending lines, if any (a worker's loop: at the end of every turn)."""
    if not _pending:
        return
    with _lock:
        if _stream is not None:
            _emit(_stream)


def _emit(stream: TextIO) -> None:
    """Write and clear `_pending` (holding `_lock`)."""
    text = "\n".join(_pending) + "\n"
    _pending.clear()
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # stdout closed or gone: the lines are lost, the answers are not
        pass
