"""Client commands: `cirrus token`, `certificate`, `renew`, `revoke`, `health`.

They speak the same HTTP API as the step CLI, with the standard library's
HTTPS client (no extra dependency), trusting the authority's root.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class ClientError(Exception):
    """A client-side failure with a message for the user."""


def register(sub: Any) -> None:
    """Add the client subcommands."""

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--dir", type=Path, default=None, help="authority folder (for the CA URL, root and provisioner key)"
        )
        p.add_argument("--ca-url", default=None, help="CA URL (default https://<address from config>)")
        p.add_argument("--root", type=Path, default=None, help="root certificate to trust")

    p = sub.add_parser("token", help="mint a one-time token with the provisioner key")
    p.add_argument("subject")
    p.add_argument("--san", action="append", default=None)
    p.add_argument(
        "--key", type=Path, default=None, help="provisioner private JWK (default DIR/secrets/provisioner.jwk)"
    )
    p.add_argument("--provisioner", default=None)
    p.add_argument("--revoke", action="store_true", help="mint a revoke token (subject = serial)")
    common(p)
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("certificate", help="generate a key and CSR, and get a certificate")
    p.add_argument("subject")
    p.add_argument("crt_file", type=Path)
    p.add_argument("key_file", type=Path)
    p.add_argument("--san", action="append", default=None)
    p.add_argument("--token", default=None, help="use this token instead of minting one")
    p.add_argument("--key", type=Path, default=None)
    p.add_argument("--provisioner", default=None)
    p.add_argument("--not-after", default=None, help="e.g. 1h or an RFC 3339 time")
    common(p)
    p.set_defaults(func=cmd_certificate)

    p = sub.add_parser("renew", help="renew a certificate (mTLS, or --bearer token)")
    p.add_argument("crt_file", type=Path)
    p.add_argument("key_file", type=Path)
    p.add_argument("--bearer", action="store_true", help="authenticate with an x5c Bearer token instead of mTLS")
    p.add_argument("--out", type=Path, default=None, help="write here (default: overwrite crt_file)")
    common(p)
    p.set_defaults(func=cmd_renew)

    p = sub.add_parser("revoke", help="revoke a certificate by serial (token) or with --cert/--cert-key (mTLS)")
    p.add_argument("serial")
    p.add_argument("--reason-code", type=int, default=0)
    p.add_argument("--reason", default="")
    p.add_argument("--cert", type=Path, default=None)
    p.add_argument("--cert-key", type=Path, default=None)
    p.add_argument("--key", type=Path, default=None)
    p.add_argument("--provisioner", default=None)
    common(p)
    p.set_defaults(func=cmd_revoke)

    p = sub.add_parser("health", help="check the CA answers")
    common(p)
    p.set_defaults(func=cmd_health)


# ------------------------------------------------------------------ context
def _config(args: argparse.Namespace) -> dict[str, Any]:
    if args.dir is None:
        return {}
    path = args.dir / "config.json"
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ClientError(f"cannot read {path}") from exc
    return value if isinstance(value, dict) else {}


def ca_url(args: argparse.Namespace) -> str:
    """The CA's base URL."""
    if args.ca_url:
        return str(args.ca_url).rstrip("/")
    cfg = _config(args)
    if not cfg:
        raise ClientError("give --ca-url or --dir")
    return url_for_address(str(cfg.get("address", "127.0.0.1:9443")))


def url_for_address(address: str) -> str:
    """`https://host:port` to reach a server listening on `address` (a wildcard host means this machine)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def root_path(args: argparse.Namespace) -> Path:
    """The root certificate to trust."""
    if args.root:
        return Path(args.root)
    if args.dir:
        return Path(args.dir) / "certs" / "root_ca.crt"
    raise ClientError("give --root or --dir")


def ssl_context(args: argparse.Namespace, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """Trust only the CA's root; present a client certificate for mTLS."""
    ctx = ssl.create_default_context(cafile=str(root_path(args)))
    if client is not None:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


