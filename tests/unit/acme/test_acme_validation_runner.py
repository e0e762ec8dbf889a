"""The ACME validation runner (issue 12 item 13): per-account bound, accounts in turn, a cap on what waits."""

from __future__ import annotations

import threading
import time

import pytest

from shared.acme import validations
from shared.acme.problems import ACMEProblem
from shared.acme.validations import ValidationRunner


def test_one_account_never_runs_more_than_its_limit_and_others_are_served_in_turn() -> None:
    runner = ValidationRunner(threads=3)
    release = threading.Event()
    order: list[str] = []
    lock = threading.Lock()
    peak: dict[str, int] = {}

    def job(account: str) -> None:
        with lock:
            order.append(account)
            peak[account] = max(peak.get(account, 0), runner.running(account))
        release.wait(5)

    slow = [runner.submit("slow", 2, lambda: job("slow")) for _ in range(6)]
    time.sleep(0.1)
    assert runner.running("slow") == 2 and [j.started for j in slow] == [True, True, False, False, False, False]
    other = runner.submit("other", 2, lambda: job("other"))
    assert other.started  # a free thread, and "other" is under its limit: it does not wait behind "slow"
    release.set()
    for j in [*slow, other]:
        assert j.done.wait(5)
    assert peak["slow"] == 2 and order.index("other") == 2


def test_a_failing_job_frees_its_slot() -> None:
    runner = ValidationRunner(threads=1)

    def boom() -> None:
        raise RuntimeError("validator bug")

    first = runner.submit("a", 1, boom)
    second = runner.submit("a", 1, lambda: None)
    assert first.done.wait(5) and second.done.wait(5)
    assert runner.running("a") == 0


def test_too_many_waiting_validations_are_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validations, "MAX_QUEUED_PER_ACCOUNT", 3)
    runner = ValidationRunner(threads=1)
    release = threading.Event()
    jobs = [runner.submit("a", 1, lambda: release.wait(5)) for _ in range(3)]
    with pytest.raises(ACMEProblem) as err:
        runner.admit("a")
    assert err.value.kind == "rateLimited" and err.value.headers["Retry-After"]
    runner.admit("b")  # another account is not affected
    release.set()
    for j in jobs:
        assert j.done.wait(5)
    runner.admit("a")
