"""A stateless OCSP responder fed by the published CRLs (standards.md 3.3, 3.4).

Status comes from two sources only: the CRLs the validation authority
published to the blob store (revoked, with time and reason), and an
`IssuedSerials` reader that says whether a serial was issued by the CA (in
deployments `shared.validation.serial_index.PublishedSerials`, the index the
VA publishes next to the CRLs, so the store is never read here). A
serial that is not revoked is `good` only if it was issued; otherwise the
answer is `unknown` (OCSP-07: never `good` for an unassigned serial; we chose
`unknown` over RFC 6960 s.2.2 extended-revoked because it tells the relying
party the truth, "this responder has no such certificate", and needs no
extended-revoke extension).

Times come from the CRL: thisUpdate/nextUpdate of a response are those of the
CRL it was answered from, because that is when the status was last known
correct. When the CRL is past its nextUpdate (the publisher stalled) the
responder answers `tryLater` instead of serving a stale answer.

Pre-signed responses: with `presign=True` a signed response is reused for the
same (issuer, CertID hash algorithm, serial, CRL generation) until half of
its remaining validity at signing time has passed, so a busy responder signs
once per serial per period (RFC 5019 s.2.1.3 allows pre-produced responses).
Requests carrying a nonce are always signed fresh so the nonce can be echoed.
`unknown` answers are never cached, so a new issuance becomes authoritative on
the next request (OCSP-08).
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from shared.clock import Clock
from shared.errors import BackendError
from shared.keys.adapter import as_private_key, signature_hash
from shared.keys.base import Signer
from shared.validation import der
from shared.validation.crl import subject_der
from shared.validation.partition import crl_url, shard_for_serial
from shared.validation.published import PublishedCRLs

MAX_REQUEST_BYTES = 4096  # a single-CertID request is about 100 octets
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class ResponderCertificates(Protocol):
    """The current delegated responder certificate (`responder_cert.DelegatedResponder` fits)."""

    def current(self, covering: dt.datetime) -> x509.Certificate | None:
        """A certificate for the responder key valid now and until `covering`, or None."""
        ...


class IssuedSerials(Protocol):
    """Whether a serial was issued (`serial_index.PublishedSerials`, or `StoreSerials` in tests)."""

    def is_issued(self, authority_id: str, serial: int) -> bool:
        """True if the authority issued an X.509 certificate with this serial.

        Raises `BackendError` when it cannot tell (the responder answers tryLater).
        """
        ...


@dataclass(frozen=True, slots=True)
class OCSPAuthority:
    """One issuing CA the responder answers for.

    `responder_signer` with `responder_certificate` (fixed) or
    `responder_certificates` (rotated, read from the store) names a delegated
    OCSP signer (issued directly by the CA with EKU OCSPSigning and
    ocsp-nocheck, OCSP-05). When no rotated certificate covers a response the
    CA key (`signer`) signs if this instance has it, else the answer is
    `tryLater`; without any delegation the CA key signs.

    `ca_key_fallback`, with rotated delegated certificates, gives that CA key
    (or None) when an answer first needs it, instead of `signer`: a responder
    whose delegated certificate covers its answers never opens the CA key (the
    deployed `ocsp` function holds no role on it, so opening it costs a cold
    start a key-manager client and a refused request for nothing).
    """

    authority_id: str
    certificate: x509.Certificate
    signer: Signer | None
    shards: int = 0
    responder_certificate: x509.Certificate | None = None
    responder_signer: Signer | None = None
    responder_certificates: ResponderCertificates | None = None
    ca_key_fallback: Callable[[], Signer | None] | None = None


@dataclass(frozen=True, slots=True)
class _Identity:
    """Who signs: the responderID certificate, the key, and the certs to include."""

    certificate: x509.Certificate
    key: object
    hash: hashes.HashAlgorithm | None
    extra_certs: list[x509.Certificate]


@dataclass(frozen=True, slots=True)
class OCSPAnswer:
    """A DER OCSPResponse and what HTTP caching needs to know about it."""

    der: bytes
    status: str  # good / revoked / unknown / or the error status name
    this_update: dt.datetime | None = None
    next_update: dt.datetime | None = None
    cacheable: bool = False


def _error(status: ocsp.OCSPResponseStatus) -> OCSPAnswer:
    der_bytes = ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)
    return OCSPAnswer(der_bytes, status.name.lower())


MALFORMED = _error(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
UNAUTHORIZED = _error(ocsp.OCSPResponseStatus.UNAUTHORIZED)
TRY_LATER = _error(ocsp.OCSPResponseStatus.TRY_LATER)
INTERNAL_ERROR = _error(ocsp.OCSPResponseStatus.INTERNAL_ERROR)


def _public_key_bits(certificate: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING contents, which the CertID key hash covers."""
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    start, end = der.expect(spki, 0, der.SEQUENCE)
    _, _, pos = der.read_tlv(spki, start, end)
    bits_start, bits_end = der.expect(spki, pos, der.BIT_STRING, end)
    return spki[bits_start + 1 : bits_end]


