"""`cirrus ocsp check CERT`: ask the OCSP responder about a certificate, as a relying party would.

It builds the request with `cryptography`, POSTs it (to `--url`, else the CA's
`https://<address>/ocsp`, trusting only `DIR/certs/root_ca.crt`), and believes
the answer only after checking it: the response must be signed by the issuer,
or by a delegated responder certificate carried in the response that the
issuer signed directly and that has the OCSPSigning EKU (RFC 6960 s.4.2.2.2);
it must be about the certificate asked for, echo the nonce if it echoes one,
and be current. Exit status: 0 good, 1 revoked, 2 unknown, 3 no trustworthy
answer (network, error status, bad signature), so scripts can branch on it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import secrets
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from shared.cli.ca_client import url_for_address

GOOD, REVOKED, UNKNOWN, FAILED = 0, 1, 2, 3
_SKEW = dt.timedelta(minutes=5)
_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}


class CheckError(Exception):
    """No trustworthy answer; the message is for the person running the command."""


def register(sub: Any) -> None:
    """Add `cirrus ocsp`."""
    p = sub.add_parser("ocsp", help="query the OCSP responder")
    osub = p.add_subparsers(dest="ocsp_command", metavar="ACTION")
    check = osub.add_parser("check", help="ask for a certificate's status and verify the signed answer")
    check.add_argument("cert", type=Path, help="certificate, PEM or DER (a chain's 2nd entry is the issuer)")
    check.add_argument("--issuer", type=Path, default=None, help="issuer certificate (default: from CERT, else DIR)")
    check.add_argument("--url", default=None, help="responder URL (default: https://<CA address>/ocsp)")
    check.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    check.add_argument("--hash", choices=sorted(_HASHES), default="sha1", help="CertID hash (default sha1)")
    check.add_argument("--no-nonce", action="store_true", help="send no nonce (lets the answer be pre-signed)")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    check.set_defaults(func=cmd_check)


def _load_certs(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise CheckError(f"{path} holds no certificate") from exc


def _ca_url(directory: Path) -> str:
    try:
        cfg = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckError(f"cannot read {directory / 'config.json'}") from exc
    return url_for_address(str(cfg.get("address", "127.0.0.1:9443"))) + "/ocsp"


def _post(url: str, body: bytes, root: Path) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise CheckError("the responder URL must be http(s)")
    try:
        ctx = ssl.create_default_context(cafile=str(root)) if url.startswith("https://") else None
    except OSError as exc:  # missing or unreadable root (ssl.SSLError is an OSError)
        raise CheckError(f"cannot use {root} as the root to trust: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        req = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, data=body, method="POST", headers={"Content-Type": "application/ocsp-request"}
        )
    except ValueError as exc:
        raise CheckError(f"invalid responder URL {url!r}") from exc
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:  # noqa: S310
            return bytes(resp.read(1 << 20))
    except urllib.error.HTTPError as exc:
        raise CheckError(f"responder answered HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        raise CheckError(f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from exc


def _verify_signature(key: Any, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None) -> None:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            raise CheckError("unsupported responder key or signature algorithm")
    except InvalidSignature as exc:
        raise CheckError("the response signature does not verify") from exc


def _signer(response: ocsp.OCSPResponse, issuer: x509.Certificate, now: dt.datetime) -> x509.Certificate:
    """The certificate whose key must have signed: the issuer, or a delegate it authorised."""

    def named(cert: x509.Certificate) -> bool:
        if response.responder_key_hash is not None:
            key_hash = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest  # SHA-1 of the key bits
            return bool(response.responder_key_hash == key_hash)
        return bool(response.responder_name == cert.subject)

    if named(issuer):
        return issuer
    for cert in response.certificates:
        if not named(cert):
            continue
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise CheckError("the delegated responder certificate is not signed by the issuer") from exc
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = None
        if eku is None or ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise CheckError("the delegated responder certificate lacks the OCSPSigning EKU")
        if not cert.not_valid_before_utc - _SKEW <= now <= cert.not_valid_after_utc + _SKEW:
            raise CheckError("the delegated responder certificate is not valid now")
        return cert
    raise CheckError("the response is signed by neither the issuer nor a responder it delegated to")


def check(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    *,
    url: str,
    root: Path,
    algorithm: hashes.HashAlgorithm,
    nonce: bool = True,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Ask `url` about `cert` and return the verified status.

    Raises:
        CheckError: no answer that can be trusted.
    """
    now = now or dt.datetime.now(dt.UTC)
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm)
    sent_nonce = secrets.token_bytes(16) if nonce else None
    if sent_nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(sent_nonce), critical=False)
    body = builder.build().public_bytes(serialization.Encoding.DER)
    try:
        response = ocsp.load_der_ocsp_response(_post(url, body, root))
    except ValueError as exc:
        raise CheckError("the responder's answer is not an OCSP response") from exc
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise CheckError(f"the responder answered {response.response_status.name}")
    signer = _signer(response, issuer, now)
    _verify_signature(
        signer.public_key(), response.signature, response.tbs_response_bytes, response.signature_hash_algorithm
    )
    single = next(iter(response.responses), None)
    if single is None or len(list(response.responses)) != 1:
        raise CheckError("the response does not carry exactly one status")
    expected = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, single.hash_algorithm).build()
    if (single.serial_number, single.issuer_name_hash, single.issuer_key_hash) != (
        cert.serial_number,
        expected.issuer_name_hash,
        expected.issuer_key_hash,
    ):
        raise CheckError("the response is about another certificate")
    try:
        echoed: bytes | None = response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        echoed = None
    if echoed is not None and echoed != sent_nonce:
        raise CheckError("the response echoes a different nonce (replayed?)")
    if single.this_update_utc > now + _SKEW:
        raise CheckError("the response's thisUpdate is in the future")
    if single.next_update_utc is not None and single.next_update_utc < now - _SKEW:
        raise CheckError("the response is stale (nextUpdate has passed)")
    status = single.certificate_status
    result: dict[str, Any] = {
        "serial": str(cert.serial_number),
        "status": status.name.lower(),
        "thisUpdate": single.this_update_utc.isoformat(),
        "nextUpdate": single.next_update_utc.isoformat() if single.next_update_utc else None,
        "responder": "issuer" if signer is issuer else signer.subject.rfc4514_string(),
        "nonce": echoed is not None,
    }
    if status == ocsp.OCSPCertStatus.REVOKED:
        assert single.revocation_time_utc is not None
        result["revokedAt"] = single.revocation_time_utc.isoformat()
        result["reason"] = single.revocation_reason.value if single.revocation_reason else "unspecified"
    return result


def cmd_check(args: argparse.Namespace) -> int:
    """CLI entry for `cirrus ocsp check`."""
    try:
        certs = _load_certs(args.cert)
        if args.issuer is not None:
            issuer = _load_certs(args.issuer)[0]
        elif len(certs) > 1:
            issuer = certs[1]
        else:
            issuer = _load_certs(args.dir / "certs" / "intermediate_ca.crt")[0]
        result = check(
            certs[0],
            issuer,
            url=args.url or _ca_url(args.dir),
            root=args.dir / "certs" / "root_ca.crt",
            algorithm=_HASHES[args.hash](),
            nonce=not args.no_nonce,
        )
    except CheckError as exc:
        print(f"cirrus ocsp check: {exc}", file=sys.stderr)
        return FAILED
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["status"] == "revoked":
        print(f"{result['serial']}: revoked at {result['revokedAt']} ({result['reason']})")
    else:
        print(f"{result['serial']}: {result['status']}")
    return {"good": GOOD, "revoked": REVOKED}.get(result["status"], UNKNOWN)
