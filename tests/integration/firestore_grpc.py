"""A gRPC interceptor between the real Firestore SDK and the emulator.

Not a mock: every call it lets through is served by the emulator. It can fail a
call before it is sent (an outage), send it and then drop the reply (a lost
answer: the write happened, the client saw UNAVAILABLE), and it records every
RPC and every document write it saw, so tests can count what an operation costs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

PROJECT = "cirrus-test"

COMMIT = "/google.firestore.v1.Firestore/Commit"
BATCH_GET = "/google.firestore.v1.Firestore/BatchGetDocuments"
RUN_QUERY = "/google.firestore.v1.Firestore/RunQuery"


# --------------------------------------------------------------------------- fault injection


class InjectedUnavailable(grpc.RpcError, grpc.Call, grpc.Future):  # type: ignore[misc]
    """What gRPC raises when the server cannot be reached (status UNAVAILABLE).

    Also a finished, failed `Future`, because an outer interceptor in the chain
    receives it as the outcome of its continuation and asks for its result.
    """

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def exception(self, timeout: float | None = None) -> BaseException:
        return self

    def traceback(self, timeout: float | None = None) -> None:
        return None

    def done(self) -> bool:
        return True

    def running(self) -> bool:
        return False

    def cancelled(self) -> bool:
        return False

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        fn(self)

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "injected fault"

    def initial_metadata(self) -> tuple[()]:
        return ()

    def trailing_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False


class Faults(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Decides, per RPC, whether to pass it, fail it unsent, or send it and drop the reply."""

    def __init__(self) -> None:
        self.down = False  # every RPC fails before it is sent
        self.fail_before: dict[str, int] = {}  # method -> how many more to fail unsent
        self.lose_answer: dict[str, int] = {}  # method -> how many more to send, then fail
        self.allow_then_fail: dict[str, int] = {}  # method -> how many more to pass before failing all
        self.attempted: list[str] = []  # every RPC the SDK tried
        self.delivered: list[str] = []  # every RPC that reached the emulator
        self.writes: list[Any] = []  # every document write in a delivered Commit
        self.documents_read: list[str] = []  # names asked for by delivered BatchGetDocuments

    def _take(self, plan: dict[str, int], method: str) -> bool:
        left = plan.get(method, 0)
        if left > 0:
            plan[method] = left - 1
            return True
        return False

    def _fails_unsent(self, method: str) -> bool:
        if self.down or self._take(self.fail_before, method):
            return True
        if method in self.allow_then_fail:
            return not self._take(self.allow_then_fail, method)
        return False

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.attempted.append(details.method)
        if self._fails_unsent(details.method):
            raise InjectedUnavailable()
        outcome = continuation(details, request)
        self.delivered.append(details.method)
        if details.method == COMMIT:
            self.writes.extend(request.writes)
        if self._take(self.lose_answer, details.method):
            outcome.result()  # the emulator has applied it...
            raise InjectedUnavailable()  # ...but the reply is lost
        return outcome

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self.attempted.append(details.method)
        if self._fails_unsent(details.method):
            raise InjectedUnavailable()
        self.delivered.append(details.method)
        if details.method == BATCH_GET:
            self.documents_read.extend(request.documents)
        return continuation(details, request)


def faulty_client(faults: Faults) -> Any:
    """A real `firestore.Client` whose emulator channel runs through `faults`."""
    from google.cloud import firestore

    class FaultyClient(firestore.Client):  # type: ignore[misc]
        def _emulator_channel(self, transport: Any) -> Any:
            return grpc.intercept_channel(super()._emulator_channel(transport), faults)

    return FaultyClient(project=PROJECT)
