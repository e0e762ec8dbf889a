"""Client commands: `cirrus token`, `certificate`, `renew`, `revoke`, `health`.

They speak the same HTTP API as the step CLI (`shared.cli.ca_client`). Mistakes are
raised as `CLIError`s and printed by the CLI's one error boundary (`shared.cli.errors`);
every local file is checked before the CA is asked (`shared.cli.files`), so a refused
write never strands a certificate the CA has already issued. Serials are printed in
decimal everywhere, as step prints them; `revoke` takes decimal or 0x-prefixed hex.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from shared.cli import files
from shared.cli.ca_client import ClientError, ca_url, config, request, root_path, ssl_context, url_for_address

__all__ = ["ClientError", "mint_token", "register", "renew_bearer_token", "url_for_address"]


def register(sub: Any) -> None:
    """Add the client subcommands."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dir", type=Path, default=None, help="authority folder (for the CA URL, root and provisioner key)"
        )
        p.add_argument("--ca-url", default=None, help="CA URL, https://HOST[:PORT] (default: the address in DIR)")
        p.add_argument(
            "--root", type=Path, default=None, help="root certificate to trust (default DIR/certs/root_ca.crt)"
        )

    def provisioner(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--key", type=Path, default=None, help="provisioner private JWK (default DIR/secrets/provisioner.jwk)"
        )
        p.add_argument(
            "--provisioner", default=None, help="JWK provisioner name (default: the one in DIR whose key is --key)"
        )

    p = sub.add_parser("token", help="mint a one-time token with the provisioner key")
    p.add_argument("subject", help="the certificate's subject (a name), or a serial with --revoke")
    p.add_argument(
        "--san", action="append", default=None, help="a name for the certificate (repeatable; default SUBJECT)"
    )
    provisioner(p)
    p.add_argument("--revoke", action="store_true", help="mint a revoke token (subject = serial)")
    common(p)
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("certificate", help="generate a key and CSR, and get a certificate")
    p.add_argument("subject", help="the certificate's common name")
    p.add_argument("crt_file", type=Path, help="where to write the certificate chain (PEM)")
    p.add_argument("key_file", type=Path, help="where to write the new private key (PEM, mode 0600)")
    p.add_argument(
        "--san", action="append", default=None, help="DNS name, IP, email or URI (repeatable; default SUBJECT)"
    )
    p.add_argument("--token", default=None, help="use this token instead of minting one")
    provisioner(p)
    p.add_argument("--not-after", default=None, help="e.g. 1h or an RFC 3339 time")
    common(p)
    p.set_defaults(func=cmd_certificate)

    p = sub.add_parser("renew", help="renew a certificate (mTLS, or --bearer token)")
    p.add_argument("crt_file", type=Path, help="the certificate to renew (PEM)")
    p.add_argument("key_file", type=Path, help="its private key (PEM)")
    p.add_argument("--bearer", action="store_true", help="authenticate with an x5c Bearer token instead of mTLS")
    p.add_argument("--out", type=Path, default=None, help="write here (default: overwrite crt_file)")
    common(p)
    p.set_defaults(func=cmd_renew)

    p = sub.add_parser("revoke", help="revoke a certificate by serial (token) or with --cert/--cert-key (mTLS)")
    p.add_argument("serial", help="the serial number, decimal or 0x-prefixed hex")
    p.add_argument("--reason-code", type=int, default=0, help="RFC 5280 CRLReason code (default 0, unspecified)")
    p.add_argument("--reason", default="", help="a free-text reason kept with the revocation")
    p.add_argument("--cert", type=Path, default=None, help="the certificate itself, to revoke over mTLS")
    p.add_argument("--cert-key", type=Path, default=None, help="its private key (with --cert)")
    provisioner(p)
    common(p)
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("health", help="check the CA answers")
    common(p)
    p.set_defaults(func=cmd_health)


