"""step-ca's webhook request body (`webhook.RequestBody`, reference section 5), built from Cirrus's objects.

Exactly one of `x509CertificateRequest` (ENRICHING, before templating), `x509Certificate`
(AUTHORIZING, the certificate about to be signed), `sshCertificateRequest` or `sshCertificate`;
plus `timestamp`, `provisionerName` and, for X5C, `x5cCertificate` and `authorizationPrincipal`.
Byte fields are standard base64 as Go's encoding/json writes `[]byte`; times are RFC 3339.
The one-time token is deliberately not sent (step-ca does not either: a hook could replay it).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from shared.templates.gojson import to_json
from shared.x509.templated import go_certificate_request

if TYPE_CHECKING:  # the X.509 path does not import the SSH modules
    from shared.ssh.certificate import SSHCertificate


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: the provisioner's name and, for X5C, the certificate that authorized the request."""

    provisioner_name: str
    authorization_crt: x509.Certificate | None = None
    authorization_principal: str = ""


def go_time(when: dt.datetime) -> str:
    """A time as Go's time.Time marshals to JSON (RFC 3339, fraction without trailing zeros)."""
    when = when.astimezone(dt.UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond:06d}".rstrip("0")
    return text + "Z"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def key_algorithm(key: Any) -> str:
    """Go's x509.PublicKeyAlgorithm name."""
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    return "Unknown"


def _pkix(key: Any) -> str:
    return _b64(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def _base(caller: Caller, now: dt.datetime) -> dict[str, Any]:
    body: dict[str, Any] = {"timestamp": go_time(now)}
    if caller.provisioner_name:
        body["provisionerName"] = caller.provisioner_name
    leaf = caller.authorization_crt
    if leaf is not None:
        body["x5cCertificate"] = {
            "raw": _b64(leaf.public_bytes(serialization.Encoding.DER)),
            "publicKey": _pkix(leaf.public_key()),
            "publicKeyAlgorithm": key_algorithm(leaf.public_key()),
            "notBefore": go_time(leaf.not_valid_before_utc),
            "notAfter": go_time(leaf.not_valid_after_utc),
        }
    if caller.authorization_principal:
        body["authorizationPrincipal"] = caller.authorization_principal
    return body


def x509_request_body(caller: Caller, csr: x509.CertificateSigningRequest | None, public_key: Any,
                      now: dt.datetime) -> dict[str, Any]:
    """ENRICHING, X.509: the request as `x509CertificateRequest` (x509util form + key + raw DER)."""
    body = _base(caller, now)
    request: dict[str, Any] = json.loads(
        to_json(go_certificate_request(csr, rsa_key=isinstance(public_key, rsa.RSAPublicKey)), escape_html=False))
    request["publicKey"] = _pkix(public_key)
    request["publicKeyAlgorithm"] = key_algorithm(public_key)
    request["raw"] = _b64(csr.public_bytes(serialization.Encoding.DER)) if csr is not None else None
    body["x509CertificateRequest"] = request
    return body


def x509_certificate_body(caller: Caller, certificate: Mapping[str, Any], public_key: Any,
                          not_before: dt.datetime, not_after: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    """AUTHORIZING, X.509: the certificate about to be signed as `x509Certificate`.

    `certificate` is the x509util.Certificate JSON the template rendered (or the default
    profile's equivalent); the key and validity are the ones that will be signed.
    """
    body = _base(caller, now)
    cert = dict(certificate)
    cert.update({
        "publicKey": _pkix(public_key), "publicKeyAlgorithm": key_algorithm(public_key),
        "notBefore": go_time(not_before), "notAfter": go_time(not_after), "raw": None,
    })
    body["x509Certificate"] = cert
    return body


def encode_body(body: Mapping[str, Any]) -> bytes:
    """The request body's bytes (compact JSON; the signature covers exactly these bytes)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def ssh_request_body(caller: Caller, key_blob: bytes, cert_type: str, key_id: str, principals: Sequence[str],
                     now: dt.datetime) -> dict[str, Any]:
    """ENRICHING, SSH: `sshCertificateRequest` (`publicKey` is the key's wire blob)."""
    body = _base(caller, now)
    body["sshCertificateRequest"] = {"publicKey": _b64(key_blob), "type": cert_type, "keyID": key_id,
                                     "principals": list(principals)}
    return body


def ssh_certificate_body(caller: Caller, cert: SSHCertificate, now: dt.datetime) -> dict[str, Any]:
    """AUTHORIZING, SSH: `sshCertificate` (sshutil.Certificate + key, signing key, validity in unix seconds)."""
    body = _base(caller, now)
    body["sshCertificate"] = {
        "nonce": _b64(cert.nonce) if cert.nonce else None,
        "serial": cert.serial, "type": cert.type_name, "keyId": cert.key_id, "principals": list(cert.principals),
        "criticalOptions": dict(cert.critical_options) or None, "extensions": dict(cert.extensions) or None,
        "reserved": None,
        "publicKey": _b64(cert.key.blob), "signatureKey": _b64(cert.signature_key),
        "validBefore": cert.valid_before, "validAfter": cert.valid_after,
    }
    return body
