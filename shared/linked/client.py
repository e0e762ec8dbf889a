"""Building and posting reports to a central Cirrus (`POST /linked/v1/report`).

Used by the event sink of an instance in linked mode (`shared.linked.sink`); the
CLI (`cirrus linked report`) builds the same items. Written on `urllib.request`
as the webhook sink is: one POST per batch needs no client library.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from shared.errors import BackendError
from shared.linked.ingest import MAX_EVENTS

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
    base_url: str, token: str, items: Sequence[dict[str, Any]], *, ctx: ssl.SSLContext | None, timeout: float = 30
) -> list[dict[str, Any]]:
    """POST one report; return the per-item results.

    Raises:
        BackendError: unreachable, or an answer other than 200 (its message included).
    """
    body = json.dumps({"events": list(items)}).encode()
    req = urllib.request.Request(base_url.rstrip("/") + REPORT_PATH, data=body, method="POST")  # noqa: S310
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("User-Agent", "cirrus-linked/1.0")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:  # noqa: S310
            payload = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            detail = str(json.loads(exc.read()).get("message", ""))
        except (ValueError, AttributeError, OSError):
            detail = ""
        raise BackendError(f"the central authority refused the report ({exc.code}): {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise BackendError(f"cannot reach the central authority at {base_url}: {getattr(exc, 'reason', exc)}") from exc
    except ValueError as exc:
        raise BackendError("unexpected answer from the central authority") from exc
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise BackendError("unexpected answer from the central authority")
    return results
