"""Revoking, from the central Cirrus, a certificate a linked authority reported.

The central does not sign for a linked authority, so its revocation only counts once the
linked authority has made it: the dashboard's revoke records it here (the certificate then
shows revoked: endpoints, alerts and usage stop counting it) and delivers it to the link's
revoke endpoint (`revokeUrl`, registered by `cirrus linked add --revoke-url`): step-ca's
`POST /revoke` body (serial, reasonCode, reason, passive) with `Authorization: Bearer <revoke
token>`, which a linked Cirrus accepts (`shared.linked.revoke_tokens`).

Each revocation has one delivery record (collection `linked_revocations`, keyed by serial):
`pending` until the linked authority took it, then `delivered`; after `MAX_ATTEMPTS` failed
tries `dead` (logged as an error). A failure keeps the record pending with its last error and
the time of the next try, and the sweep retries it with backoff, so nothing is lost. Nothing is
revoked twice: the record is created if absent before anything else (a second request for the
serial is refused), attempts are taken by a compare-and-set with a lease (one instance per
attempt), and an answer saying the certificate is already revoked there (a retry after a lost
answer) counts as delivered. When the linked Cirrus then reports the revocation back (linked
mode), the central's ingest finds it recorded and answers `duplicate`.

Each outcome raises one event into the event log and the sinks: `linked.revocation.delivered`
when the linked authority took it, `linked.revocation.failed` when it was dead-lettered. Only
the instance whose compare-and-set recorded the outcome raises it, so it is raised once.

The TLS connection trusts the system's roots and the link's own anchors (a linked `cirrus up`
serves a certificate from its own intermediate). Posted through `shared.webhooks.bounded_post`,
as the linked client and the webhook sink are: one POST needs no client library, and the
link's host name is resolved inside the timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives import serialization

from shared.errors import AlreadyRevoked, BadRequest, Conflict
from shared.events.base import (
    CERTIFICATE_REVOKED,
    LINKED_REVOCATION_DELIVERED,
    LINKED_REVOCATION_FAILED,
    EventSink,
    authority_event,
    publish_to_sinks,
)
from shared.events.delivery import LEASE, backoff
from shared.linked import registry
from shared.model import CertificateRecord, Event, Revocation
from shared.webhooks import bounded_post
from shared.webhooks.resolve import Resolve, system_resolve

COLLECTION = "linked_revocations"
MAX_ATTEMPTS = 8
TIMEOUT = 5.0
#: Delivery records are kept this long after their last change.
KEEP = dt.timedelta(days=90)
_PREFIX = "linked-"
_log = logging.getLogger("cirrus.linked")


class RevokeStore(registry.LinkDocuments, Protocol):
    """What a linked revocation needs of the store."""

    def update_document(self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int) -> bool:
        """Compare-and-set replace."""
        ...

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Documents whose top-level field equals value."""
        ...

    def get_revocation(self, serial: str) -> Revocation | None:
        """The revocation of a serial, or None."""
        ...

    def revoke(self, revocation: Revocation, *, events: Sequence[Event] = ()) -> None:
        """Record a revocation with its events."""
        ...

    def append_events(self, events: Sequence[Event]) -> None:
        """Append events to the event log (a delivery's outcome)."""
        ...


@dataclass(frozen=True, slots=True)
class Answer:
    """What the linked authority said: delivered or not, and a short reason to show."""

    delivered: bool
    detail: str


Poster = Callable[[str, str, dict[str, Any], ssl.SSLContext, float], Answer]


def link_name(authority_id: str) -> str | None:
    """The linked authority's name from its certificates' authority id, or None for another authority."""
    return authority_id[len(_PREFIX):] if authority_id.startswith(_PREFIX) else None


def revocable_link(store: registry.LinkDocuments, record: CertificateRecord) -> registry.LinkedAuthority | None:
    """The linked authority a revocation of `record` would be delivered to (None: not linked, or no endpoint)."""
    name = link_name(record.authority_id)
    link = registry.load(store, name) if name else None
    return link if link is not None and link.revoke_url else None


def tls_context(link: registry.LinkedAuthority) -> ssl.SSLContext:
    """The system's roots plus the link's anchors."""
    ctx = ssl.create_default_context()
    pem = "".join(a.public_bytes(serialization.Encoding.PEM).decode() for a in link.anchors)
    if pem:
        ctx.load_verify_locations(cadata=pem)
    return ctx


def post_revoke(
    url: str, token: str, body: dict[str, Any], ctx: ssl.SSLContext, timeout: float, *,
    resolve: Resolve = system_resolve,
) -> Answer:
    """POST the revocation; never raises (an unreachable endpoint is an undelivered answer)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}",
               "User-Agent": "cirrus-linked/1.0"}  # fmt: skip
    try:
        reply = bounded_post.post(url, json.dumps(body).encode(), headers, timeout=timeout, context=ctx,
                                  resolve=resolve)  # fmt: skip
    except bounded_post.PostFailed as exc:
        return Answer(False, f"cannot reach the linked authority: {str(exc)[:200]}")
    if 200 <= reply.status < 300:
        return Answer(True, f"revoked by the linked authority ({reply.status})")
    try:
        message = str(json.loads(reply.body[:4096]).get("message", ""))[:200]
    except (ValueError, AttributeError):
        message = ""
    if reply.status == 400 and "already revoked" in message:
        return Answer(True, "already revoked at the linked authority")
    return Answer(False, f"the linked authority answered {reply.status}" + (f": {message}" if message else ""))


def delivery(store: RevokeStore, serial: str) -> dict[str, Any] | None:
    """The delivery record of a serial's linked revocation (for the dashboard), or None."""
    found = store.get_document(COLLECTION, serial)
    return found[0] if found else None


