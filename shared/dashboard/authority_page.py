"""The dashboard's authorities page: every issuing authority of the deployment, and the roots' ARLs.

For each authority (the default one first, then each `authorities` entry): its chain, its
intermediate generations (shared.rotation: the one issuing now, those staged, and the
retired ones that no longer issue but still sign CRLs and OCSP answers for their
certificates), the state of each of its CRLs and how its OCSP answers are signed. For each
root: its authority revocation list (shared.intermediate_revocation).

CRL and ARL status is read from what is published (the objects in the blob store, parsed),
not from the event log: that is what relying parties see, and a publication older than the
event log's window still shows. One blob read per CRL and per root: this page is not on a
hot path, and a deployment has a handful of authorities.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.wrappers import Response

from shared.dashboard.html import e, page, table
from shared.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from shared.blobs.base import BlobStore
    from shared.rotation_record import Generation
    from shared.runtime import Services

_log = logging.getLogger(__name__)
_CERT_HEADERS = ["Subject", "Not before", "Not after", "SHA-256 fingerprint"]


@dataclass(frozen=True, slots=True)
class _Shown:
    """One issuing authority as the page shows it."""

    name: str
    authority_id: str
    prefix: str
    chain: list[x509.Certificate]
    generations: list[tuple[str, Generation | None, x509.Certificate, str]]  # state, generation, CA, crl id
    ocsp_url: str
    responder: str  # how OCSP answers are signed


def _ts(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else ""


def _fp(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _cert_rows(certs: list[x509.Certificate]) -> list[list[str]]:
    return [[e(c.subject.rfc4514_string()), e(_ts(c.not_valid_before_utc)), e(_ts(c.not_valid_after_utc)),
             e(_fp(c))] for c in certs]  # fmt: skip


def _state(gen: Generation, active: Generation, now: dt.datetime) -> str:
    if gen is active:
        return "active"
    return "retired" if gen.switch_time(now) is not None else "staged"


def _default(s: Services) -> _Shown:
    """The default authority, with its generations when it rotates (none behind an issuer link or as an RA)."""
    settings = s.settings
    generations: list[tuple[str, Generation | None, x509.Certificate, str]] = []
    chain = s.intermediates
    if s.rotating is not None:
        from shared.rotation_record import choose_active

        try:
            found = s.rotating.rotation.generations()
            now = s.clock.now()
            active = choose_active(found, now)
            chain = list(active.chain)
            generations = [(_state(g, active, now), g, g.certificate, g.crl_id) for g in found]
        except (BackendError, ConfigError) as exc:
            _log.warning("dashboard: intermediate generations not readable: %s", exc)
    if not generations and chain:
        generations = [("active", None, chain[0], settings.authority_id)]
    return _Shown(name="default", authority_id=settings.authority_id, prefix="", chain=chain,
                  generations=generations, ocsp_url=settings.crl.ocsp_url,
                  responder=_responder(s, settings.authority_id))  # fmt: skip


def _responder(s: Services, authority_id: str) -> str:
    """What signs an authority's OCSP answers: its delegated responder certificate (with `ocsp.responderKey`,
    one per authority, renewed at CRL publication) or its CA key."""
    if not s.settings.ocsp.responder_key:
        return "the issuing CA key"
    from shared.validation.responder_cert import load_responder_certificate

    try:
        stored = load_responder_certificate(s.store, authority_id)  # type: ignore[arg-type]
    except BackendError:
        stored = None
    cert = stored[0] if stored is not None else None
    when = f"valid until {_ts(cert.not_valid_after_utc)}" if cert is not None else "not issued yet"
    return f"delegated responder certificate, {when}"


def _further(s: Services) -> list[_Shown]:
    if not s.settings.authorities:
        return []
    from shared.authorities import hosted

    return [
        _Shown(name=h.name, authority_id=h.authority_id, prefix=h.prefix, chain=h.intermediates,
               generations=[("active", None, h.certificate, h.authority_id)],
               ocsp_url=h.settings.ocsp_url or s.settings.crl.ocsp_url, responder=_responder(s, h.authority_id))
        for h in hosted(s).others
    ]  # fmt: skip


def _crl_cells(blobs: BlobStore | None, crl_id: str, shards: int, ca: x509.Certificate, now: dt.datetime) -> list[str]:
    """Last published, next update, cRLNumber and entries of one CRL (its first shard when sharded)."""
    if blobs is None:
        return ["CRLs disabled", "", "", ""]
    from shared.validation.partition import blob_name

    try:
        blob = blobs.read(blob_name(crl_id, 0 if shards else None))
    except (BackendError, OSError, ValueError) as exc:
        _log.warning("dashboard: CRL %s not readable: %s", crl_id, exc)
        return ["not readable", "", "", ""]
    if blob is None:
        return ["not published yet", "", "", ""]
    try:
        crl = x509.load_der_x509_crl(blob.data)
        if not crl.is_signature_valid(ca.public_key()):  # type: ignore[arg-type]
            return ["not signed by this CA", "", "", ""]
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except (ValueError, TypeError, x509.ExtensionNotFound):
        return ["not a CRL", "", "", ""]
    late = crl.next_update_utc is not None and crl.next_update_utc < now
    nxt = _ts(crl.next_update_utc) + (" (overdue)" if late else "")
    return [e(_ts(crl.last_update_utc)), e(nxt), e(str(number)), e(str(len(crl)))]


def _authority_section(s: Services, shown: _Shown, blobs: BlobStore | None) -> str:
    label = f"Authority {shown.name}"
    where = f"/{shown.prefix}/" if shown.prefix else "/"
    body = (f'<section aria-labelledby="authority-{e(shown.authority_id)}">'
            f'<h2 id="authority-{e(shown.authority_id)}">{e(label)}</h2>'
            f"<p>Records carry authority id <code>{e(shown.authority_id)}</code>; "
            f"step-ca API at <code>{e(where)}</code>.</p>")  # fmt: skip
    body += table(f"{shown.name}: chain (issuing CA first)", _CERT_HEADERS, _cert_rows(shown.chain))
    now = s.clock.now()
    rows = []
    for state, gen, cert, crl_id in shown.generations:
        switch = ""
        if gen is not None:
            since = gen.switch_time(now)
            switch = _ts(since) if since is not None else ""
            if gen.not_before is not None and gen.not_before > now:
                switch = f"scheduled {_ts(gen.not_before)}"
        rows.append([f'<span class="{e(state)}">{e(state)}</span>', e(switch), e(cert.subject.rfc4514_string()),
                     e(_ts(cert.not_valid_before_utc)), e(_ts(cert.not_valid_after_utc)), e(crl_id),
                     e(_fp(cert))])  # fmt: skip
    body += table(f"{shown.name}: intermediate generations",
                  ["State", "Issues since", "Subject", "Not before", "Not after", "CRL id", "SHA-256 fingerprint"],
                  rows)  # fmt: skip
    shards = s.settings.crl.shards
    body += table(f"{shown.name}: CRLs", ["CRL id", "Last published", "Next update", "cRLNumber", "Entries"],
                  [[e(crl_id), *_crl_cells(blobs, crl_id, shards, cert, now)]
                   for _, _, cert, crl_id in shown.generations])  # fmt: skip
    body += (f"<dl><dt>OCSP URL</dt><dd>{e(shown.ocsp_url or 'not set')}</dd>"
             f"<dt>OCSP answers signed by</dt><dd>{e(shown.responder)}</dd></dl></section>")  # fmt: skip
    return body


def _arl_rows(s: Services, blobs: BlobStore | None) -> list[list[str]]:
    from shared.intermediate_revocation import RevocationCeremonyError, arl_blob_name, read_arl

    rows = []
    for root in s.roots:
        name = arl_blob_name(root)
        subject = e(root.subject.rfc4514_string())
        if blobs is None:
            rows.append([subject, e(name), "no blob store", "", "", ""])
            continue
        try:
            found = read_arl(blobs, root)
        except RevocationCeremonyError as exc:
            rows.append([subject, e(name), e(str(exc).removeprefix(name + ": ")), "", "", ""])
            continue
        except (BackendError, OSError) as exc:
            _log.warning("dashboard: ARL %s not readable: %s", name, exc)
            rows.append([subject, e(name), "not readable", "", "", ""])
            continue
        if found is None:
            rows.append([subject, e(name), "none published (no intermediate revoked)", "", "", ""])
            continue
        crl = found[0]
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        revoked = ", ".join(str(r.serial_number) for r in crl) or "none"
        rows.append([subject, e(name), e(str(number)), e(_ts(crl.last_update_utc)), e(_ts(crl.next_update_utc)),
                     e(revoked)])  # fmt: skip
    return rows


def authorities(s: Services, csrf: str) -> Response:
    """Roots and their ARLs, then each issuing authority with its generations, CRLs and OCSP."""
    blobs: BlobStore | None = None
    try:
        from shared.validation.wiring import blobs as open_blobs

        blobs = open_blobs(s)
    except (BackendError, ConfigError, OSError) as exc:
        _log.warning("dashboard: blob store not usable: %s", exc)
    crl = s.settings.crl
    body = table("Root certificates", _CERT_HEADERS, _cert_rows(s.roots))
    body += table("Root authority revocation lists (revoked intermediates)",
                  ["Root", "Object", "cRLNumber", "This update", "Next update", "Revoked intermediate serials"],
                  _arl_rows(s, blobs))  # fmt: skip
    shown = [_default(s), *_further(s)]
    crl_blobs = blobs if crl.enabled else None
    body += "".join(_authority_section(s, a, crl_blobs) for a in shown)
    body += (
        "<h2>CRL publication</h2><dl>"
        f"<dt>CRL</dt><dd>{'enabled' if crl.enabled else 'disabled'}; published every {e(crl.publish_interval)}, "
        f"{e(crl.shards) if crl.shards else 'one'} shard(s)</dd>"
        f"<dt>CRL URL</dt><dd>{e(crl.base_url or 'not set')}</dd>"
        f"<dt>Publish on revoke</dt><dd>{'yes' if crl.publish_on_revoke else 'no'}</dd></dl>"
    )
    return page("Authorities", body, csrf=csrf)
