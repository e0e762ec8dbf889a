"""The 500 net watch for hostile-input suites (issue 12).

The generic handlers stay as nets for bugs, and log whenever a request reaches one:
the step API's (`shared.api.render.error_response`, "unhandled error" on `cirrus.api`)
and ACME's (`shared.acme.server`, "ACME request failed ..." with its serverInternal).
A hostile request must always be refused by a check that names the problem, so a
hostile suite fails if the net caught anything: mark the module or test
`pytest.mark.hostile` and the autouse fixture in tests/conftest.py watches it.
"""

from __future__ import annotations

import logging

UNHANDLED = "unhandled error"
# (logger, message prefix) of every generic 500 handler.
NETS = (("cirrus.api", UNHANDLED), ("shared.acme.server", "ACME request failed"))


class NetWatch(logging.Handler):
    """Collects every request that reached the generic 500 handler while installed."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.reached: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if any(record.name == name and message.startswith(prefix) for name, prefix in NETS):
            exc = record.exc_info[1] if record.exc_info else None
            self.reached.append(f"{type(exc).__name__}: {exc}" if exc is not None else message)

    def __enter__(self) -> NetWatch:
        for name, _ in NETS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, _ in NETS:
            logging.getLogger(name).removeHandler(self)
