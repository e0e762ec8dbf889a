"""The 500 net watch for hostile-input suites (issue 12).

The generic handler (`shared.api.render.error_response`) stays as a net for bugs,
and logs "unhandled error" on the `cirrus.api` logger whenever a request reaches it.
A hostile request must always be refused by a check that names the problem, so a
hostile suite fails if the net caught anything: mark the module or test
`pytest.mark.hostile` and the autouse fixture in tests/conftest.py watches it.
"""

from __future__ import annotations

import logging

UNHANDLED = "unhandled error"


class NetWatch(logging.Handler):
    """Collects every request that reached the generic 500 handler while installed."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.reached: list[str] = []
        self._logger = logging.getLogger("cirrus.api")

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == UNHANDLED:
            exc = record.exc_info[1] if record.exc_info else None
            self.reached.append(f"{type(exc).__name__}: {exc}" if exc is not None else UNHANDLED)

    def __enter__(self) -> NetWatch:
        self._logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
