"""Where challenge validations and issuances run in a long-lived server (issue 12 item 13).

Behind `cirrus up` a challenge answer and a finalize leave their work for
after the answer (`Ctx.after_response`), which the HTTP loop runs on its own
small thread pool. Validations wait on the applicant's hosts, so they must
not be able to take that pool, or each other's turn:

- `ValidationRunner` runs validations on threads of its own (`threads`), at
  most `limit` at once per account, the rest of an account's waiting in its
  own queue (taking no thread) and the accounts served round-robin, so one
  account naming a slow host many times delays only itself. Each validation
  ends by its total deadline (`challenges.deadline`).
- Issuance (finalize) runs on `issuance_executor()`, a pool of its own, so it
  never queues behind validations.

The after-response hook waits for a validation only if it started at once
(so a client polling on the same connection sees the outcome); waiting hooks
are then at most `threads`, below the loop's pool size, and a finalize's hook
always finds a thread of the loop's pool. The bound is per process (per
`cirrus up` worker); on Cloud Functions each instance serves one request at
a time and the validation runs inside it.

Why not `concurrent.futures` alone: a ThreadPoolExecutor queues every job in
one FIFO, so 20 slow jobs of one account would run ahead of another
account's; the per-account queues and the round-robin are the point here.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
from collections.abc import Callable

from shared.acme.problems import ACMEProblem

log = logging.getLogger(__name__)

#: Validations one account may have waiting or running in one process; more answers are `rateLimited`.
MAX_QUEUED_PER_ACCOUNT = 100


class Job:
    """One validation handed to the runner: `started` if it got a thread at once; `done` when it finished."""

    __slots__ = ("account", "done", "fn", "limit", "started")

    def __init__(self, account: str, limit: int, fn: Callable[[], None]) -> None:
        self.account = account
        self.limit = max(1, limit)
        self.fn = fn
        self.started = False
        self.done = threading.Event()


class ValidationRunner:
    """Validations on their own threads, at most `limit` at once per account, accounts served in turn."""

    def __init__(self, threads: int = 4) -> None:
        self._threads = max(1, threads)
        self._lock = threading.Lock()
        self._active = 0
        self._running: dict[str, int] = {}
        self._waiting: dict[str, collections.deque[Job]] = {}
        self._turns: collections.deque[str] = collections.deque()  # accounts with waiting jobs, in turn order
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def admit(self, account: str) -> None:
        """Refuse (`rateLimited`) an account that already has too many validations in this process."""
        with self._lock:
            held = self._running.get(account, 0) + len(self._waiting.get(account, ()))
        if held >= MAX_QUEUED_PER_ACCOUNT:
            raise ACMEProblem(
                "rateLimited", "too many validations under way for this account", headers={"Retry-After": "5"}
            )

    def submit(self, account: str, limit: int, fn: Callable[[], None]) -> Job:
        """Queue `fn` (which must not raise: it records its own outcome) for `account`."""
        job = Job(account, limit, fn)
        with self._lock:
            self._waiting.setdefault(account, collections.deque()).append(job)
            if account not in self._turns:
                self._turns.append(account)
            self._pump()
        return job

    def run(self, account: str, limit: int, fn: Callable[[], None]) -> None:
        """Run `fn` under the account's bound and wait for it (where nothing runs after the answer)."""
        self.submit(account, limit, fn).done.wait()

    def running(self, account: str) -> int:
        """How many of the account's validations hold a thread now."""
        with self._lock:
            return self._running.get(account, 0)

    def _pump(self) -> None:
        """Start waiting jobs while threads are free, taking accounts in turn (caller holds the lock)."""
        while self._active < self._threads and self._turns:
            for _ in range(len(self._turns)):
                account = self._turns[0]
                self._turns.rotate(-1)
                queue = self._waiting[account]
                if self._running.get(account, 0) < queue[0].limit:
                    job = queue.popleft()
                    if not queue:
                        del self._waiting[account]
                        self._turns.remove(account)
                    self._start(job)
                    break
            else:
                return  # every waiting account is at its limit

    def _start(self, job: Job) -> None:
        job.started = True
        self._active += 1
        self._running[job.account] = self._running.get(job.account, 0) + 1
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self._threads, thread_name_prefix="acme-validation")
        self._pool.submit(self._run, job)

    def _run(self, job: Job) -> None:
        try:
            job.fn()
        except Exception:  # the job records its own outcome; the runner must go on
            log.exception("a challenge validation failed unexpectedly")
        finally:
            with self._lock:
                self._active -= 1
                left = self._running[job.account] - 1
                if left:
                    self._running[job.account] = left
                else:
                    del self._running[job.account]
                self._pump()
            job.done.set()


def issuance_executor(threads: int = 2) -> concurrent.futures.ThreadPoolExecutor:
    """The pool finalize's issuance runs on after the answer, apart from validations."""
    return concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="acme-issuance")
