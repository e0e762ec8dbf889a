"""An event's JSON: encoded once, the same text for the store row and the sinks' CloudEvents line."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import math

import pytest

from shared import linelog
from shared.events.log import LogSink
from shared.model import Event
from shared.store import codec

T0 = dt.datetime(2026, 11, 27, 12, 0, 0, 123456, tzinfo=dt.UTC)


def _event(**data: object) -> Event:
    return Event(id="e-1", type="dev.cirrus.certificate.issued", source="cirrus/a\u00e9", subject="42", time=T0, data=data)


def test_the_cloudevent_line_is_the_cloudevent_object() -> None:
    event = _event(serial="42", sans=["a.example", "b\u00fc.example"], n=3, ok=True, none=None)
    line = event.to_cloudevent_json()
    assert json.loads(line) == event.to_cloudevent()
    assert list(json.loads(line)) == list(event.to_cloudevent())  # the same members, in the same order
    assert json.loads(line)["time"] == "2026-11-27T12:00:00.123456Z"


def test_data_is_encoded_once_and_the_row_carries_the_same_text() -> None:
    event = _event(b=1, a=[1, 2])
    text = event.data_json()
    assert text == '{"a":[1,2],"b":1}' == codec.dump_json({"b": 1, "a": [1, 2]})
    assert event.data_json() is text  # kept, not encoded again
    assert codec.event_to_row(event)[5] is text
    assert event == _event(b=1, a=[1, 2])  # the kept text takes no part in equality


@pytest.mark.parametrize("bad", [math.nan, T0, b"bytes"])
def test_data_that_is_not_plain_json_is_refused_by_the_row_and_the_line(bad: object) -> None:
    event = _event(x=bad)
    with pytest.raises(ValueError, match="data of event 'e-1' is not plain JSON"):
        codec.event_to_row(event)
    with pytest.raises((TypeError, ValueError)):
        event.to_cloudevent_json()


def test_the_log_sink_writes_one_cloudevent_line_per_event() -> None:
    out = io.StringIO()
    linelog.attach(out, frozenset({"cirrus.events"}))
    try:
        logging.getLogger("cirrus.events").setLevel(logging.INFO)
        events = [_event(n=1), Event(id="e-2", type="t", source="s", subject="x", time=T0)]
        LogSink().publish(events)
    finally:
        linelog.detach()
        logging.getLogger("cirrus.events").setLevel(logging.NOTSET)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [e.to_cloudevent() for e in events]