def request(
    url: str, *, ctx: ssl.SSLContext, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST (with body) or GET a JSON endpoint; turn failures into `ClientError`."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")  # noqa: S310
    req.add_header("Content-Type", "application/json")
    req.add_header("User-Agent", "cirrus-cli/1.0")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:  # noqa: S310
            payload = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("message", "")
        except ValueError:
            detail = ""
        raise ClientError(f"the CA refused the request ({exc.code}): {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"cannot reach the CA at {url}: {reason}") from exc
    if not isinstance(payload, dict):
        raise ClientError("unexpected answer from the CA")
    return payload


def _provisioner_key(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    key_path = args.key or (args.dir / "secrets" / "provisioner.jwk" if args.dir else None)
    if key_path is None:
        raise ClientError("give --key or --dir")
    try:
        jwk = json.loads(Path(key_path).read_text())
    except (OSError, ValueError) as exc:
        raise ClientError(f"cannot read provisioner key {key_path}") from exc
    name = args.provisioner
    if name is None:
        for p in _config(args).get("authority", {}).get("provisioners", []):
            if p.get("type") == "JWK" and p.get("key", {}).get("kid") == jwk.get("kid"):
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
    key = jwt.PyJWK(jwk).key
    return jwt.encode(claims, key, algorithm=jwk.get("alg", "ES256"), headers={"kid": jwk["kid"], "typ": "JWT"})


def _root_sha(args: argparse.Namespace) -> str | None:
    try:
        cert = x509.load_pem_x509_certificate(root_path(args).read_bytes())
    except (OSError, ValueError, ClientError):
        return None
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _token(args: argparse.Namespace, subject: str, sans: list[str] | None, op: str) -> str:
    jwk, name = _provisioner_key(args)
    parts = urlsplit(ca_url(args))
    return mint_token(
        jwk=jwk,
        provisioner=name,
        subject=subject,
        audience=f"https://{parts.netloc}/1.0/{op}",
        sans=sans,
        root_sha=_root_sha(args),
    )


def _write_private(path: Path, data: bytes) -> None:
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _save_chain(path: Path, resp: dict[str, Any]) -> x509.Certificate:
    chain = resp.get("certChain") or [resp.get("crt")]
    if not chain or not all(isinstance(c, str) for c in chain):
        raise ClientError("unexpected answer from the CA")
    path.write_text("".join(chain))
    return x509.load_pem_x509_certificate(chain[0].encode())


# ----------------------------------------------------------------- commands
def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        fn(args)
    except ClientError as exc:
        print(f"cirrus {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Print a token."""

    def go(a: argparse.Namespace) -> None:
        op = "revoke" if a.revoke else "sign"
        print(_token(a, a.subject, None if a.revoke else (a.san or [a.subject]), op))

    return _run(go, args)


def cmd_certificate(args: argparse.Namespace) -> int:
    """Get a certificate for a fresh P-256 key."""

    def go(a: argparse.Namespace) -> None:
        sans = a.san or [a.subject]
        token = a.token or _oidc_token(a) or _token(a, a.subject, sans, "sign")
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, a.subject)]))
            .sign(key, hashes.SHA256())
        )
        body: dict[str, Any] = {"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "ott": token}
        if a.not_after:
            body["notAfter"] = a.not_after
        resp = request(f"{ca_url(a)}/1.0/sign", ctx=ssl_context(a), body=body)
        _write_private(
            a.key_file,
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
        )
        cert = _save_chain(a.crt_file, resp)
        print(
            f"Certificate: {a.crt_file} (serial {cert.serial_number}, expires {cert.not_valid_after_utc.isoformat()})"
        )
        print(f"Private key: {a.key_file}")

    return _run(go, args)


def _oidc_token(a: argparse.Namespace) -> str | None:
    """For an OIDC provisioner: sign the person in (see `shared.cli.oidc_login`)."""
    from shared.cli.oidc_login import LoginError, oidc_token

    try:
        return oidc_token(ca_url(a), ssl_context(a), a.provisioner)
    except LoginError as exc:
        raise ClientError(str(exc)) from exc


def renew_bearer_token(cert_path: Path, key_path: Path, audience: str) -> str:
    """An x5cInsecure renew token signed by the certificate's own key (step's --mtls=false)."""
    import base64

    chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    now = int(time.time())
    alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size == 384:
        alg = "ES384"
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


def cmd_renew(args: argparse.Namespace) -> int:
    """Renew with mTLS (default) or a Bearer token."""

    def go(a: argparse.Namespace) -> None:
        base = ca_url(a)
        if a.bearer:
            token = renew_bearer_token(a.crt_file, a.key_file, f"https://{urlsplit(base).netloc}/1.0/renew")
            resp = request(
                f"{base}/1.0/renew", ctx=ssl_context(a), body={}, headers={"Authorization": f"Bearer {token}"}
            )
        else:
            resp = request(f"{base}/1.0/renew", ctx=ssl_context(a, (a.crt_file, a.key_file)), body={})
        out = a.out or a.crt_file
        cert = _save_chain(out, resp)
        print(f"Renewed: {out} (serial {cert.serial_number}, expires {cert.not_valid_after_utc.isoformat()})")

    return _run(go, args)


def cmd_revoke(args: argparse.Namespace) -> int:
    """Revoke by token (default) or mTLS."""

    def go(a: argparse.Namespace) -> None:
        body: dict[str, Any] = {"serial": a.serial, "reasonCode": a.reason_code, "reason": a.reason, "passive": True}
        if a.cert and a.cert_key:
            ctx = ssl_context(a, (a.cert, a.cert_key))
        else:
            body["ott"] = _token(a, a.serial, None, "revoke")
            ctx = ssl_context(a)
        request(f"{ca_url(a)}/1.0/revoke", ctx=ctx, body=body)
        print(f"Revoked certificate {a.serial}")

    return _run(go, args)


def cmd_health(args: argparse.Namespace) -> int:
    """Print the CA's health."""

    def go(a: argparse.Namespace) -> None:
        resp = request(f"{ca_url(a)}/health", ctx=ssl_context(a))
        print(resp.get("status", "unknown"))

    return _run(go, args)
