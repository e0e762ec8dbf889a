"""Shared test helpers: authorities made by `cirrus init`, tokens as the step CLI mints them, pkilint."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

AUDIENCE_HOST = "127.0.0.1:9443"


def provisioner_jwk(authority_dir: Path) -> dict[str, Any]:
    return json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())


def mint_token(
    authority_dir: Path,
    claims: dict[str, Any],
    *,
    headers: dict[str, Any] | None = None,
    key: Any = None,
    algorithm: str = "ES256",
) -> str:
    jwk = provisioner_jwk(authority_dir)
    signing_key = key if key is not None else jwt.PyJWK(jwk).key
    hdr = {"kid": jwk["kid"], "typ": "JWT"}
    hdr.update(headers or {})
    return jwt.encode(claims, signing_key, algorithm=algorithm, headers=hdr)


def sign_claims(
    subject: str, sans: list[str] | None, *, op: str = "sign", now: int | None = None, **extra: Any
) -> dict[str, Any]:
    t = int(time.time()) if now is None else now
    claims: dict[str, Any] = {
        "iss": "admin",
        "sub": subject,
        "aud": f"https://{AUDIENCE_HOST}/1.0/{op}",
        "nbf": t,
        "iat": t,
        "exp": t + 300,
        "jti": secrets.token_hex(32),
    }
    if sans is not None:
        claims["sans"] = sans
    claims.update(extra)
    return claims


def mint_sign_token(authority_dir: Path, subject: str, sans: list[str] | None = None, **extra: Any) -> str:
    return mint_token(authority_dir, sign_claims(subject, sans, **extra))


def make_csr(common_name: str | None, sans: list[str] | None = None, key: Any = None) -> tuple[str, Any]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    b = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
    algo = None if key.__class__.__name__.startswith("_Ed25519") or "Ed25519" in type(key).__name__ else hashes.SHA256()
    csr = b.sign(key, algo)
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key


_PKILINT: dict[str, Any] = {}


def pkilint_errors(cert_der: bytes) -> list[str]:
    """Findings of severity ERROR or worse from pkilint's RFC 5280 certificate lints."""
    from pkilint import loader, report
    from pkilint.pkix import certificate, extension, name
    from pkilint.validation import ValidationFindingSeverity

    validator = _PKILINT.get("cert")
    if validator is None:
        validator = certificate.create_pkix_certificate_validator_container(
            certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
            [
                certificate.create_issuer_validator_container([]),
                certificate.create_validity_validator_container(),
                certificate.create_subject_validator_container([]),
                certificate.create_extensions_validator_container([]),
                certificate.create_spki_validator_container([]),
            ],
        )
        _PKILINT["cert"] = validator
    doc = loader.RFC5280CertificateDocumentLoader().load_der_document(cert_der, "cert")
    results = validator.validate(doc.root)
    out: list[str] = []
    for result in results:
        for finding in result.finding_descriptions:
            if finding.finding.severity in (ValidationFindingSeverity.FATAL, ValidationFindingSeverity.ERROR):
                out.append(f"{result.node.path}: {finding.finding.code}")
    del report
    return out


def pkilint_cli_errors(cmd: list[str], path: Path) -> list[dict[str, object]]:
    """Findings of severity ERROR or worse from one of pkilint's command-line linters on a file.

    `cmd` is the linter and its arguments before the common ones, e.g.
    `["lint_crl", "lint", "-t", "CRL", "-p", "BR"]` or `["lint_ocsp_response", "lint"]`.
    """
    exe = shutil.which(cmd[0])
    assert exe, f"{cmd[0]} missing: pip install pkilint"
    res = subprocess.run(
        [exe, *cmd[1:], "-s", "ERROR", "-f", "JSON", str(path)], capture_output=True, text=True, check=False, timeout=60
    )
    assert res.stdout.strip(), res.stderr
    found: list[dict[str, object]] = []

    def walk(doc: object) -> None:
        if isinstance(doc, dict):
            if "severity" in doc:
                found.append(doc)
            for v in doc.values():
                walk(v)
        elif isinstance(doc, list):
            for v in doc:
                walk(v)

    walk(json.loads(res.stdout))
    return found
