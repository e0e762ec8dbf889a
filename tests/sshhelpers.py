"""SSH test helpers: keys made by ssh-keygen, step-style SSH tokens, SSHPOP tokens."""

from __future__ import annotations

import base64
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tests.helpers import AUDIENCE_HOST, mint_token, sign_claims


def keygen(directory: Path, name: str, *args: str) -> tuple[Path, str]:
    """An OpenSSH key pair made by ssh-keygen; returns (private key path, base64 public blob)."""
    path = directory / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-C", name, "-f", str(path), *args], check=True)
    return path, Path(f"{path}.pub").read_text().split()[1]


def ssh_token(authority_dir: Path, subject: str, ssh: dict[str, Any], *, op: str = "ssh/sign", **extra: Any) -> str:
    """A JWK token as `step ssh certificate` mints it (the `step.ssh` claim)."""
    return mint_token(authority_dir, sign_claims(subject, None, op=op, step={"ssh": ssh}, **extra))


def sshpop_token(
    cert_b64: str, key_path: Path, subject: str, *, op: str = "ssh/renew", now: int | None = None,
    fragment: str = "sshpop/sshpop",
) -> str:
    """An SSHPOP token: the certificate in the `sshpop` header, signed by its private key."""
    key = serialization.load_ssh_private_key(key_path.read_bytes(), None)
    t = int(time.time()) if now is None else now
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = "ES256" if key.curve.name == "secp256r1" else "ES384"
    else:
        algorithm = "EdDSA" if isinstance(key, ed25519.Ed25519PrivateKey) else "RS256"
    claims = {
        "iss": "sshpop",
        "sub": subject,
        "aud": f"https://{AUDIENCE_HOST}/1.0/{op}#{fragment}",
        "nbf": t,
        "iat": t,
        "exp": t + 300,
        "jti": secrets.token_hex(32),
    }
    return jwt.encode(claims, key, algorithm=algorithm, headers={"sshpop": cert_b64})  # type: ignore[arg-type]


def cert_line(cert_b64: str) -> str:
    """The `-cert.pub` line of a certificate from the API."""
    raw = base64.b64decode(cert_b64)
    alg = raw[4 : 4 + int.from_bytes(raw[:4], "big")].decode()
    return f"{alg} {cert_b64}\n"
