"""Events (the log every issuance and revocation appends to) as JSON documents and as SQL rows.

Split from `shared.store.codec` (which re-exports all of it) by record type. Event data
must be plain JSON; it is encoded once per event (`Event.data_json`) and checked here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.model import Event
from shared.store.codec_json import copy_json, load_json_object
from shared.store.codec_time import from_epoch_us, from_iso, to_epoch_us, to_iso


def event_to_dict(event: Event) -> dict[str, Any]:
    """Encode an event as a JSON-safe dict (its data must be plain JSON)."""
    return {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "subject": event.subject,
        "time": to_iso(event.time, "event time"),
        "data": copy_json(event.data, f"data of event {event.id!r}"),
    }


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """Decode `event_to_dict`."""
    return Event(
        id=data["id"],
        type=data["type"],
        source=data["source"],
        subject=data["subject"],
        time=from_iso(data["time"]),
        data=dict(data.get("data") or {}),
    )


EVENT_COLUMNS = ("id", "type", "source", "subject", "time", "data")


def event_data_json(event: Event) -> str:
    """An event's data as `dump_json` writes it (`Event.data_json`: encoded once per event).

    Raises:
        ValueError: the data is not a mapping of plain JSON values.
    """
    what = f"data of event {event.id!r}"
    if not isinstance(event.data, Mapping):
        raise ValueError(f"{what} must be a JSON object")
    try:
        return event.data_json()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not plain JSON: {exc}") from None


def event_to_row(event: Event) -> tuple[Any, ...]:
    """Encode an event in `EVENT_COLUMNS` order (data as JSON text)."""
    return (
        event.id,
        event.type,
        event.source,
        event.subject,
        to_epoch_us(event.time, "event time"),
        event_data_json(event),
    )


def event_from_row(row: tuple[Any, ...]) -> Event:
    """Decode `event_to_row`."""
    return Event(
        id=row[0],
        type=row[1],
        source=row[2],
        subject=row[3],
        time=from_epoch_us(row[4]),
        data=load_json_object(row[5]),
    )
