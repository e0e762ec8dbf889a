"""`cirrus bootstrap`: a VM gets its first certificate from its cloud instance identity.

Runs on the VM. Trust in the CA comes from the root's fingerprint, as `step ca
bootstrap` does: the root is fetched from `GET /root/<fingerprint>` over an
unverified connection and kept only if its SHA-256 matches; every later call
verifies the CA's TLS certificate against that root. The cloud is detected from
its metadata server (or given with `--cloud`); the identity is fetched as the
step CLI fetches it (GCP: the identity token for the audience
`https://<ca>/1.0/sign#gcp/<name>`, `format=full`), a P-256 key and a CSR are
made, and key, certificate, full chain and root are written atomically (the key
0600). Renewal afterwards is mTLS with that key (`--renew`), typically from the
systemd timer `--timer print` shows or `--timer-dir` writes (`--bearer`: an x5c
token instead, where no TLS reaches the CA). The identity fetching is in
`cloud_identity.py`.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import shlex
import ssl
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.cli.cloud_identity import (
    BootstrapError,
    Identity,
    aws_identity,
    azure_identity,
    detect_cloud,
    gcp_identity,
    http_request,
)

CLOUDS = ("gcp", "aws", "azure")


def register(sub: Any) -> None:
    """Add `cirrus bootstrap`."""
    p = sub.add_parser("bootstrap", help="get a VM's first certificate from its cloud instance identity")
    p.add_argument("--ca-url", required=True, help="the CA's URL, e.g. https://ca.example.com")
    p.add_argument("--fingerprint", required=True, help="hex SHA-256 of the CA's root certificate")
    p.add_argument("--provisioner", required=True, help="the cloud provisioner's name")
    p.add_argument("--cloud", choices=CLOUDS, help="skip detection")
    p.add_argument("--out-dir", type=Path, default=Path("/etc/cirrus"), help="where key and certificates go")
    p.add_argument("--san", action="append", default=[], help="a SAN to ask for (default: the instance's names)")
    p.add_argument("--renew", action="store_true", help="renew the certificate in --out-dir with mTLS")
    p.add_argument(
        "--bearer", action="store_true", help="with --renew: an x5c Bearer token instead of mTLS (behind proxies)"
    )
    p.add_argument("--timer", choices=("print",), help="only print a systemd service and timer that renew")
    p.add_argument("--timer-dir", type=Path, help="write the systemd units into this folder")
    p.set_defaults(func=cmd_bootstrap)


# ------------------------------------------------------------------ the CA
def _ca_json(
    url: str, ctx: ssl.SSLContext, body: dict[str, Any] | None = None, bearer: str | None = None
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "User-Agent": "cirrus-bootstrap/1.0"}
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    raw, _ = http_request(url, method="POST" if data is not None else "GET", data=data, ctx=ctx, headers=headers)
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise BootstrapError("unexpected answer from the CA") from exc
    if not isinstance(doc, dict):
        raise BootstrapError("unexpected answer from the CA")
    return doc


# ------------------------------------------------------------------- trust
def fetch_root(ca_url: str, fingerprint: str) -> x509.Certificate:
    """The root whose SHA-256 is `fingerprint`, fetched as `step ca bootstrap` does.

    Raises:
        BootstrapError: unreachable CA, or the root does not match the fingerprint.
    """
    fp = fingerprint.replace(":", "").replace("-", "").lower()
    if len(fp) != 64 or any(c not in "0123456789abcdef" for c in fp):
        raise BootstrapError("--fingerprint must be the root's hex SHA-256 (64 hex digits)")
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # only to read the root, which is then checked by its fingerprint
    doc = _ca_json(f"{ca_url}/root/{fp}", insecure)
    pem = doc.get("ca")
    try:
        root = x509.load_pem_x509_certificate(str(pem).encode())
    except ValueError as exc:
        raise BootstrapError("the CA answered with no root certificate") from exc
    got = hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest()
    if got != fp:
        raise BootstrapError("the CA's root does not match --fingerprint")
    return root


def _trusting(root_file: Path, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(root_file))
    if client is not None:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


def _provisioner_json(ca_url: str, ctx: ssl.SSLContext, name: str) -> dict[str, Any]:
    """The provisioner's block from `GET /provisioners` (the step CLI reads `imdsVersions` there)."""
    cursor = ""
    for _ in range(100):
        query = urllib.parse.urlencode({"limit": 100, **({"cursor": cursor} if cursor else {})})
        page = _ca_json(f"{ca_url}/1.0/provisioners?{query}", ctx)
        for p in page.get("provisioners") or []:
            if isinstance(p, dict) and p.get("name") == name:
                return p
        cursor = str(page.get("nextCursor") or "")
        if not cursor:
            break
    raise BootstrapError(f"the CA has no provisioner named {name!r}")


def identity_for(cloud: str, ca_url: str, provisioner: str, ctx: ssl.SSLContext) -> Identity:
    """Fetch this VM's identity for `provisioner`.

    Raises:
        BootstrapError: unsupported cloud, unknown provisioner, or a metadata failure.
    """
    # Audiences are https URLs (as the step CLI makes them), also behind a plain-http front end.
    audience = f"https://{urlsplit(ca_url).netloc}/1.0/sign#{cloud}/{provisioner}"
    if cloud == "gcp":
        return gcp_identity(audience)
    if cloud == "aws":
        block = _provisioner_json(ca_url, ctx, provisioner)
        versions = block.get("imdsVersions") or ["v2", "v1"]
        if not isinstance(versions, list) or not all(v in ("v1", "v2") for v in versions):
            raise BootstrapError("the provisioner lists unknown imdsVersions")
        return aws_identity(audience, provisioner, tuple(versions))
    block = _provisioner_json(ca_url, ctx, provisioner)
    return azure_identity(str(block.get("audience") or "https://management.azure.com/"))


