"""The Firestore store's revocations: one document per revoked serial, written with its usage.

Split from `shared.store.firestore` by concern. A revocation is one transaction, the way
an issuance is: the revocation document (carrying its events) and the endpoint-month
usage documents of the months it cut short (`firestore_usage`). The time-ordered
revocation queries (CRL, `revoked_since`) are in `firestore_queries`.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from shared import metering
from shared.errors import AlreadyRevoked
from shared.model import Event, Revocation
from shared.retry import Attempt
from shared.store import firestore_docs as docs
from shared.store import firestore_usage
from shared.store.firestore_usage import FirestoreUsage


class FirestoreRevocations(FirestoreUsage):
    """The revocation point read and the revoke transaction."""

    def get_revocation(self, serial: str) -> Revocation | None:
        """Return the revocation of a serial, or None."""
        ref = self._col(docs.REVOCATIONS).document(docs.doc_id(serial))

        def op(a: Attempt) -> Revocation | None:
            snap = ref.get(**self._kw(a))
            return docs.revocation_from_fields(snap.to_dict()) if snap.exists else None

        return self._run("get_revocation", op)

    def revoke(self, revocation: Revocation, *, events: Sequence[Event] = ()) -> None:
        """Create the revocation document, carrying its events; AlreadyRevoked if it exists."""
        write_id = secrets.token_hex(8)
        fields = {
            **docs.revocation_fields(revocation),
            **docs.events_fields(docs.encode_events(events)),
            "w": write_id,
            "shard": self._shard(docs.doc_id(revocation.serial)),
        }
        ref = self._col(docs.REVOCATIONS).document(docs.doc_id(revocation.serial))
        cert_ref = self._col(docs.CERTIFICATES).document(docs.doc_id(revocation.serial))
        revoked_iso = fields["revoked_at"]

        def body(tx: Any, a: Attempt) -> None:
            kw = self._kw(a)
            snaps = {s.reference.path: s for s in self._client.get_all([ref, cert_ref], transaction=tx, **kw)}
            if snaps[ref.path].exists:
                if (snaps[ref.path].to_dict() or {}).get("w") == write_id:
                    return
                raise AlreadyRevoked(revocation.serial)
            cert = snaps[cert_ref.path].to_dict() if snaps[cert_ref.path].exists else None
            months: list[str] = []
            if cert is not None:
                before = firestore_usage.interval_of(cert, None)
                after = firestore_usage.interval_of(cert, revoked_iso)
                months = metering.revocation_months(before, after)
            if cert is None or not months:
                tx.create(ref, fields)
                return
            endpoint_id = str(cert["endpoint_id"])
            window = (metering.month_bounds(months[0])[0], metering.month_bounds(months[-1])[1])
            current = self._meter.read_months(tx, kw, endpoint_id, months)  # first: see `firestore_usage`
            intervals = self._meter.intervals(tx, kw, endpoint_id, window, revoked={revocation.serial: revoked_iso})
            owner = (str(cert["authority_id"]), "")
            if any(m not in current for m in months):
                owner_snap = self._col(docs.ENDPOINTS).document(docs.doc_id(endpoint_id)).get(transaction=tx, **kw)
                if owner_snap.exists:
                    owner = (str(owner_snap.get("authority_id")), str(owner_snap.get("name")))
            tx.create(ref, fields)
            self._meter.write_months(tx, endpoint_id, owner, current, metering.after_revocation(months, intervals))

        def op(a: Attempt) -> None:
            self._transaction(lambda tx: body(tx, a))

        self._run("revoke", op)
