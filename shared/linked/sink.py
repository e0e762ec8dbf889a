"""Linked mode: the event sink that reports what this instance issues and revokes to a central Cirrus.

Configured as `"linked": {"url": "https://central:9443", "tokenFile": "secrets/linked-token",
"root": "certs/central_root.crt"}` (`root` optional: the root the central's TLS chains to;
without it the system's trust store is used). It is tracked like any sink that can fail
(`shared.events.delivery`): what the central did not take is kept and the sweep re-delivers
it, and each report item carries the CloudEvents `id`, so a re-delivery the central already
took is answered `replayed` and counted once.

A revocation a central Cirrus asked for (with a revoke token, `shared.linked.revoke`) is not
reported from inside that request: `deferred_of` names it and it is left to the sweep, so the
central's `/revoke` answer never waits on a report to that same central.

Events carry the serial, never the certificate; the sink reads the DER from the store
(the event is published after the record is committed, so it is there).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from shared.events.base import CERTIFICATE_ISSUED, CERTIFICATE_REKEYED, CERTIFICATE_RENEWED, CERTIFICATE_REVOKED
from shared.linked.client import batches, issued_item, post_report, revoked_item
from shared.model import Event
from shared.store.base import CertificateReader

_ISSUED = frozenset({CERTIFICATE_ISSUED, CERTIFICATE_RENEWED, CERTIFICATE_REKEYED})


@dataclass
class LinkedSink:
    """Posts the X.509 certificates of issued and revoked events to the central Cirrus."""

    url: str
    token: str
    certificates: CertificateReader
    ctx: ssl.SSLContext | None
    timeout: float = 5.0

    def items(self, events: Sequence[Event]) -> list[dict[str, Any]]:
        """The report items for the events this instance's own X.509 certificates raised."""
        out: list[dict[str, Any]] = []
        for event in events:
            if event.type not in _ISSUED and event.type != CERTIFICATE_REVOKED:
                continue
            if event.data.get("linkedAuthority"):  # reported to this instance: not ours to pass on
                continue
            record = self.certificates.get_certificate(str(event.data.get("serial", "")))
            if record is None or str(record.kind) != "x509":  # SSH certificates are not reported
                continue
            if event.type == CERTIFICATE_REVOKED:
                code = event.data.get("reasonCode", 0)
                out.append(revoked_item(record.der, revoked_at=event.time, reason_code=int(code), report_id=event.id))
            else:
                out.append(issued_item(record.der, report_id=event.id))
        return out

    def deferred_of(self, events: Sequence[Event]) -> list[Event]:
        """The events not to report inside the request that raised them: revocations a central
        Cirrus asked for with a revoke token. The central is waiting on that `/revoke`, and
        with one worker it cannot take a report until it has its answer (a deadlock until its
        timeout), so `TrackedSink` keeps these for the sweep, which reports them afterwards."""
        return [e for e in events if e.type == CERTIFICATE_REVOKED and e.data.get("revokeToken")]

    def publish(self, events: Sequence[Event]) -> None:
        """Report; raise `BackendError` when the central did not take a report (kept for re-delivery)."""
        for batch in batches(self.items(events)):
            post_report(self.url, self.token, batch, ctx=self.ctx, timeout=self.timeout)


def from_config(raw: Any, *, base_dir: Path, certificates: CertificateReader) -> tuple[str, LinkedSink]:
    """`(tracking name, sink)` from the config's `linked` object.

    Raises:
        ConfigError: a missing url or token file, an unreadable token or root.
    """
    if not isinstance(raw, Mapping) or set(raw) - {"url", "tokenFile", "root"}:
        raise ConfigError('"linked" must be an object with "url", "tokenFile" and optionally "root"')
    url = raw.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise ConfigError('"linked.url" must be the central Cirrus\'s https:// URL')
    token_file = raw.get("tokenFile")
    if not isinstance(token_file, str) or not token_file:
        raise ConfigError('"linked.tokenFile" must name the file holding the token `cirrus linked add` printed')
    try:
        token = (base_dir / token_file).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read linked.tokenFile {token_file}") from exc
    if not token or any(c.isspace() for c in token):
        raise ConfigError(f"linked.tokenFile {token_file} holds no token")
    ctx: ssl.SSLContext | None = None
    if url.startswith("https://"):
        root = raw.get("root")
        try:
            ctx = ssl.create_default_context(cafile=str(base_dir / root) if isinstance(root, str) else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot read linked.root {root}") from exc
    return f"linked:{url.rstrip('/')}", LinkedSink(url=url.rstrip("/"), token=token, certificates=certificates, ctx=ctx)