# ------------------------------------------------------------------- files
def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` through a temporary file in the same folder, created with `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Paths:
    """The files bootstrap writes."""

    out: Path

    @property
    def key(self) -> Path:
        return self.out / "key.pem"

    @property
    def cert(self) -> Path:
        return self.out / "cert.pem"

    @property
    def chain(self) -> Path:
        return self.out / "chain.pem"

    @property
    def root(self) -> Path:
        return self.out / "root_ca.crt"


def _save(paths: Paths, resp: Mapping[str, Any]) -> x509.Certificate:
    chain = resp.get("certChain") or [resp.get("crt")]
    if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
        raise BootstrapError("unexpected answer from the CA")
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    write_atomic(paths.chain, "".join(chain).encode(), 0o644)
    write_atomic(paths.cert, chain[0].encode(), 0o644)
    return leaf


def _renew_token(paths: Paths, audience: str) -> str:
    """step's `--mtls=false` renew token: x5cInsecure chain, signed by the certificate's own key."""
    import time

    import jwt

    chain = x509.load_pem_x509_certificates(paths.chain.read_bytes())
    key = serialization.load_pem_private_key(paths.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BootstrapError("the bootstrap key is not an EC key")
    now = int(time.time())
    cn = chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    claims = {"iss": "step-ca-client/1.0", "sub": str(cn[0].value) if cn else "", "aud": audience,
              "nbf": now, "iat": now, "exp": now + 300}
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    return jwt.encode(claims, key, algorithm="ES256", headers={"x5cInsecure": x5c})


def timer_units(args: argparse.Namespace) -> dict[str, str]:
    """A oneshot service that renews and a timer that runs it three times a day."""
    exe = shlex.quote(sys.argv[0] if sys.argv and sys.argv[0].endswith("cirrus") else "cirrus")
    cmd = " ".join(
        [exe, "bootstrap", "--renew", "--ca-url", shlex.quote(args.ca_url), "--fingerprint",
         shlex.quote(args.fingerprint), "--provisioner", shlex.quote(args.provisioner),
         "--out-dir", shlex.quote(str(args.out_dir)), *(["--bearer"] if args.bearer else [])]
    )
    service = (
        "[Unit]\nDescription=Renew the Cirrus CA certificate of this VM\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        f"[Service]\nType=oneshot\nExecStart={cmd}\n"
    )
    timer = (
        "[Unit]\nDescription=Renew the Cirrus CA certificate of this VM\n\n"
        "[Timer]\nOnBootSec=5min\nOnUnitActiveSec=8h\nRandomizedDelaySec=15min\nPersistent=true\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )
    return {"cirrus-renew.service": service, "cirrus-renew.timer": timer}


# --------------------------------------------------------------- commands
def _bootstrap(args: argparse.Namespace) -> None:
    ca_url = str(args.ca_url).rstrip("/")
    paths = Paths(args.out_dir)
    if args.renew:
        if not paths.root.exists() or not paths.key.exists() or not paths.chain.exists():
            raise BootstrapError(f"no bootstrapped certificate in {paths.out}; run bootstrap first")
        if args.bearer:
            token = _renew_token(paths, f"https://{urlsplit(ca_url).netloc}/1.0/renew")
            leaf = _save(paths, _ca_json(f"{ca_url}/1.0/renew", _trusting(paths.root), {}, token))
        else:
            ctx = _trusting(paths.root, (paths.chain, paths.key))
            leaf = _save(paths, _ca_json(f"{ca_url}/1.0/renew", ctx, {}))
        print(f"Renewed: {paths.cert} (serial {leaf.serial_number}, expires {leaf.not_valid_after_utc.isoformat()})")
        return
    root = fetch_root(ca_url, args.fingerprint)
    write_atomic(paths.root, root.public_bytes(serialization.Encoding.PEM), 0o644)
    cloud = args.cloud or detect_cloud()
    identity = identity_for(cloud, ca_url, args.provisioner, _trusting(paths.root))
    sans = tuple(args.san) or identity.sans
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name)]))
        .add_extension(x509.SubjectAlternativeName([_general_name(s) for s in sans]), critical=False)
        .sign(key, hashes.SHA256())
    )
    body = {"csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "ott": identity.token}
    resp = _ca_json(f"{ca_url}/1.0/sign", _trusting(paths.root), body)
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(paths.key, pem_key, 0o600)
    leaf = _save(paths, resp)
    print(f"Certificate: {paths.cert} (serial {leaf.serial_number}, expires {leaf.not_valid_after_utc.isoformat()})")
    print(f"Chain: {paths.chain}\nPrivate key: {paths.key}\nRoot: {paths.root}")


def _general_name(name: str) -> x509.GeneralName:
    import ipaddress

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def cmd_bootstrap(args: argparse.Namespace) -> int:
    """Bootstrap (or renew); `--timer print` only prints the units, `--timer-dir` also writes them."""
    try:
        if args.timer == "print":
            for name, text in timer_units(args).items():
                print(f"# {name}\n{text}")
            return 0
        _bootstrap(args)
        if args.timer_dir:
            for name, text in timer_units(args).items():
                write_atomic(args.timer_dir / name, text.encode(), 0o644)
            print(f"Timer: {args.timer_dir / 'cirrus-renew.timer'} (systemctl enable --now cirrus-renew.timer)")
    except BootstrapError as exc:
        print(f"cirrus bootstrap: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cirrus bootstrap: {exc.strerror or exc} {exc.filename or ''}".rstrip(), file=sys.stderr)
        return 1
    return 0
