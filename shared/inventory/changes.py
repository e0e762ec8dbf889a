"""Changing inventories, each change announced as an `inventory.changed` CloudEvent.

The CLI and the admin API both go through `InventoryChanges`, so both check the same bounds,
raise the same errors (`shared.errors`, which the API maps to step-ca's admin error JSON and
the CLI prints as one line) and emit the same event. A change is written first; its event is
then appended to the store's event log and handed to the sinks (`shared.events.base`), so a
sink that is down gets it on re-delivery and a failed write emits nothing.

The event's `data`: `inventory`, `kind`, `action` (`created`, `imported`, `set`, `deleted`,
`entryDeleted`), `count` (entries written or removed), `keys` (up to 100 of them) and
`actor` (`cli` or `admin-api`, plus who signed in where known). Entry contents are never in
an event: an inventory may hold personal data that sinks need not see.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from shared.clock import Clock
from shared.errors import BadRequest, Conflict, NotFound
from shared.events.base import INVENTORY_CHANGED, EventSink, authority_event, publish_to_sinks
from shared.inventory.base import (
    MAX_IMPORT_ENTRIES,
    Inventory,
    InventoryError,
    InventoryStore,
    check_key,
    check_kind,
    check_name,
    entry_text,
)
from shared.model import Event

if TYPE_CHECKING:
    from shared.runtime import Services

log = logging.getLogger("cirrus.inventory")
_KEYS_IN_EVENT = 100


class EventAppender(Protocol):
    """The event log's one write this needs."""

    def append_events(self, events: Sequence[Event]) -> None:
        """Append events (an id already logged is ignored)."""
        ...


@dataclass(slots=True)
class InventoryChanges:
    """Create, import, set and delete, each followed by its event."""

    store: InventoryStore
    events: EventAppender
    clock: Clock
    authority_id: str
    actor: str
    sinks: Sequence[EventSink] = field(default_factory=tuple)

    def create(self, name: object, kind: object) -> Inventory:
        """Create an empty inventory.

        Raises:
            BadRequest: a bad name or kind. Conflict: the name is taken.
        """
        inventory = Inventory(_checked(check_name, name), _checked(check_kind, kind), self.clock.now())
        if not self.store.create_inventory(inventory):
            raise Conflict(f"inventory {inventory.name!r} already exists")
        self._announce(inventory, "created", [])
        return inventory

    def put(self, name: object, entries: Mapping[str, Any], *, action: str = "imported") -> int:
        """Create or replace entries (all or nothing); returns how many.

        Raises:
            BadRequest: a bad key or entry, or too many. NotFound: no such inventory.
        """
        inventory = self._existing(name)
        if len(entries) > MAX_IMPORT_ENTRIES:
            raise BadRequest(f"more than {MAX_IMPORT_ENTRIES} entries in one change")
        for key, entry in entries.items():
            _checked(check_key, key)
            try:
                entry_text(entry)
            except InventoryError as exc:
                raise BadRequest(f"entry {key!r}: {exc}") from None
        if not self.store.put_inventory_entries(inventory.name, entries):
            raise NotFound(f"no inventory {inventory.name!r}")
        self._announce(inventory, action, list(entries))
        return len(entries)

    def set(self, name: object, key: object, entry: object) -> None:
        """Create or replace one entry.

        Raises:
            BadRequest: a bad key or entry. NotFound: no such inventory.
        """
        k = _checked(check_key, key)
        if not isinstance(entry, dict):
            raise BadRequest("entry must be a JSON object")
        self.put(name, {k: entry}, action="set")

    def delete(self, name: object, key: object = None) -> None:
        """Delete an inventory (with its entries), or one entry of it.

        Raises:
            BadRequest: a bad name or key. NotFound: no such inventory or entry.
        """
        inventory = self._existing(name)
        if key is None:
            if not self.store.delete_inventory(inventory.name):
                raise NotFound(f"no inventory {inventory.name!r}")
            self._announce(inventory, "deleted", [])
            return
        k = _checked(check_key, key)
        if not self.store.delete_inventory_entry(inventory.name, k):
            raise NotFound(f"no entry {k!r} in inventory {inventory.name!r}")
        self._announce(inventory, "entryDeleted", [k])

    def _existing(self, name: object) -> Inventory:
        checked = _checked(check_name, name)
        inventory = self.store.get_inventory(checked)
        if inventory is None:
            raise NotFound(f"no inventory {checked!r}")
        return inventory

    def _announce(self, inventory: Inventory, action: str, keys: list[str]) -> None:
        now: dt.datetime = self.clock.now()
        data = {
            "inventory": inventory.name,
            "kind": inventory.kind,
            "action": action,
            "count": len(keys),
            "keys": sorted(keys)[:_KEYS_IN_EVENT],
            "actor": self.actor,
        }
        event = authority_event(self.authority_id, INVENTORY_CHANGED, inventory.name, now, data)
        self.events.append_events([event])
        publish_to_sinks(self.sinks, [event], log=log)


def _checked(check: Any, value: object) -> str:
    try:
        result: str = check(value)
    except InventoryError as exc:
        raise BadRequest(str(exc)) from None
    return result


def changes_for(services: Services, actor: str) -> InventoryChanges:
    """The changes object of a running deployment (`shared.runtime.Services`)."""
    return InventoryChanges(
        store=services.store, events=services.store, clock=services.clock,
        authority_id=services.settings.authority_id, actor=actor, sinks=services.sinks,
    )
