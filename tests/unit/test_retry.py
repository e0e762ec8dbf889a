"""RetryPolicy: transient errors are retried with growing pauses until the deadline."""

from __future__ import annotations

import pytest

from shared.errors import BackendError, Unavailable
from shared.retry import Attempt, RetryPolicy


class FakeTime:
    """A monotonic clock that only moves when the policy sleeps (or a call takes time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def policy(t: FakeTime, **kw: float) -> RetryPolicy:
    args: dict[str, float] = {
        "deadline": 1.0,
        "initial_delay": 0.1,
        "max_delay": 0.4,
        "multiplier": 2.0,
        "jitter": 0.0,
        "attempt_timeout": 5.0,
    }
    args.update(kw)
    return RetryPolicy(sleep=t.sleep, clock=t.clock, rand=lambda: 0.5, **args)


def flaky(failures: int, result: str = "ok", *, transient: bool = True):  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def op(attempt: Attempt) -> str:
        calls.append(attempt.number)
        if len(calls) <= failures:
            raise BackendError(f"boom {len(calls)}", transient=transient)
        return result

    return op, calls


def test_success_first_time_does_not_sleep() -> None:
    t = FakeTime()
    op, calls = flaky(0)
    assert policy(t).call(op) == "ok"
    assert calls == [1]
    assert t.sleeps == []


def test_transient_failures_are_retried_with_exponential_backoff() -> None:
    t = FakeTime()
    op, calls = flaky(3)
    assert policy(t, deadline=10.0).call(op) == "ok"
    assert calls == [1, 2, 3, 4]
    assert t.sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_backoff_is_capped_by_max_delay() -> None:
    t = FakeTime()
    op, _ = flaky(5)
    policy(t, deadline=10.0).call(op)
    assert t.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.4, 0.4])


def test_deadline_raises_unavailable_with_cause_kept() -> None:
    t = FakeTime()
    op, calls = flaky(1000)
    with pytest.raises(Unavailable) as info:
        policy(t, deadline=1.0).call(op, what="claim")
    # 0.1 + 0.2 + 0.4 = 0.7 slept; the next 0.4 pause would cross the deadline.
    assert calls == [1, 2, 3, 4]
    assert sum(t.sleeps) == pytest.approx(0.7)
    assert info.value.status == 503
    # The client-facing detail is the generic one; internals stay in the cause.
    assert "boom" not in info.value.detail
    assert isinstance(info.value.__cause__, BackendError)
    assert any("claim: gave up after 4" in n for n in info.value.__cause__.__notes__)


def test_time_spent_inside_calls_counts_against_the_deadline() -> None:
    t = FakeTime()
    calls: list[int] = []

    def slow(attempt: Attempt) -> str:
        calls.append(attempt.number)
        t.now += 0.6  # each attempt itself takes 0.6 s
        raise BackendError("slow", transient=True)

    with pytest.raises(Unavailable):
        policy(t, deadline=1.0).call(slow)
    assert calls == [1, 2]


def test_non_transient_backend_error_propagates_immediately() -> None:
    t = FakeTime()
    op, calls = flaky(1, transient=False)
    with pytest.raises(BackendError) as info:
        policy(t).call(op)
    assert not isinstance(info.value, Unavailable)
    assert calls == [1]
    assert t.sleeps == []


def test_other_exceptions_are_not_retried() -> None:
    t = FakeTime()
    calls: list[int] = []

    def op(attempt: Attempt) -> str:
        calls.append(attempt.number)
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        policy(t).call(op)
    assert calls == [1]


def test_attempt_timeout_is_bounded_by_time_left_and_cap() -> None:
    t = FakeTime()
    seen: list[float] = []

    def op(attempt: Attempt) -> str:
        seen.append(attempt.timeout())
        t.now += 0.3
        if attempt.number < 3:
            raise BackendError("again", transient=True)
        return "done"

    policy(t, deadline=1.0, attempt_timeout=0.5, initial_delay=0.05, max_delay=0.05).call(op)
    # First two attempts are capped at 0.5; the third has 1.0 - 0.3*2 - 0.05*2 = 0.3 left.
    assert seen == pytest.approx([0.5, 0.5, 0.3])


def test_jitter_shortens_pauses_by_at_most_its_fraction() -> None:
    t = FakeTime()
    op, _ = flaky(2)
    p = RetryPolicy(
        deadline=10.0,
        initial_delay=0.1,
        max_delay=1.0,
        jitter=0.5,
        sleep=t.sleep,
        clock=t.clock,
        rand=lambda: 1.0,
    )
    p.call(op)
    assert t.sleeps == pytest.approx([0.05, 0.1])


@pytest.mark.parametrize(
    "kw",
    [
        {"deadline": 0},
        {"attempt_timeout": 0},
        {"initial_delay": -1},
        {"initial_delay": 2.0, "max_delay": 1.0},
        {"multiplier": 0.5},
        {"jitter": 1.5},
    ],
)
def test_invalid_policies_are_rejected(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kw)  # type: ignore[arg-type]