class _Issuer:
    """Per-authority constants: CertID hashes per algorithm and the signing identity."""

    def __init__(self, authority: OCSPAuthority, base_url: str | None) -> None:
        self.authority = authority
        self.base_url = base_url
        name = subject_der(authority.certificate)
        key = _public_key_bits(authority.certificate)
        self.ids = {alg: (hashlib.new(alg, name).digest(), hashlib.new(alg, key).digest()) for alg in _HASHES}
        delegated = authority.responder_certificate is not None or authority.responder_certificates is not None
        if delegated and authority.responder_signer is None:
            raise ValueError("a delegated responder certificate needs its signer")
        self.fixed: _Identity | None = None  # CA key, or a fixed delegated certificate
        if authority.responder_certificate is not None:
            self.fixed = self._identity(authority.responder_certificate, authority.responder_signer, delegated=True)
        elif authority.signer is not None:
            self.fixed = self._identity(authority.certificate, authority.signer, delegated=False)
        elif authority.responder_certificates is None:
            raise ValueError("an OCSP authority needs a CA signer or a delegated responder")
        if authority.ca_key_fallback is not None and (authority.signer is not None or not delegated):
            raise ValueError("a CA key opened on first use is a delegated responder's fallback, not its signer")
        self._rotated: _Identity | None = None
        self._fallback = authority.ca_key_fallback  # opened by the first answer no delegated certificate covers
        self._fallback_lock = threading.Lock()

    @staticmethod
    def _identity(cert: x509.Certificate, signer: Signer | None, *, delegated: bool) -> _Identity:
        assert signer is not None
        if signer.public_key() != cert.public_key():
            raise ValueError("the OCSP signer's key is not its certificate's key")
        return _Identity(cert, as_private_key(signer), signature_hash(signer.public_key()), [cert] if delegated else [])

    def identity(self, covering: dt.datetime) -> _Identity | None:
        """The rotated delegated certificate if one covers `covering`, else the fixed identity."""
        source = self.authority.responder_certificates
        if source is not None:
            cert = source.current(covering)
            if cert is not None:
                rotated = self._rotated
                if rotated is None or rotated.certificate != cert:
                    rotated = self._rotated = self._identity(cert, self.authority.responder_signer, delegated=True)
                return rotated
        if self._fallback is not None:
            self._open_fallback()
        return self.fixed

    def _open_fallback(self) -> None:
        """The CA key behind a delegated responder, opened once (None stays None: `tryLater`)."""
        with self._fallback_lock:
            if self._fallback is None:
                return
            signer = self._fallback()
            if signer is not None:
                self.fixed = self._identity(self.authority.certificate, signer, delegated=False)
            self._fallback = None

    def distribution_point(self, shard: int | None) -> str | None:
        if shard is None or self.base_url is None:
            return None
        return crl_url(self.base_url, self.authority.authority_id, shard)


