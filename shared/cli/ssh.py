"""`cirrus ssh`: SSH certificates from the CA, their renewal, and the trust files OpenSSH needs.

- `cirrus ssh certificate KEY-ID key.pub [--host] [--principal P]...` mints a
  JWK token with step's `step.ssh` claim and writes `key-cert.pub`;
- `cirrus ssh renew key-cert.pub key` renews a host certificate with an SSHPOP
  token signed by its own key;
- `cirrus ssh config` writes the `@cert-authority` known_hosts line and the
  sshd `TrustedUserCAKeys` file from `/ssh/roots`;
- `cirrus ssh init --dir DIR` adds SSH CA keys to an authority made before
  SSH support; `cirrus ssh krl --dir DIR --out FILE` writes the KRL of
  revoked SSH certificates from the store.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from shared.cli.ca_client import ClientError, ca_url, request, ssl_context
from shared.errors import ConfigError
from shared.ssh.wire import WireError, parse_authorized_key


def register(sub: Any) -> None:
    """Add `cirrus ssh ...`."""
    p = sub.add_parser("ssh", help="SSH certificates: sign, renew, trust configuration")
    ssub = p.add_subparsers(dest="ssh_command", metavar="SSH_COMMAND")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--dir", type=Path, default=None, help="authority folder (CA URL, root, provisioner key)")
        q.add_argument("--ca-url", default=None, help="CA URL (default https://<address from config>)")
        q.add_argument("--root", type=Path, default=None, help="root certificate to trust")

    q = ssub.add_parser("certificate", help="sign an SSH public key (user, or host with --host)")
    q.add_argument("key_id", metavar="KEY-ID", help="the certificate's key id (a user name or host name)")
    q.add_argument("public_key", type=Path, metavar="key.pub", help="the OpenSSH public key to certify")
    q.add_argument("--host", action="store_true", help="a host certificate (default: user)")
    q.add_argument("--principal", action="append", default=None, help="principal (repeatable; default KEY-ID)")
    q.add_argument("--not-after", default=None, help="validBefore, e.g. 8h or an RFC 3339 time")
    q.add_argument("--key", type=Path, default=None, help="provisioner private JWK (default DIR/secrets/...)")
    q.add_argument("--provisioner", default=None, help="JWK provisioner name")
    q.add_argument("--out", type=Path, default=None, help="certificate file (default key-cert.pub)")
    q.add_argument("--set", action="append", default=None, metavar="KEY=VALUE", dest="template_set",
                   help="template data for the provisioner's SSH template (.Insecure.User.KEY), as step's --set")
    common(q)
    q.set_defaults(func=cmd_certificate)

    q = ssub.add_parser("renew", help="renew a host certificate (SSHPOP)")
    q.add_argument("cert_file", type=Path, metavar="key-cert.pub", help="the current SSH certificate")
    q.add_argument("key_file", type=Path, metavar="key", help="its private key (signs the SSHPOP token)")
    q.add_argument("--provisioner", default="sshpop", help="SSHPOP provisioner name")
    q.add_argument("--out", type=Path, default=None, help="write here (default: overwrite the certificate)")
    common(q)
    q.set_defaults(func=cmd_renew)

    q = ssub.add_parser("config", help="write the known_hosts @cert-authority line and the TrustedUserCAKeys file")
    q.add_argument("--known-hosts", type=Path, default=None, help="known_hosts file to add the host CA line to")
    q.add_argument("--user-ca-keys", type=Path, default=None, help="file for sshd's TrustedUserCAKeys")
    common(q)
    q.set_defaults(func=cmd_config)

    q = ssub.add_parser("init", help="add SSH CA keys to an existing authority")
    q.add_argument("--dir", type=Path, required=True, help="authority folder made by `cirrus init`")
    q.set_defaults(func=cmd_init)

    q = ssub.add_parser("krl", help="write the KRL of revoked SSH certificates")
    q.add_argument("--dir", type=Path, required=True, help="authority folder made by `cirrus init`")
    q.add_argument("--out", type=Path, required=True, help="where to write the KRL")
    q.set_defaults(func=cmd_krl)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _fail(args: argparse.Namespace, message: str) -> int:
    print(f"cirrus ssh {getattr(args, 'ssh_command', '')}: {message}", file=sys.stderr)
    return 1


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        fn(args)
    except (ClientError, ConfigError) as exc:
        return _fail(args, str(exc))
    except OSError as exc:
        return _fail(args, f"{exc.filename or ''}: {exc.strerror}")
    return 0


def _audience(args: argparse.Namespace, op: str) -> str:
    return f"https://{urlsplit(ca_url(args)).netloc}/1.0/{op}"


def _provisioner(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    path = args.key or (args.dir / "secrets" / "provisioner.jwk" if args.dir else None)
    if path is None:
        raise ClientError("give --key or --dir")
    try:
        jwk = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ClientError(f"cannot read provisioner key {path}") from exc
    if not isinstance(jwk, dict) or "d" not in jwk or "kid" not in jwk:
        raise ClientError(f"{path} is not a private JWK")
    name = args.provisioner
    if name is None and args.dir is not None:
        try:
            cfg = json.loads((args.dir / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise ClientError(f"cannot read {args.dir / 'config.json'}") from exc
        for p in cfg.get("authority", {}).get("provisioners", []):
            if p.get("type") == "JWK" and p.get("key", {}).get("kid") == jwk.get("kid"):
                name = p.get("name")
    if not name:
        raise ClientError("give --provisioner (name of the JWK provisioner)")
    return jwk, str(name)


def _claims(issuer: str, subject: str, audience: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer, "sub": subject, "aud": audience, "nbf": now, "iat": now, "exp": now + 300,
            "jti": secrets.token_hex(32), **extra}


def _read_public_key(path: Path) -> str:
    try:
        return base64.b64encode(parse_authorized_key(path.read_text()).blob).decode()
    except WireError as exc:
        raise ClientError(f"{path}: {exc}") from exc


def _cert_path(public_key: Path) -> Path:
    name = public_key.name
    stem = name[: -len(".pub")] if name.endswith(".pub") else name
    return public_key.with_name(f"{stem}-cert.pub")


def _write_cert(path: Path, crt: object) -> None:
    if not isinstance(crt, str):
        raise ClientError("unexpected answer from the CA")
    raw = base64.b64decode(crt)
    alg = raw[4 : 4 + int.from_bytes(raw[:4], "big")].decode()
    path.write_text(f"{alg} {crt}\n")


def _template_data(pairs: list[str]) -> dict[str, str]:
    """step's `--set key=value` pairs as the request's templateData."""
    data: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ClientError(f"--set {pair[:64]!r}: expected KEY=VALUE")
        data[key] = value
    return data


def cmd_certificate(args: argparse.Namespace) -> int:
    """Sign a public key."""

    def go(a: argparse.Namespace) -> None:
        public_key = _read_public_key(a.public_key)
        principals = a.principal or [a.key_id]
        cert_type = "host" if a.host else "user"
        jwk, name = _provisioner(a)
        ssh_opts: dict[str, Any] = {"certType": cert_type, "keyID": a.key_id, "principals": principals}
        if a.not_after:
            ssh_opts["validBefore"] = a.not_after
        claims = _claims(name, a.key_id, _audience(a, "ssh/sign"), step={"ssh": ssh_opts})
        token = jwt.encode(claims, jwt.PyJWK(jwk).key, algorithm=jwk.get("alg", "ES256"),
                           headers={"kid": jwk["kid"], "typ": "JWT"})
        body = {"publicKey": public_key, "ott": token, "certType": cert_type, "keyID": a.key_id,
                "principals": principals}
        if a.template_set:
            body["templateData"] = _template_data(a.template_set)
        resp = request(f"{ca_url(a)}/1.0/ssh/sign", ctx=ssl_context(a), body=body)
        out = a.out or _cert_path(a.public_key)
        _write_cert(out, resp.get("crt"))
        print(f"SSH {cert_type} certificate: {out}")

    return _run(go, args)


def cmd_renew(args: argparse.Namespace) -> int:
    """Renew a host certificate with SSHPOP."""

    def go(a: argparse.Namespace) -> None:
        from shared.ssh.certificate import parse_certificate

        try:
            cert_b64 = a.cert_file.read_text().split()[1]
            cert = parse_certificate(base64.b64decode(cert_b64))
        except (IndexError, ValueError) as exc:
            raise ClientError(f"{a.cert_file} is not an OpenSSH certificate") from exc
        try:
            key = serialization.load_ssh_private_key(a.key_file.read_bytes(), None)
        except (ValueError, TypeError) as exc:
            raise ClientError(f"{a.key_file} is not an unencrypted OpenSSH private key") from exc
        if isinstance(key, ec.EllipticCurvePrivateKey):
            alg = "ES256" if key.curve.name == "secp256r1" else "ES384"
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            alg = "EdDSA"
        else:
            alg = "RS256"
        aud = _audience(a, "ssh/renew") + f"#sshpop/{a.provisioner}"
        token = jwt.encode(_claims(a.provisioner, str(cert.serial), aud), key,  # type: ignore[arg-type]
                           algorithm=alg, headers={"sshpop": cert_b64, "typ": "JWT"})
        resp = request(f"{ca_url(a)}/1.0/ssh/renew", ctx=ssl_context(a), body={"ott": token})
        out = a.out or a.cert_file
        _write_cert(out, resp.get("crt"))
        print(f"Renewed SSH certificate: {out}")

    return _run(go, args)


def cmd_config(args: argparse.Namespace) -> int:
    """Write (or print) the trust lines for the CA's SSH keys."""

    def go(a: argparse.Namespace) -> None:
        from shared.ssh.config_templates import known_hosts_line
        from shared.ssh.wire import parse_public_key

        roots = request(f"{ca_url(a)}/ssh/roots", ctx=ssl_context(a))
        try:
            host = [base64.b64decode(k) for k in roots.get("hostKey", [])]
            users = [parse_public_key(base64.b64decode(k)).authorized_key() for k in roots.get("userKey", [])]
        except (ValueError, TypeError) as exc:
            raise ClientError("unexpected answer from the CA") from exc
        known = "".join(known_hosts_line(h) for h in host)
        trusted = "".join(f"{u}\n" for u in users)
        if a.known_hosts is None and a.user_ca_keys is None:
            sys.stdout.write(known + trusted)
            return
        if a.known_hosts is not None:
            existing = a.known_hosts.read_text() if a.known_hosts.exists() else ""
            missing = [line for line in known.splitlines() if line not in existing.splitlines()]
            if missing:
                prefix = "" if not existing or existing.endswith("\n") else "\n"
                with a.known_hosts.open("a") as fh:
                    fh.write(prefix + "".join(f"{m}\n" for m in missing))
            print(f"known_hosts: {a.known_hosts}")
        if a.user_ca_keys is not None:
            a.user_ca_keys.write_text(trusted)
            print(f"TrustedUserCAKeys: {a.user_ca_keys}")

    return _run(go, args)


def cmd_init(args: argparse.Namespace) -> int:
    """Add SSH CA keys to an existing authority."""

    def go(a: argparse.Namespace) -> None:
        from shared.ssh.keys import add_ssh_to_authority

        add_ssh_to_authority(a.dir)
        print(f"Added SSH user and host CA keys to {a.dir.resolve()}; restart `cirrus up` to use them")

    return _run(go, args)


def cmd_krl(args: argparse.Namespace) -> int:
    """Write the KRL from the authority's store."""

    def go(a: argparse.Namespace) -> None:
        from shared.config import Settings
        from shared.runtime import build_services
        from shared.ssh.wiring import ssh_authority

        services = build_services(Settings.load(a.dir / "config.json"))
        try:
            authority = ssh_authority(services)
            if authority is None:
                raise ClientError("this authority has no SSH keys (cirrus ssh init --dir DIR adds them)")
            a.out.write_bytes(authority.krl(version=int(time.time())))
        finally:
            services.close()
        print(f"KRL: {a.out}")

    return _run(go, args)
