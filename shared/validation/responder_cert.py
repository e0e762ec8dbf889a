"""The delegated OCSP responder certificate: issue, store, rotate, load (OCSP-05).

The OCSP responder signs with its own key (held by the KeyManager), certified
by a short-lived certificate that the issuing CA signs directly with EKU
id-kp-OCSPSigning only and id-pkix-ocsp-nocheck (a relying party does not ask
about the responder's own status, so it must be short-lived instead). That way
the `ocsp` function never needs the CA key.

Issuing needs the CA key, answering must not, so the certificate travels
through the `DocumentStore`: one document per authority holding its PEM and
validity. Whoever holds the CA key (the CRL publication path) calls
`ResponderRotator.ensure()`: it renews the certificate when less than half of
the configured lifetime remains, or at once when the stored certificate is not
for the configured responder key or not from this CA. The write is a
compare-and-set on the document's version, so when several publishers race
exactly one certificate wins and the others adopt it (their own signature is
an orphan nobody ever sees).

The store is the arbiter; the rotator also mirrors the current document to the
blob bucket (`ocsp-responder/<authority>.json`, generation preconditions),
because the deployed `ocsp` function may read only the bucket (no store access,
like the CRLs and the serial index it answers from). Responders read either
copy through `DelegatedResponder` (`BlobDocuments` adapts the bucket), which
caches the parsed certificate and re-reads it every few minutes, more often in its last
quarter of life, and refuses anything that is not a valid delegated
certificate for its own key from the right CA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.blobs.base import BlobStore, PreconditionFailed
from shared.clock import Clock
from shared.errors import BackendError
from shared.keys.base import PublicKey
from shared.store.base import DocumentStore
from shared.x509.profile import Issuer, sign_certificate, whole_seconds
from shared.x509.serials import random_serial

COLLECTION = "ocsp_responder"
BLOB_PREFIX = "ocsp-responder"
_log = logging.getLogger(__name__)
OCSP_NOCHECK = x509.OCSPNoCheck.oid  # 1.3.6.1.5.5.7.48.1.5, value NULL
DEFAULT_LIFETIME = dt.timedelta(hours=72)
#: notBefore is set this far back so a relying party whose clock is a little behind accepts it.
BACKDATE = dt.timedelta(minutes=5)


def key_id(public_key: PublicKey) -> str:
    """SHA-256 of the SubjectPublicKeyInfo, hex: names a key without holding it."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def responder_subject(ca: x509.Certificate) -> x509.Name:
    """`O` of the CA (if any) and CN "<CA CN> OCSP Responder"."""
    cns = ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else "Cirrus"
    attrs = [a for a in ca.subject if a.oid == NameOID.ORGANIZATION_NAME][:1]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, f"{cn} OCSP Responder"[:64]))
    return x509.Name(attrs)


def responder_extensions() -> list[x509.Extension[x509.ExtensionType]]:
    """KU digitalSignature (critical), EKU OCSPSigning only, ocsp-nocheck NULL (SKI/AKI added at signing)."""
    ku = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING])
    nocheck = x509.OCSPNoCheck()
    return [
        x509.Extension(ku.oid, True, ku),
        x509.Extension(eku.oid, False, eku),
        x509.Extension(OCSP_NOCHECK, False, nocheck),
    ]


def issue_responder_certificate(
    issuer: Issuer, *, public_key: PublicKey, now: dt.datetime, lifetime: dt.timedelta = DEFAULT_LIFETIME
) -> x509.Certificate:
    """Sign a delegated responder certificate for `public_key` directly under `issuer`."""
    now = whole_seconds(now)
    return sign_certificate(
        issuer,
        subject=responder_subject(issuer.certificate),
        public_key=public_key,
        serial=random_serial(),
        not_before=now - BACKDATE,
        not_after=now + lifetime,
        extensions=responder_extensions(),
    )


