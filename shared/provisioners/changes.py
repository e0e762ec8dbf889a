"""`provisioner.changed`: one event per change of an authority's provisioners, across instances.

The provisioners live in the configuration, which changes by a redeploy or a restart, not
through an API. So each start of `cirrus up` and each run of the `sweep` function compares
the configured provisioners with what the store last recorded (one document per authority,
`provisioner_state/<authority id>`: each provisioner's id, name, type and the SHA-256 of its
config block) and, when they differ, records the new state and raises one event.

Once per change across instances: the state is replaced by a compare-and-set on the
document's version, and only the instance whose write wins publishes to the sinks. The
event is appended to the event log before that write, under an id derived from the old
state's version and both fingerprints, so an instance that stops between the two leaves the
event logged once (the log ignores an id it has) and the next run completes the write.

The event carries ids, names and types only: a provisioner's config block can hold secrets
(an encrypted JWK, an OIDC client secret), so only its digest is kept, and only in the store.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from shared.events.base import PROVISIONER_CHANGED, EventSink, authority_event, publish_to_sinks
from shared.model import Event, ProvisionerRef

if TYPE_CHECKING:
    from shared.runtime import Services

COLLECTION = "provisioner_state"
_log = logging.getLogger("cirrus.events")


class StateDocuments(Protocol):
    """The store roles this needs: documents with versions, and the event log."""

    def create_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expires_at: dt.datetime | None = None
    ) -> bool:
        """Create if absent."""
        ...

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return `(data, version)` or None."""
        ...

    def update_document(self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int) -> bool:
        """Compare-and-set replace."""
        ...

    def append_events(self, events: Sequence[Event]) -> None:
        """Append events (an id already logged is ignored)."""
        ...


def describe(provisioners: Iterable[tuple[ProvisionerRef, Mapping[str, Any]]]) -> dict[str, dict[str, str]]:
    """Each provisioner by id: its name, type and the SHA-256 of its canonical config block."""
    out: dict[str, dict[str, str]] = {}
    for ref, config in provisioners:
        block = json.dumps(dict(config), sort_keys=True, separators=(",", ":"), default=str)
        out[ref.id] = {"name": ref.name, "type": ref.type, "digest": hashlib.sha256(block.encode()).hexdigest()}
    return out


def fingerprint(state: Mapping[str, Mapping[str, str]]) -> str:
    """One digest of the whole set."""
    return hashlib.sha256(json.dumps(state, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _public(pid: str, entry: Mapping[str, str]) -> dict[str, str]:
    return {"id": pid, "name": str(entry.get("name", "")), "type": str(entry.get("type", ""))}


def diff(old: Mapping[str, Mapping[str, str]], new: Mapping[str, Mapping[str, str]]) -> dict[str, list[dict[str, str]]]:
    """Added, removed and changed provisioners (changed: same id, another name, type or config)."""
    return {
        "added": [_public(pid, new[pid]) for pid in sorted(new.keys() - old.keys())],
        "removed": [_public(pid, old[pid]) for pid in sorted(old.keys() - new.keys())],
        "changed": [_public(pid, new[pid]) for pid in sorted(new.keys() & old.keys()) if new[pid] != old[pid]],
    }


def record_provisioner_changes(
    store: StateDocuments,
    provisioners: Iterable[tuple[ProvisionerRef, Mapping[str, Any]]],
    *,
    authority_id: str,
    now: dt.datetime,
    sinks: Sequence[EventSink] = (),
    attempts: int = 5,
) -> Event | None:
    """Compare the configured provisioners with the recorded state; on a change, record it and
    raise `provisioner.changed` (returned, and published to the sinks by the instance that
    recorded it). None when nothing changed, or another instance recorded this change."""
    state = describe(provisioners)
    new_fp = fingerprint(state)
    for _ in range(attempts):
        found = store.get_document(COLLECTION, authority_id)
        old_state: dict[str, dict[str, str]] = dict(found[0].get("provisioners") or {}) if found else {}
        old_fp = str(found[0].get("fingerprint", "")) if found else ""
        version = found[1] if found else 0
        if old_fp == new_fp:
            return None
        event_id = hashlib.sha256(f"{authority_id}|{version}|{old_fp}|{new_fp}".encode()).hexdigest()[:32]
        data: dict[str, Any] = {"authorityId": authority_id, "fingerprint": new_fp,
                                "previousFingerprint": old_fp or None, **diff(old_state, state)}  # fmt: skip
        event = authority_event(authority_id, PROVISIONER_CHANGED, authority_id, now, data)
        event = Event(id=event_id, type=event.type, source=event.source, subject=event.subject, time=now, data=data)
        store.append_events([event])
        record = {"fingerprint": new_fp, "provisioners": state, "recordedAt": now.isoformat()}
        won = (store.update_document(COLLECTION, authority_id, record, expected_version=version) if found
               else store.create_document(COLLECTION, authority_id, record))  # fmt: skip
        if won:
            publish_to_sinks(sinks, [event], log=_log)
            return event
    _log.warning("provisioner state kept changing under us; the next run records it")
    return None


def check_services(services: Services) -> Event | None:
    """`record_provisioner_changes` for a running instance (`cirrus up` at start, the sweep)."""
    entries = list(zip((p.ref for p in services.provisioners), services.settings.provisioners, strict=True))
    return record_provisioner_changes(
        services.store, entries, authority_id=services.settings.authority_id, now=services.clock.now(),
        sinks=services.sinks,
    )  # fmt: skip
