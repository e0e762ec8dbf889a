"""Building and posting reports to a central Cirrus (`POST /linked/v1/report`).

Used by the event sink of an instance in linked mode (`shared.linked.sink`); the
CLI (`cirrus linked report`) builds the same items. Posted through
`shared.webhooks.bounded_post`, as the webhook sink is: one POST per batch needs no
client library, and the central's host name is resolved inside the timeout.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import ssl
from collections.abc import Sequence
from typing import Any

from shared.errors import BackendError
from shared.linked.ingest import MAX_EVENTS
from shared.webhooks import bounded_post
from shared.webhooks.resolve import Resolve, system_resolve

REPORT_PATH = "/linked/v1/report"


def issued_item(der: bytes, *, report_id: str | None = None) -> dict[str, Any]:
    """A report item saying `der` was issued (its id defaults to one derived from it)."""
    return {
        "type": "issued",
        "certificate": base64.b64encode(der).decode(),
        "id": report_id or "issued-" + hashlib.sha256(der).hexdigest(),
    }


def revoked_item(
    der: bytes, *, revoked_at: dt.datetime, reason_code: int = 0, report_id: str | None = None
) -> dict[str, Any]:
    """A report item saying `der` was revoked at `revoked_at`."""
    return {
        "type": "revoked",
        "certificate": base64.b64encode(der).decode(),
        "revokedAt": revoked_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "reasonCode": reason_code,
        "id": report_id or "revoked-" + hashlib.sha256(der).hexdigest(),
    }


def batches(items: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Items in reports of at most `MAX_EVENTS`."""
    return [list(items[i : i + MAX_EVENTS]) for i in range(0, len(items), MAX_EVENTS)]


def post_report(
    base_url: str, token: str, items: Sequence[dict[str, Any]], *, ctx: ssl.SSLContext | None, timeout: float = 30,
    resolve: Resolve = system_resolve,
) -> list[dict[str, Any]]:
    """POST one report; return the per-item results.

    Raises:
        BackendError: unreachable, or an answer other than 200 (its message included).
    """
    body = json.dumps({"events": list(items)}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}",
               "User-Agent": "cirrus-linked/1.0"}  # fmt: skip
    try:
        reply = bounded_post.post(base_url.rstrip("/") + REPORT_PATH, body, headers, timeout=timeout, context=ctx,
                                  resolve=resolve)  # fmt: skip
    except bounded_post.PostFailed as exc:
        raise BackendError(f"cannot reach the central authority at {base_url}: {exc}") from exc
    if reply.status != 200:
        try:
            detail = str(json.loads(reply.body).get("message", ""))
        except (ValueError, AttributeError):
            detail = ""
        raise BackendError(f"the central authority refused the report ({reply.status}): {detail}")
    try:
        payload = json.loads(reply.body or b"{}")
    except ValueError as exc:
        raise BackendError("unexpected answer from the central authority") from exc
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise BackendError("unexpected answer from the central authority")
    return results