@dataclass
class LinkedRevoker:
    """Records revocations of linked authorities' certificates and delivers them."""

    store: RevokeStore
    clock: Any  # shared.clock.Clock
    sinks: Sequence[EventSink] = ()
    post: Poster = post_revoke
    max_attempts: int = MAX_ATTEMPTS

    def revoke(self, record: CertificateRecord, *, reason_code: int, reason: str) -> dict[str, Any]:
        """Record the revocation here, then try to deliver it once; return its delivery record.

        Raises:
            BadRequest: not a linked authority's certificate, or its link has no revoke endpoint.
            AlreadyRevoked: revoked before (here, or being delivered).
        """
        link = revocable_link(self.store, record)
        if link is None:
            raise BadRequest("this certificate's authority has no revoke endpoint registered")
        if self.store.get_revocation(record.serial) is not None:
            raise AlreadyRevoked(record.serial)
        now = self.clock.now()
        data = {"serial": record.serial, "link": link.name, "reasonCode": reason_code, "reason": reason[:256],
                "state": "pending", "attempts": 0, "next": now.isoformat(), "lastError": "",
                "requestedAt": now.isoformat()}  # fmt: skip
        if not self.store.create_document(COLLECTION, record.serial, data, expires_at=now + KEEP):
            raise AlreadyRevoked(record.serial)
        revocation = Revocation(
            serial=record.serial, authority_id=record.authority_id, revoked_at=now.replace(microsecond=0),
            not_after=record.not_after, reason_code=reason_code, reason=reason[:256],
            provisioner_id=record.provisioner.id,
        )  # fmt: skip
        event = authority_event(
            record.authority_id, CERTIFICATE_REVOKED, record.serial, now,
            {"serial": record.serial, "endpointId": record.endpoint_id, "reasonCode": reason_code,
             "authorityId": record.authority_id, "linkedAuthority": link.name},
        )  # fmt: skip
        try:
            self.store.revoke(revocation, events=[event])
        except AlreadyRevoked:
            pass  # reported revoked by the link meanwhile: still deliver the operator's request (idempotent there)
        else:
            publish_to_sinks(self.sinks, [event], log=_log)
        return self.deliver(record.serial, now=now) or data

    def deliver(self, serial: str, *, now: dt.datetime) -> dict[str, Any] | None:
        """One attempt at a pending delivery that is due; the record after it (None: not due, or taken)."""
        found = self.store.get_document(COLLECTION, serial)
        if found is None:
            return None
        data, version = found
        if data.get("state") != "pending" or dt.datetime.fromisoformat(str(data["next"])) > now:
            return None
        attempts = int(data.get("attempts", 0)) + 1
        taken = {**data, "attempts": attempts, "next": (now + LEASE).isoformat()}
        if not self.store.update_document(COLLECTION, serial, taken, expected_version=version):
            return None  # another instance is attempting it
        link = registry.load(self.store, str(data.get("link", "")))
        if link is None or not link.revoke_url:
            answer = Answer(False, "the linked authority or its revoke endpoint is no longer registered")
        else:
            body = {"serial": serial, "reasonCode": int(data.get("reasonCode", 0)),
                    "reason": str(data.get("reason", "")), "passive": True}  # fmt: skip
            answer = self.post(link.revoke_url, link.revoke_token, body, tls_context(link), TIMEOUT)
        if answer.delivered:
            final = {**taken, "state": "delivered", "deliveredAt": now.isoformat(), "lastError": "",
                     "result": answer.detail}  # fmt: skip
        elif attempts >= self.max_attempts:
            final = {**taken, "state": "dead", "deadAt": now.isoformat(), "lastError": answer.detail}
            _log.error(json.dumps({"event": "linked revocation dead-lettered", "serial": serial,
                                   "link": data.get("link"), "attempts": attempts}))  # fmt: skip
        else:
            final = {**taken, "next": (now + backoff(attempts)).isoformat(), "lastError": answer.detail}
        if not self.store.update_document(COLLECTION, serial, final, expected_version=version + 1):
            raise Conflict("the delivery record changed during the attempt")  # a lease outlived: the next sweep
        if final["state"] in ("delivered", "dead"):
            self._raise_outcome(serial, final, now)
        return final

    def _raise_outcome(self, serial: str, final: dict[str, Any], now: dt.datetime) -> None:
        """Record and publish the event of a delivery's final state (never undoes it on failure)."""
        delivered = final["state"] == "delivered"
        data: dict[str, Any] = {"serial": serial, "linkedAuthority": str(final.get("link", "")),
                                "reasonCode": int(final.get("reasonCode", 0)),
                                "attempts": int(final["attempts"])}  # fmt: skip
        data.update({"result": final.get("result", "")} if delivered else {"error": final.get("lastError", "")})
        event = authority_event(f"{_PREFIX}{data['linkedAuthority']}",
                                LINKED_REVOCATION_DELIVERED if delivered else LINKED_REVOCATION_FAILED,
                                serial, now, data)  # fmt: skip
        try:
            self.store.append_events([event])
        except Exception:
            _log.warning("linked revocation event not recorded", exc_info=True)
            return
        publish_to_sinks(self.sinks, [event], log=_log)

    def retry_due(self, *, limit: int = 200) -> int:
        """The sweep: one attempt at each due pending delivery; returns how many were delivered."""
        now = self.clock.now()
        delivered = 0
        for serial, _data, _version in self.store.find_documents(COLLECTION, "state", "pending", limit=limit):
            try:
                result = self.deliver(serial, now=now)
            except Conflict:
                continue
            delivered += bool(result and result.get("state") == "delivered")
        return delivered