# ------------------------------------------------------------------ tokens
def _provisioner_key(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    key_path = args.key or (Path(args.dir) / "secrets" / "provisioner.jwk" if args.dir else None)
    if key_path is None:
        raise ClientError("give --key or --dir")
    try:
        jwk = json.loads(files.read(Path(key_path), "provisioner key"))
    except ValueError as exc:
        raise ClientError(f"provisioner key {key_path} is not a JSON Web Key") from exc
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kid"), str) or "d" not in jwk:
        raise ClientError(f"provisioner key {key_path} is not a private JWK with a kid")
    name = args.provisioner
    if name is None and args.dir is not None:
        provisioners = config(args).get("authority", {}).get("provisioners", [])
        for p in provisioners if isinstance(provisioners, list) else []:
            if isinstance(p, dict) and p.get("type") == "JWK" and (p.get("key") or {}).get("kid") == jwk["kid"]:
                name = p.get("name")
                break
    if not name:
        raise ClientError("give --provisioner (name of the JWK provisioner)")
    return jwk, str(name)


def mint_token(
    *,
    jwk: dict[str, Any],
    provisioner: str,
    subject: str,
    audience: str,
    sans: list[str] | None = None,
    root_sha: str | None = None,
    lifetime: int = 300,
) -> str:
    """Mint a one-time token exactly as `step ca token` does."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": provisioner,
        "sub": subject,
        "aud": audience,
        "nbf": now,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_hex(32),
    }
    if sans is not None:
        claims["sans"] = sans
    if root_sha:
        claims["sha"] = root_sha
    try:
        key = jwt.PyJWK(jwk).key
    except jwt.exceptions.PyJWTError as exc:
        raise ClientError(f"the provisioner key is not a usable JWK: {exc}") from exc
    return jwt.encode(claims, key, algorithm=jwk.get("alg", "ES256"), headers={"kid": jwk["kid"], "typ": "JWT"})


def _root_sha(args: argparse.Namespace) -> str | None:
    try:
        cert = x509.load_pem_x509_certificate(root_path(args).read_bytes())
    except (OSError, ValueError, ClientError):
        return None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _token(args: argparse.Namespace, subject: str, sans: list[str] | None, op: str) -> str:
    base = ca_url(args)  # first: a wrong --dir is named as such, not as a missing key file
    jwk, name = _provisioner_key(args)
    return mint_token(
        jwk=jwk,
        provisioner=name,
        subject=subject,
        audience=f"https://{urlsplit(base).netloc}/1.0/{op}",
        sans=sans,
        root_sha=_root_sha(args),
    )


def _oidc_token(a: argparse.Namespace) -> str | None:
    """For an OIDC provisioner: sign the person in (see `shared.cli.oidc_login`)."""
    from shared.cli.oidc_login import LoginError, oidc_token

    try:
        return oidc_token(ca_url(a), ssl_context(a), a.provisioner)
    except LoginError as exc:
        raise ClientError(str(exc)) from exc


def renew_bearer_token(cert_path: Path, key_path: Path, audience: str) -> str:
    """An x5cInsecure renew token signed by `key_path` (step's --mtls=false).

    The key is not checked against the certificate here (tests sign with a wrong one on
    purpose); `cirrus renew` checks the pair before calling this.
    """
    chain = files.load_chain(cert_path)
    key = files.load_key(key_path)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = {256: "ES256", 384: "ES384", 521: "ES512"}.get(key.curve.key_size, "ES256")
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        alg = "EdDSA"
    elif isinstance(key, rsa.RSAPrivateKey):
        alg = "RS256"
    else:
        raise ClientError(f"{key_path}: unsupported key type for a renew token")
    now = int(time.time())
    cn = chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    claims = {
        "iss": "step-ca-client/1.0",
        "sub": str(cn[0].value) if cn else "",
        "aud": audience,
        "nbf": now,
        "iat": now,
        "exp": now + 300,
    }
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    return jwt.encode(claims, key, algorithm=alg, headers={"x5cInsecure": x5c})  # type: ignore[arg-type]


# ----------------------------------------------------------------- answers
def _chain_pem(resp: dict[str, Any]) -> tuple[bytes, x509.Certificate]:
    """The PEM chain the CA answered, and its leaf."""
    chain = resp.get("certChain") or [resp.get("crt")]
    if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
        raise ClientError("unexpected answer from the CA")
    try:
        leaf = x509.load_pem_x509_certificate(chain[0].encode())
    except ValueError as exc:
        raise ClientError("unexpected answer from the CA (no certificate)") from exc
    return "".join(chain).encode(), leaf


_SERIAL = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")


def parse_serial(text: str) -> int:
    """A serial as `revoke` takes it (and step-ca parses it): decimal, or hex with 0x.

    ASCII only: `int()` would also take other scripts' digits.
    """
    if not _SERIAL.fullmatch(text):
        raise ClientError(f"serial must be a decimal number or 0x-prefixed hex, not {text!r}")
    value = int(text[2:], 16) if text[:2].lower() == "0x" else int(text, 10)
    if not 0 < value < 1 << 160:
        raise ClientError(f"serial {text} is out of range for a certificate serial")
    return value


def _describe(cert: x509.Certificate) -> str:
    return f"serial {cert.serial_number}, expires {cert.not_valid_after_utc.isoformat()}"


# ----------------------------------------------------------------- commands
def cmd_token(args: argparse.Namespace) -> int:
    """Print a token."""
    op = "revoke" if args.revoke else "sign"
    print(_token(args, args.subject, None if args.revoke else (args.san or [args.subject]), op))
    return 0


def cmd_certificate(args: argparse.Namespace) -> int:
    """Get a certificate for a fresh P-256 key; both files are written only if it is issued."""
    sans = args.san or [args.subject]
    with files.outputs((args.crt_file, False), (args.key_file, True)) as (crt_out, key_out):
        base = ca_url(args)
        token = args.token or _oidc_token(args) or _token(args, args.subject, sans, "sign")
        ctx = ssl_context(args)
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, args.subject)]))
            .sign(key, hashes.SHA256())
        )
        body: dict[str, Any] = {"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "ott": token}
        if args.not_after:
            body["notAfter"] = args.not_after
        pem, cert = _chain_pem(request(f"{base}/1.0/sign", ctx=ctx, body=body))
        key_out.commit(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        crt_out.commit(pem)
    print(f"Certificate: {args.crt_file} ({_describe(cert)})")
    print(f"Private key: {args.key_file}")
    return 0


def cmd_renew(args: argparse.Namespace) -> int:
    """Renew with mTLS (default) or a Bearer token; the new chain replaces the file atomically."""
    files.load_pair(args.crt_file, args.key_file)
    out_path = args.out or args.crt_file
    with files.outputs((out_path, False)) as (out,):
        base = ca_url(args)
        if args.bearer:
            token = renew_bearer_token(args.crt_file, args.key_file, f"https://{urlsplit(base).netloc}/1.0/renew")
            headers = {"Authorization": f"Bearer {token}"}
            resp = request(f"{base}/1.0/renew", ctx=ssl_context(args), body={}, headers=headers)
        else:
            resp = request(f"{base}/1.0/renew", ctx=ssl_context(args, (args.crt_file, args.key_file)), body={})
        pem, cert = _chain_pem(resp)
        out.commit(pem)
    print(f"Renewed: {out_path} ({_describe(cert)})")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke by token (default) or mTLS."""
    serial = str(parse_serial(args.serial))
    body: dict[str, Any] = {"serial": serial, "reasonCode": args.reason_code, "reason": args.reason, "passive": True}
    if (args.cert is None) != (args.cert_key is None):
        raise ClientError("give both --cert and --cert-key (or neither, to revoke with a token)")
    if args.cert is not None:
        files.load_pair(args.cert, args.cert_key)
        ctx = ssl_context(args, (args.cert, args.cert_key))
    else:
        body["ott"] = _token(args, serial, None, "revoke")
        ctx = ssl_context(args)
    request(f"{ca_url(args)}/1.0/revoke", ctx=ctx, body=body)
    print(f"Revoked certificate {serial}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Print the CA's health."""
    resp = request(f"{ca_url(args)}/health", ctx=ssl_context(args))
    print(resp.get("status", "unknown"))
    return 0
