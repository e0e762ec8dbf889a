"""`cirrus init`: create a ready authority on embedded defaults.

Layout: `certs/root_ca.crt`, `certs/intermediate_ca.crt`,
`secrets/root_ca_key`, `secrets/intermediate_ca_key` and
`secrets/ocsp_responder_key` (the delegated OCSP responder's key; encrypted
PKCS#8, softkms), `secrets/password` (0600), `secrets/provisioner.jwk` (the default
JWK provisioner's private key, 0600), `config.json`, and `db/` for SQLite (0700, like
`secrets/`: the store holds EAB and ACME nonce keys).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import ipaddress
import json
import os
import secrets
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.cli.errors import CLIError
from shared.clock import SystemClock
from shared.jose import encrypt_jwk, thumbprint
from shared.keys.adapter import as_private_key
from shared.keys.base import KeyType
from shared.keys.softkms import SoftKMS
from shared.ssh.keys import create_ssh_keys
from shared.x509.names import is_dns_name
from shared.x509.profile import Issuer, ca_name, intermediate, self_signed_root
from shared.x509.serials import random_serial

KEY_TYPES = {
    "EC": KeyType.EC_P256,
    "P-256": KeyType.EC_P256,
    "P-384": KeyType.EC_P384,
    "RSA": KeyType.RSA_3072,
    "RSA-3072": KeyType.RSA_3072,
    "RSA-2048": KeyType.RSA_2048,
    "RSA-4096": KeyType.RSA_4096,
    "Ed25519": KeyType.ED25519,
}


class InitError(CLIError):
    """`cirrus init` cannot proceed (message shown as is)."""


def register(sub: Any) -> None:
    """Add `cirrus init`."""
    p = sub.add_parser("init", help="create a new authority (root, intermediate, provisioners, config)")
    p.add_argument("--dir", required=True, type=Path, help="folder to create the authority in")
    p.add_argument("--name", default="Cirrus", help="CA name (used in the certificate subjects)")
    p.add_argument(
        "--dns",
        action="append",
        default=None,
        help="DNS name or IP of the CA (repeatable; default localhost, 127.0.0.1, ::1)",
    )
    p.add_argument("--key-type", default="P-256", choices=sorted(KEY_TYPES), help="CA key type")
    p.add_argument("--provisioner", default="admin", help="name of the default JWK provisioner")
    p.add_argument("--address", default="127.0.0.1:9443", help="address `cirrus up` listens on")
    p.set_defaults(func=run)


def _provisioner_jwk() -> tuple[dict[str, Any], dict[str, Any]]:
    key = ec.generate_private_key(ec.SECP256R1())
    private: dict[str, Any] = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key))
    kid = thumbprint(private)
    private.update({"kid": kid, "alg": "ES256", "use": "sig"})
    public = {k: v for k, v in private.items() if k != "d"}
    return private, public


def _write_secret(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def prepare_folder(directory: Path, dns_names: list[str] | None) -> tuple[Path, list[str], bytes]:
    """Check the CA names, make the authority's folders and its password file.

    Raises:
        InitError: the folder already holds an authority, or a name is invalid.
    """
    directory = directory.resolve()
    if directory.exists() and not directory.is_dir():
        raise InitError(f"{directory} is not a folder")
    if (directory / "config.json").exists() or (directory / "secrets").exists() or (directory / "certs").exists():
        raise InitError(f"{directory} already contains an authority; refusing to overwrite it")
    dns = dns_names or ["localhost", "127.0.0.1", "::1"]
    for d in dns:
        try:
            ipaddress.ip_address(d)
        except ValueError:
            if not is_dns_name(d.lower(), allow_wildcard=False):
                raise InitError(f"invalid DNS name or IP address: {d!r}") from None
    private = ("secrets", "db")  # keys; the store with EAB and ACME nonce keys (shared.cli.at_rest)
    for sub in ("certs", "secrets", "db", "published"):
        folder = directory / sub
        folder.mkdir(parents=True, exist_ok=sub in ("db", "published"), mode=0o700 if sub in private else 0o755)
        if sub in private:
            folder.chmod(0o700)  # also when `db/` was there already
    password = secrets.token_urlsafe(32).encode()
    _write_secret(directory / "secrets" / "password", password + b"\n")
    return directory, dns, password


def init_authority(
    directory: Path,
    *,
    name: str = "Cirrus",
    dns_names: list[str] | None = None,
    key_type: KeyType = KeyType.EC_P256,
    provisioner_name: str = "admin",
    address: str = "127.0.0.1:9443",
    p2c: int = 600_000,
) -> dict[str, Any]:
    """Create an authority in `directory` and return its config.

    Raises:
        InitError: the folder already holds an authority, or bad options.
    """
    directory, dns, password = prepare_folder(directory, dns_names)
    kms = SoftKMS(password=password)
    now = SystemClock().now()
    root_signer = kms.create_key(f"softkms:path={directory}/secrets/root_ca_key", key_type)
    root_key = as_private_key(root_signer)
    root = self_signed_root(
        key=root_key,
        subject=ca_name(f"{name} Root CA", name),
        serial=random_serial(),
        not_before=now - dt.timedelta(minutes=1),
        not_after=now + dt.timedelta(days=3650),
    )
    int_signer = kms.create_key(f"softkms:path={directory}/secrets/intermediate_ca_key", key_type)
    inter = intermediate(
        Issuer.of(root, root_key),
        public_key=int_signer.public_key(),
        subject=ca_name(f"{name} Intermediate CA", name),
        serial=random_serial(),
        not_before=now - dt.timedelta(minutes=1),
        not_after=now + dt.timedelta(days=3650),
    )
    # The OCSP responder signs with its own key, so the ocsp function never needs the CA key;
    # its certificate is issued (and rotated) by whoever publishes CRLs.
    kms.create_key(f"softkms:path={directory}/secrets/ocsp_responder_key", key_type)
    return write_authority(
        directory,
        root=root,
        intermediates=[inter],
        key_uri="softkms:path=secrets/intermediate_ca_key",
        ocsp_key_uri="softkms:path=secrets/ocsp_responder_key",
        password=password,
        name=name,
        dns_names=dns,
        provisioner_name=provisioner_name,
        address=address,
        p2c=p2c,
        # SSH user and host CA keys, as `step ca init --ssh` makes them.
        ssh_keys=lambda config: create_ssh_keys(config, directory, kms, key_type),
    )


def write_authority(
    directory: Path,
    *,
    root: x509.Certificate,
    intermediates: list[x509.Certificate],
    key_uri: str,
    ocsp_key_uri: str,
    password: bytes,
    name: str,
    dns_names: list[str],
    provisioner_name: str,
    address: str,
    p2c: int = 600_000,
    ssh_keys: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Write the certificates, the default provisioners and config.json of a new authority.

    `cirrus init` (softkms keys it just made) and `cirrus ca bootstrap` (keys in a
    KMS or HSM) share this, so both give the same config shape. `password`
    encrypts the JWK provisioner's key (and softkms keys); it is already in
    `secrets/password`.
    """
    dns = dns_names
    (directory / "certs" / "root_ca.crt").write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (directory / "certs" / "intermediate_ca.crt").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in intermediates)
    )
    private_jwk, public_jwk = _provisioner_jwk()
    _write_secret(directory / "secrets" / "provisioner.jwk", json.dumps(private_jwk, indent=2).encode() + b"\n")
    config: dict[str, Any] = {
        "root": "certs/root_ca.crt",
        "federatedRoots": None,
        "crt": "certs/intermediate_ca.crt",
        "key": key_uri,
        "passwordFile": "secrets/password",
        "address": address,
        "dnsNames": dns,
        "commonName": f"{name} Online CA",
        "logger": {"format": "json"},
        "db": {"type": "sqlite", "dataSource": "db/cirrus.db"},
        "store": "sqlite:db/cirrus.db",
        "blobs": "file:published",
        "events": {"sinks": ["log"]},
        "authority": {
            "authorityId": str(uuid.uuid4()),
            "provisioners": [
                {
                    "type": "JWK",
                    "name": provisioner_name,
                    "key": public_jwk,
                    "encryptedKey": encrypt_jwk(private_jwk, password, p2c=p2c),
                },
                {
                    "type": "ACME",
                    "name": "acme",
                    "challenges": ["http-01", "dns-01", "tls-alpn-01"],
                    "claims": {"disableRenewal": True},
                },
            ],
            "claims": {},
            "backdate": "1m",
        },
        "crl": {"enabled": True, "cacheDuration": "24h", "publishInterval": "1h"},
        "ocsp": {"responderKey": ocsp_key_uri, "responderLifetime": "72h"},
        "tls": {
            "cipherSuites": [
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            ],
            "minVersion": 1.2,
            "maxVersion": 1.3,
            "renegotiation": False,
        },
    }
    if ssh_keys is not None:
        ssh_keys(config)
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return config


def root_fingerprint(directory: Path) -> str:
    """SHA-256 of the root certificate's DER, hex."""
    from cryptography import x509

    root = x509.load_pem_x509_certificate((directory / "certs" / "root_ca.crt").read_bytes())
    return hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest()


def run(args: argparse.Namespace) -> int:
    """CLI entry for `cirrus init`."""
    init_authority(
        args.dir,
        name=args.name,
        dns_names=args.dns,
        key_type=KEY_TYPES[args.key_type],
        provisioner_name=args.provisioner,
        address=args.address,
    )
    d = args.dir.resolve()
    print(f"Created a new authority in {d}")
    print(f"  root certificate:          {d}/certs/root_ca.crt")
    print(f"  intermediate certificate:  {d}/certs/intermediate_ca.crt")
    print(f"  provisioner key (JWK):     {d}/secrets/provisioner.jwk")
    print(f"  config:                    {d}/config.json")
    print(f"  root fingerprint:          {root_fingerprint(d)}")
    print(f"\nNext: cirrus up --dir {args.dir}")
    return 0
