"""The TLS client certificate the authority presents to webhook servers that ask for one.

What step-ca does (`ca/ca.go`, `getTLSConfig`; `authority/tls.go`, `GetTLSCertificate`): its
webhook transport's TLS config carries `GetClientCertificate` from the renewer of its own HTTPS
certificate, so a webhook server that requests a client certificate is shown the CA's server
certificate: a fresh P-256 key made in memory, subject `commonName` and SANs `dnsNames` from
`ca.json`, 24 hours (backdated a minute), signed by the intermediate (by the upstream CA for a
registration authority), sent with its intermediates, renewed in memory when two thirds of its life
have passed, never stored in the database. A hook with `disableTLSClientAuth: true` gets a
transport without it (`authority/provisioner/webhook.go`).

Cirrus does the same with a certificate of its own per instance: a Cloud Function has no HTTPS
server certificate to reuse (the front end terminates TLS) and the `cirrus up` workers' one lives
in their server context. So `ClientIdentity` makes, on the first call to a hook that wants one:

- a fresh P-256 key, in process memory only: never in a store record, an event, a log line or a
  file on disk (it reaches OpenSSL through an anonymous in-memory file, `load_into`);
- a certificate for it issued by the authority: by the issuing intermediate through the
  authority's signer (KMS, HSM or software key; `signed_by`), or by the upstream CA for a
  registration authority (`shared.ra.wiring`). Its subject and SANs are the configured
  `commonName` and `dnsNames`, as step-ca's; its only extended key usage is clientAuth (step-ca
  reuses a server certificate; this one serves nothing, so it may authenticate nothing else);
- validity 24 hours backdated a minute; renewed (new key, new certificate, new TLS context) on the
  first call after two thirds of its life, as step-ca's renewer does. If renewing fails, the
  current certificate is used while it is valid and renewal is tried again a minute later.

The certificate is not recorded (step-ca's is not either): it is not the issuance of a
provisioner, it lives a day and, its key never leaving the process, needs no revocation. Its
serial and validity are logged when it is made, so an operator can tie a webhook server's log to
an instance. Building a certificate costs one signature (one KMS call) per instance per 16 hours,
and only for an instance that calls an https hook asking for a client certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.clock import Clock
from shared.errors import Unavailable

if TYPE_CHECKING:
    import ssl

    from shared.x509.profile import Issuer

log = logging.getLogger("cirrus.webhooks")

LIFETIME = dt.timedelta(hours=24)
BACKDATE = dt.timedelta(minutes=1)
#: After a failed renewal, the current certificate is used (while valid) this long before trying again.
RETRY_AFTER = dt.timedelta(minutes=1)

#: Makes a certificate for a fresh key: (leaf, intermediates to send with it).
Issue = Callable[[ec.EllipticCurvePrivateKey], tuple[x509.Certificate, Sequence[x509.Certificate]]]


class ClientIdentity:
    """The authority's webhook client certificate of this instance, made and renewed on demand."""

    def __init__(self, *, issue: Issue, clock: Clock) -> None:
        self._issue = issue
        self._clock = clock
        self._lock = threading.Lock()
        self._context: ssl.SSLContext | None = None
        self._expires = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._renew_at = self._expires

    def context(self, fresh: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
        """A client TLS context presenting the current certificate (`fresh()` makes one without it).

        Raises:
            Unavailable: there is no valid certificate and none could be made (503).
        """
        now = self._clock.now()
        current = self._context
        if current is not None and now < self._renew_at:
            return current
        with self._lock:  # one instance renews at a time; callers meanwhile wait (it takes one signature)
            if self._context is not None and now < self._renew_at:
                return self._context
            try:
                key = ec.generate_private_key(ec.SECP256R1())
                leaf, chain = self._issue(key)
                context = fresh()
                load_into(context, key, [leaf, *chain])
            except Exception as exc:  # a signer or upstream failure of any kind
                if self._context is not None and now < self._expires:
                    log.warning("webhook client certificate renewal failed; the current one is kept",
                                extra={"error": type(exc).__name__})  # fmt: skip
                    self._renew_at = min(now + RETRY_AFTER, self._expires)  # never past its end
                    return self._context
                log.warning("webhook client certificate could not be made", extra={"error": type(exc).__name__})
                raise Unavailable("no client certificate for webhooks; retry later") from None
            start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
            self._context, self._expires = context, end
            self._renew_at = start + (end - start) * 2 / 3
            log.info("webhook client certificate made", extra={
                "serial": format(leaf.serial_number, "x"), "not_after": end.isoformat()})  # fmt: skip
            return context


def signed_by(current: Callable[[], tuple[Issuer, Sequence[x509.Certificate]]], *, common_name: str,
              names: Sequence[str], clock: Clock) -> Issue:  # fmt: skip
    """Certificates signed by the issuing intermediate `current()` returns: (issuer, its chain).

    `current` is asked at each issuance, so a renewal after an intermediate rotation is signed by
    the generation issuing then; it raises (e.g. `Unavailable`) when that intermediate must not sign.
    """

    def issue(key: ec.EllipticCurvePrivateKey) -> tuple[x509.Certificate, Sequence[x509.Certificate]]:
        from shared.x509.profile import sign_certificate
        from shared.x509.serials import random_serial

        issuer, chain = current()
        now = clock.now()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
        cert = sign_certificate(issuer, subject=subject, public_key=key.public_key(), serial=random_serial(),
                                not_before=now - BACKDATE, not_after=now + LIFETIME,
                                extensions=client_extensions(names, critical_san=not common_name))  # fmt: skip
        return cert, list(chain)

    return issue


def issuing_identity(
    issuer: Issuer,
    chain: Sequence[x509.Certificate],
    *,
    common_name: str,
    names: Sequence[str],
    clock: Clock,
    revoked: Callable[[x509.Certificate], bool] | None = None,
) -> ClientIdentity:
    """The identity of one issuing authority (`issuer`, its `chain`), refusing while `revoked(chain[0])`
    (a root's ARL lists the intermediate: it must not sign, as `shared.authority` refuses too)."""
    current = unless_revoked(lambda: (issuer, chain), revoked)
    return ClientIdentity(issue=signed_by(current, common_name=common_name, names=names, clock=clock), clock=clock)


def unless_revoked(
    current: Callable[[], tuple[Issuer, Sequence[x509.Certificate]]],
    revoked: Callable[[x509.Certificate], bool] | None,
) -> Callable[[], tuple[Issuer, Sequence[x509.Certificate]]]:
    """`current`, refusing (503) while `revoked` lists the intermediate it returns: it must not sign."""

    def checked() -> tuple[Issuer, Sequence[x509.Certificate]]:
        issuer, chain = current()
        if revoked is not None and chain and revoked(chain[0]):
            raise Unavailable("the issuing intermediate has been revoked")
        return issuer, chain

    return checked


def client_extensions(names: Sequence[str], *, critical_san: bool = False) -> list[x509.Extension[x509.ExtensionType]]:
    """digitalSignature, clientAuth only, and the names (`dnsNames`; IP literals as IP addresses)."""
    ku = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    exts: list[x509.Extension[x509.ExtensionType]] = [
        x509.Extension(ku.oid, True, ku), x509.Extension(eku.oid, False, eku)]
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            general.append(x509.DNSName(name))
    if general:
        san = x509.SubjectAlternativeName(general)
        exts.append(x509.Extension(san.oid, critical_san, san))
    return exts


def load_into(context: ssl.SSLContext, key: ec.EllipticCurvePrivateKey, chain: Sequence[x509.Certificate]) -> None:
    """Load `key` and `chain` (leaf first) into `context` without the key touching a disk.

    `ssl` reads a certificate and key only from a path. On Linux the PEM goes into an anonymous
    memory file (`memfd_create`) that OpenSSL opens through /proc and that disappears when closed;
    elsewhere into a 0600 temporary file removed at once.
    """
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd("cirrus-webhook-client", os.MFD_CLOEXEC)
        try:
            _write_all(fd, pem)
            context.load_cert_chain(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        return
    fd, path = tempfile.mkstemp(prefix="cirrus-webhook-client-", suffix=".pem")
    try:
        _write_all(fd, pem)
        context.load_cert_chain(path)
    finally:
        os.close(fd)
        os.unlink(path)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