def is_delegated_responder(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether `cert` is signed by `ca` and carries EKU OCSPSigning (what relying parties check)."""
    if cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    return ExtendedKeyUsageOID.OCSP_SIGNING in eku


def _document(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "serial": str(cert.serial_number),
        "notBefore": cert.not_valid_before_utc.isoformat(),
        "notAfter": cert.not_valid_after_utc.isoformat(),
        "keyId": key_id(cert.public_key()),  # type: ignore[arg-type]
    }


class DocumentReader(Protocol):
    """The one read a responder needs (`DocumentStore` and `BlobDocuments` fit)."""

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return `(data, version)` or None."""
        ...


def blob_name(authority_id: str) -> str:
    """Where the bucket copy of an authority's responder document lives."""
    return f"{BLOB_PREFIX}/{authority_id}.json"


class BlobDocuments:
    """Reads the bucket copy of the responder document as a `DocumentReader` (version = generation)."""

    def __init__(self, *, blobs: BlobStore) -> None:
        """Read from `blobs`."""
        self._blobs = blobs

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """The JSON object at `blob_name(doc_id)`, or None if absent or not a JSON object."""
        blob = self._blobs.read(blob_name(doc_id))
        if blob is None:
            return None
        try:
            data = json.loads(blob.data)
        except ValueError:
            return None
        return (data, blob.generation) if isinstance(data, dict) else None


def _parse(data: dict[str, Any]) -> x509.Certificate | None:
    """The certificate in a stored document, or None if the document is damaged."""
    pem = data.get("pem")
    if not isinstance(pem, str):
        return None
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None


def load_responder_certificate(
    documents: DocumentStore, authority_id: str
) -> tuple[x509.Certificate | None, int] | None:
    """The stored certificate and document version; None if there is no document.

    A damaged document yields `(None, version)` so the rotator can overwrite it.
    """
    found = documents.get_document(COLLECTION, authority_id)
    if found is None:
        return None
    data, version = found
    return _parse(data), version


@dataclass(frozen=True, slots=True)
class Rotation:
    """What `ensure()` did: the certificate now current, and whether this call stored it."""

    certificate: x509.Certificate
    issued: bool
    reason: str  # "current", or why a new certificate was needed


class ResponderRotator:
    """Keeps an authority's delegated responder certificate current (runs where the CA key is)."""

    def __init__(
        self,
        *,
        documents: DocumentStore,
        clock: Clock,
        authority_id: str,
        issuer: Issuer,
        responder_key: PublicKey,
        lifetime: dt.timedelta = DEFAULT_LIFETIME,
        mirror: BlobStore | None = None,
    ) -> None:
        """Wire the rotator.

        Args:
            documents: where the certificate is shared with every responder.
            clock: the time source (rotation is a function of it).
            authority_id: the document id.
            issuer: the issuing CA (certificate and signing key).
            responder_key: the configured responder public key; a stored
                certificate for another key is replaced at once.
            lifetime: validity of each certificate; renewed at half of it.
            mirror: a bucket to copy the current document to, for responders
                without store access.
        """
        self._documents = documents
        self._clock = clock
        self._authority_id = authority_id
        self._issuer = issuer
        self._key = responder_key
        self._key_id = key_id(responder_key)
        self._lifetime = lifetime
        self._mirror = mirror

    def renewal_reason(self, cert: x509.Certificate | None, now: dt.datetime) -> str | None:
        """Why `cert` must be replaced at `now`, or None if it is still good."""
        if cert is None:
            return "missing"
        if key_id(cert.public_key()) != self._key_id:  # type: ignore[arg-type]
            return "key changed"
        if not is_delegated_responder(cert, self._issuer.certificate):
            return "not from this CA"
        if cert.not_valid_after_utc - now < self._lifetime / 2:
            return "half-life"
        return None

    def ensure(self) -> Rotation:
        """Renew the stored certificate if needed, mirror it; return the one now current.

        Raises:
            BackendError: the store or the bucket failed.
        """
        rotation = self._rotate()
        if self._mirror is not None:
            self._copy_to(self._mirror, rotation.certificate)
        return rotation

    def _copy_to(self, blobs: BlobStore, cert: x509.Certificate) -> None:
        name = blob_name(self._authority_id)
        existing = blobs.read(name)
        if existing is not None:
            try:
                if json.loads(existing.data).get("serial") == str(cert.serial_number):
                    return
            except (ValueError, AttributeError):
                pass  # damaged copy: overwrite it
        try:
            blobs.write(
                name,
                json.dumps(_document(cert), sort_keys=True).encode(),
                content_type="application/json",
                if_generation_match=existing.generation if existing is not None else 0,
                cache_control="no-cache",
            )
        except PreconditionFailed:
            _log.info("another publisher updated %s first", name)  # it copied the store's winner too

    def _rotate(self) -> Rotation:
        now = self._clock.now()
        found = load_responder_certificate(self._documents, self._authority_id)
        current, version = found if found is not None else (None, 0)
        reason = self.renewal_reason(current, now)
        if reason is None:
            assert current is not None
            return Rotation(current, False, "current")
        fresh = issue_responder_certificate(self._issuer, public_key=self._key, now=now, lifetime=self._lifetime)
        data = _document(fresh)
        if found is None:
            won = self._documents.create_document(COLLECTION, self._authority_id, data)
        else:
            won = self._documents.update_document(COLLECTION, self._authority_id, data, expected_version=version)
        if won:
            return Rotation(fresh, True, reason)
        # Another publisher stored one first: adopt theirs (ours is never published).
        again = load_responder_certificate(self._documents, self._authority_id)
        if again is None or again[0] is None:
            raise BackendError("the OCSP responder certificate changed while it was being renewed", transient=True)
        return Rotation(again[0], False, reason)


class DelegatedResponder:
    """A responder's cached view of its delegated certificate (no CA key needed).

    `current(covering)` returns the certificate if it is a delegated
    certificate from the CA for this responder's key, is valid now and stays
    valid until `covering` (the nextUpdate of the response about to be
    signed); else None and the caller falls back (CA key or tryLater).
    """

    def __init__(
        self,
        *,
        documents: DocumentReader,
        clock: Clock,
        authority_id: str,
        ca_certificate: x509.Certificate,
        responder_key: PublicKey,
        recheck: dt.timedelta = dt.timedelta(minutes=5),
        retry: dt.timedelta = dt.timedelta(seconds=30),
    ) -> None:
        """Wire the cache.

        Args:
            documents: the store the rotator writes to, or `BlobDocuments`
                over its bucket copy.
            clock: the time source.
            authority_id: the document id.
            ca_certificate: the issuing CA the certificate must come from.
            responder_key: the public half of the key this responder signs with.
            recheck: re-read interval while the certificate is in the first
                three quarters of its life.
            retry: re-read interval when there is none, it does not cover a
                response, or it is in its last quarter (a renewal is due).
        """
        self._documents = documents
        self._clock = clock
        self._authority_id = authority_id
        self._ca = ca_certificate
        self._key_id = key_id(responder_key)
        self._recheck = recheck
        self._retry = retry
        self._cert: x509.Certificate | None = None
        self._version = -1
        self._checked: dt.datetime | None = None
        self._lock = threading.Lock()

    def _usable(self, cert: x509.Certificate | None, now: dt.datetime, covering: dt.datetime) -> bool:
        return cert is not None and cert.not_valid_before_utc <= now and cert.not_valid_after_utc >= covering

    def _due(self, now: dt.datetime, covering: dt.datetime) -> bool:
        if self._checked is None:
            return True
        cert = self._cert
        if not self._usable(cert, now, covering):
            return now - self._checked >= self._retry
        assert cert is not None
        quarter = (cert.not_valid_after_utc - cert.not_valid_before_utc) / 4
        wait = self._retry if cert.not_valid_after_utc - now < quarter else self._recheck
        return now - self._checked >= wait

    def _reload(self, now: dt.datetime) -> None:
        try:
            found = self._documents.get_document(COLLECTION, self._authority_id)
        except BackendError:
            self._checked = now  # keep serving what we have; retry later
            return
        self._checked = now
        if found is None:
            return
        data, version = found
        if version == self._version:
            return
        cert = _parse(data)
        if (
            cert is not None
            and key_id(cert.public_key()) == self._key_id  # type: ignore[arg-type]
            and is_delegated_responder(cert, self._ca)
        ):
            self._cert, self._version = cert, version
        # else: keep the last good certificate (a key change is being rolled out, or damage)

    def current(self, covering: dt.datetime) -> x509.Certificate | None:
        """The certificate to sign a response valid until `covering` with, or None."""
        now = self._clock.now()
        if self._due(now, covering):
            with self._lock:
                if self._due(now, covering):
                    self._reload(now)
        cert = self._cert
        return cert if self._usable(cert, now, covering) else None
