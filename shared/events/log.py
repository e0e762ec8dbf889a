"""The log sink: one structured JSON line per event (Cloud Logging picks these up as is)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from shared import linelog
from shared.model import Event

_log = logging.getLogger("cirrus.events")


class LogSink:
    """Writes each event as a CloudEvent JSON line at INFO.

    One log record carries all the lines of one publish (one line per event):
    a certificate with a new endpoint raises two events, and a log record costs
    more than encoding an event.
    """

    def publish(self, events: Sequence[Event]) -> None:
        """Log the events (never raises for a well-formed event)."""
        if not events or not _log.isEnabledFor(logging.INFO):
            return
        linelog.write(_log, "\n".join(e.to_cloudevent_json() for e in events))


def open_sinks(specs: Sequence[str]) -> list[object]:
    """Build sinks from URLs: `log`, `pubsub:projects/P/topics/T`, `webhook:https://host/path`.

    Raises:
        shared.errors.ConfigError: an unknown sink.
    """
    from shared.errors import ConfigError

    sinks: list[object] = []
    for spec in specs:
        if spec == "log":
            sinks.append(LogSink())
        elif spec.startswith("pubsub:"):
            from shared.events.pubsub import from_url

            sinks.append(from_url(spec))
        elif spec.startswith("webhook:"):
            from shared.events.webhook import from_spec

            sinks.append(from_spec(spec))
        else:
            raise ConfigError(
                f"unknown event sink {spec!r}; expected 'log', 'pubsub:projects/P/topics/T' or 'webhook:URL'"
            )
    return sinks