class OCSPResponder:
    """Answers DER OCSP requests; no state beyond caches."""

    def __init__(
        self,
        *,
        authorities: Sequence[OCSPAuthority],
        crls: PublishedCRLs,
        issued: IssuedSerials,
        clock: Clock,
        crl_base_url: str | None = None,
        presign: bool = True,
        presign_capacity: int = 100_000,
    ) -> None:
        """Wire the responder.

        Args:
            authorities: the CAs answered for; any other issuer gets `unauthorized`.
            crls: the published-CRL cache (the only revocation source).
            issued: says whether a serial was issued, so unissued serials are `unknown`.
            clock: the time source for producedAt and cache expiry.
            crl_base_url: the CRL base URL; needed to check shard CRLs' IDP.
            presign: reuse signed responses (see module docstring).
            presign_capacity: most cached responses kept (oldest dropped first).
        """
        if any(a.shards > 0 for a in authorities) and crl_base_url is None:
            raise ValueError("partitioned CRLs need crl_base_url to check their distribution point")
        self._issuers = [_Issuer(a, crl_base_url) for a in authorities]
        self._crls = crls
        self._issued = issued
        self._clock = clock
        self._presign = presign
        self._capacity = presign_capacity
        self._cache: collections.OrderedDict[tuple[object, ...], tuple[OCSPAnswer, dt.datetime]]
        self._cache = collections.OrderedDict()
        self._cache_lock = threading.Lock()

    def respond(self, request_der: bytes) -> OCSPAnswer:
        """Return the OCSPResponse for a DER OCSPRequest; never raises for bad input."""
        if not request_der or len(request_der) > MAX_REQUEST_BYTES:
            return MALFORMED
        try:
            request = ocsp.load_der_ocsp_request(request_der)
            name_hash = request.issuer_name_hash
            key_hash = request.issuer_key_hash
            serial = request.serial_number
            algorithm = request.hash_algorithm
            nonce = self._nonce(request)
        except (ValueError, UnsupportedAlgorithm, NotImplementedError):
            # garbage, truncated, several CertIDs (RFC 5019 profile), or a
            # CertID hash algorithm we cannot compute
            return MALFORMED
        if algorithm.name not in _HASHES or serial <= 0:
            return MALFORMED
        issuer = next((i for i in self._issuers if i.ids[algorithm.name] == (name_hash, key_hash)), None)
        if issuer is None:
            return UNAUTHORIZED  # OCSP-02: not a CA this responder serves
        auth = issuer.authority
        shard = None if auth.shards == 0 else shard_for_serial(serial, auth.shards)
        crl = self._crls.get(
            auth.authority_id,
            shard,
            issuer=auth.certificate,
            distribution_point=issuer.distribution_point(shard),
        )
        if crl is None:
            return TRY_LATER  # no valid, current CRL: do not guess
        identity = issuer.identity(crl.next_update)
        if identity is None:
            return TRY_LATER  # no delegated certificate yet and no CA key here
        now = self._clock.now()
        key = (auth.authority_id, algorithm.name, serial, crl.generation, identity.certificate.serial_number)
        if self._presign and nonce is None:
            with self._cache_lock:
                hit = self._cache.get(key)
            if hit is not None and hit[1] > now:
                return hit[0]
        revoked = crl.lookup(serial)
        if revoked is not None:
            status, rev_time = ocsp.OCSPCertStatus.REVOKED, revoked.revoked_at
            reason = _reason_flag(revoked.reason)
        else:
            try:
                known = self._issued.is_issued(auth.authority_id, serial)
            except BackendError:
                return TRY_LATER
            status = ocsp.OCSPCertStatus.GOOD if known else ocsp.OCSPCertStatus.UNKNOWN
            rev_time, reason = None, None
        builder = (
            ocsp.OCSPResponseBuilder()
            .add_response_by_hash(
                issuer_name_hash=name_hash,
                issuer_key_hash=key_hash,
                serial_number=serial,
                algorithm=algorithm,
                cert_status=status,
                this_update=crl.this_update,
                next_update=crl.next_update,
                revocation_time=rev_time,
                revocation_reason=reason,
            )
            .responder_id(ocsp.OCSPResponderEncoding.HASH, identity.certificate)
        )
        if identity.extra_certs:
            builder = builder.certificates(identity.extra_certs)
        if nonce is not None:
            builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
        response = builder.sign(identity.key, identity.hash)  # type: ignore[arg-type]
        answer = OCSPAnswer(
            response.public_bytes(serialization.Encoding.DER),
            status.name.lower(),
            crl.this_update,
            crl.next_update,
            # `unknown` may turn `good` at the next index publication (OCSP-08): no HTTP caching
            cacheable=nonce is None and status != ocsp.OCSPCertStatus.UNKNOWN,
        )
        if self._presign and nonce is None and status != ocsp.OCSPCertStatus.UNKNOWN:
            reuse_until = now + (crl.next_update - now) / 2
            with self._cache_lock:
                self._cache[key] = (answer, reuse_until)
                while len(self._cache) > self._capacity:
                    self._cache.popitem(last=False)
        return answer

    @staticmethod
    def _nonce(request: ocsp.OCSPRequest) -> bytes | None:
        """The nonce to echo: 1-32 octets (RFC 8954), else none is echoed."""
        try:
            value = request.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        except x509.ExtensionNotFound:
            return None
        return value if 1 <= len(value) <= 32 else None


def _reason_flag(code: int | None) -> x509.ReasonFlags | None:
    """The CRL's reason as OCSP revocationReason; unspecified/absent stays absent."""
    if code is None or code == 0:
        return None
    try:
        return x509.ReasonFlags(_REASON_NAMES[code])
    except KeyError:
        return None


_REASON_NAMES = {
    1: "keyCompromise",
    2: "cACompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    6: "certificateHold",
    8: "removeFromCRL",
    9: "privilegeWithdrawn",
    10: "aACompromise",
}
