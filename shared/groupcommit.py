"""Group commit: the certificates a worker issues in one turn of its loop share one store commit.

Why: on the embedded SQLite store a `/sign` pays more for its commit (about
27 pages appended to the write-ahead log, copied again by the checkpoint)
than for its rows, and two busy workers pay it once per certificate. When
several requests are answered in the same turn of a worker's event loop
(concurrent clients), one transaction can record all of them: the pages they
share are written once.

How it stays correct:
- The HTTP loop (`shared.httpserver`) gives each request it answers inline
  this group in the WSGI environ (`ENVIRON_KEY`) and a tag; requests it runs
  on its thread pool get none and commit as usual.
- `/sign`, `/renew` and `/rekey` hand the group to the authority, which adds its issuance
  write (token claim, certificate, endpoint, events) instead of committing it,
  and answers as if it were recorded. The loop holds that answer.
- At the end of the turn the loop calls `settle()`: one transaction records
  every write, each in its own savepoint (`BatchIssuanceLedger`), so a
  replayed token or a duplicate serial fails only its own request. Events are
  published only for writes that landed. A held answer goes out unchanged, or
  is replaced by the error its write met (401 for a token already used, 503
  when the commit itself failed). Nothing is handed out unrecorded, and no
  event is published for a certificate that was not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.api.wsgi import COMMIT_GROUP_KEY as ENVIRON_KEY
from shared.errors import BackendError, Unavailable
from shared.store.base import BatchIssuanceLedger, IssuanceWrite

__all__ = ["ENVIRON_KEY", "CommitGroup"]

log = logging.getLogger("cirrus.groupcommit")

# (status line, headers, body) of an answer that replaces a held one.
Answer = tuple[str, list[tuple[str, str]], bytes]
RenderError = Callable[[BaseException, dict[str, Any]], Answer]


@dataclass(frozen=True, slots=True)
class _Pending:
    tag: int
    write: IssuanceWrite
    publish: Callable[[], None]


class CommitGroup:
    """The issuance writes of one loop turn, recorded together by `settle()`.

    Used by one thread only (the worker's loop thread and the requests it runs inline).
    """

    def __init__(self, ledger: BatchIssuanceLedger, render_error: RenderError) -> None:
        self._ledger = ledger
        self._render = render_error
        self._pending: list[_Pending] = []
        self._environs: dict[int, dict[str, Any]] = {}
        self._tag = 0

    def begin(self, tag: int, environ: dict[str, Any]) -> None:
        """The loop: the writes added from now on belong to request `tag`."""
        self._tag = tag
        self._environs[tag] = environ

    def add(self, write: IssuanceWrite, publish: Callable[[], None]) -> None:
        """The authority: record `write` with this turn's commit; `publish` its events once it lands."""
        self._pending.append(_Pending(self._tag, write, publish))

    def holds(self, tag: int) -> bool:
        """Whether request `tag`'s answer must wait for `settle()`."""
        if any(p.tag == tag for p in self._pending):
            return True
        self._environs.pop(tag, None)
        return False

    def settle(self) -> dict[int, Answer]:
        """Record every pending write in one commit; return the answers that replace failed ones.

        Never raises: a commit that fails turns every held answer into a 503.
        """
        pending, self._pending = self._pending, []
        environs, self._environs = self._environs, {}
        if not pending:
            return {}
        try:
            outcomes: list[Exception | None] = self._ledger.record_issuances([p.write for p in pending])
        except Exception as exc:  # the commit itself: nothing was recorded
            log.error(json.dumps({"event": "group commit failed", "writes": len(pending), "error": type(exc).__name__}))
            failure: Exception = (
                Unavailable("the certificate could not be recorded; retry later")
                if isinstance(exc, BackendError)
                else exc
            )
            outcomes = [failure] * len(pending)
        replaced: dict[int, Answer] = {}
        for p, outcome in zip(pending, outcomes, strict=True):
            if outcome is None:
                try:
                    p.publish()
                except Exception:  # a sink failure never undoes an issuance (the event is in the store)
                    log.exception("publishing events after a group commit failed")
            elif p.tag not in replaced:
                replaced[p.tag] = self._render(outcome, environs.get(p.tag, {}))
        return replaced
