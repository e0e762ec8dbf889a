"""`cirrus ca ...`: key ceremonies for a CA hierarchy whose keys live in a KMS or HSM.

    cirrus ca root --kms URI --out root.crt [--create KEY-TYPE] [--name N] [--days D]
    cirrus ca intermediate-csr --kms URI --out int.csr [--create KEY-TYPE] [--name N]
    cirrus ca sign-intermediate --root-kms URI --root root.crt CSR --out int.crt [--path-len N]
        [--permit-dns D]... [--exclude-dns D]... [--permit-ip CIDR]... [--days D]
    cirrus ca install --dir DIR --cert int.crt --kms URI [--chain upper.crt] [--root root.crt]
    cirrus ca install --dir DIR --authority NAME [--prefix P] --cert int.crt --kms URI [--chain upper.crt]
    cirrus ca bootstrap --dir DIR --root-kms URI --intermediate-kms URI --ocsp-kms URI [--create KEY-TYPE]
    cirrus ca stage-intermediate | activate | intermediates | revoke-intermediate  (shared/cli/ca_rotation.py)

Each step runs where its key is (see shared/ceremony.py). softkms keys are
encrypted files (`--password-file`), the form meant to be kept offline.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.ceremony import (
    CeremonyError,
    Constraints,
    install,
    make_intermediate_csr,
    make_root,
    open_or_create,
    sign_intermediate,
)
from shared.clock import SystemClock
from shared.errors import ConfigError
from shared.keys.base import KeyType
from shared.keys.registry import KeyManagers

_KEY_TYPES = {t.value: t for t in KeyType}


def register(sub: Any) -> None:
    """Add `cirrus ca` and its ceremony subcommands."""
    ca = sub.add_parser("ca", help="key ceremonies: roots, intermediates, installing them (KMS/HSM keys)")
    steps = ca.add_subparsers(dest="ca_command", metavar="STEP", required=True)

    def key_options(p: argparse.ArgumentParser) -> None:
        types = ", ".join(sorted(_KEY_TYPES))
        p.add_argument("--create", choices=sorted(_KEY_TYPES), metavar="KEY-TYPE",
                       help=f"create the key first ({types}); without it the key must exist")  # fmt: skip
        p.add_argument("--password-file", type=Path, help="password of softkms (encrypted file) keys")

    p = steps.add_parser("root", help="self-sign a root certificate with a key in a key manager")
    p.add_argument("--kms", required=True, metavar="URI", help="the root key (softkms:, cloudkms:, awskms:, pkcs11:)")
    p.add_argument("--out", required=True, type=Path, help="where to write the root certificate (PEM)")
    p.add_argument("--name", default="Cirrus", help="CA name: subject 'NAME Root CA', organization NAME")
    p.add_argument("--days", type=int, default=3650, help="validity in days (default 3650)")
    p.add_argument("--path-len", type=int, default=1,
                   help="intermediates allowed below the root (default 1; 2 for root -> CA -> issuing CA)")
    key_options(p)
    p.set_defaults(func=_root)

    p = steps.add_parser("intermediate-csr", help="an intermediate key in a key manager and its CSR")
    p.add_argument("--kms", required=True, metavar="URI", help="the intermediate key")
    p.add_argument("--out", required=True, type=Path, help="where to write the CSR (PEM)")
    p.add_argument("--name", default="Cirrus", help="CA name: subject 'NAME Intermediate CA'")
    key_options(p)
    p.set_defaults(func=_intermediate_csr)

    p = steps.add_parser("sign-intermediate", help="certify an intermediate CSR with the root key")
    p.add_argument("csr", type=Path, help="the intermediate's CSR (PEM)")
    p.add_argument("--root-kms", required=True, metavar="URI", help="the root key")
    p.add_argument("--root", required=True, type=Path, help="the root certificate (PEM)")
    p.add_argument("--out", required=True, type=Path, help="where to write the intermediate certificate")
    p.add_argument("--days", type=int, default=1825, help="validity in days (default 1825)")
    p.add_argument("--path-len", type=int, default=0, help="path length constraint (default 0: issues leaves only)")
    p.add_argument("--permit-dns", action="append", default=[], metavar="DOMAIN",
                   help="permitted DNS subtree (repeatable)")
    p.add_argument("--exclude-dns", action="append", default=[], metavar="DOMAIN",
                   help="excluded DNS subtree (repeatable)")
    p.add_argument("--permit-ip", action="append", default=[], metavar="CIDR", help="permitted IP range (repeatable)")
    p.add_argument("--exclude-ip", action="append", default=[], metavar="CIDR", help="excluded IP range (repeatable)")
    p.add_argument("--password-file", type=Path, help="password of a softkms root key")
    p.set_defaults(func=_sign_intermediate)

    p = steps.add_parser("install", help="make an authority issue with a new intermediate (no root key needed)")
    p.add_argument("--dir", required=True, type=Path, help="the authority's folder (config.json)")
    p.add_argument("--cert", required=True, type=Path, help="the intermediate certificate (PEM)")
    p.add_argument("--kms", required=True, metavar="URI", help="the intermediate's key URI")
    p.add_argument("--chain", type=Path, help="certificates between it and the root, issuer order (PEM)")
    p.add_argument("--root", type=Path, help="a new root certificate (default: keep the authority's)")
    p.add_argument("--password-file", type=Path, help="password of a softkms key (default: the authority's)")
    p.add_argument("--authority", metavar="NAME",
                   help="install as the further issuing authority NAME (its `authorities` entry) instead")
    p.add_argument("--prefix", help="with --authority: serve its step-ca API under /PREFIX/")
    p.add_argument("--stage", action="store_true", help="stage it beside the current one (see stage-intermediate)")
    p.add_argument("--not-before", help="with --stage: switch to it at this time (RFC 3339)")
    p.set_defaults(func=_install)

    p = steps.add_parser("bootstrap", help="a new authority whose root, intermediate and OCSP keys are in a KMS/HSM")
    p.add_argument("--dir", required=True, type=Path, help="folder to write the authority's config and certificates")
    p.add_argument("--root-kms", required=True, metavar="URI", help="the root key")
    p.add_argument("--intermediate-kms", required=True, metavar="URI", help="the online intermediate key")
    p.add_argument("--ocsp-kms", required=True, metavar="URI", help="the OCSP responder key")
    p.add_argument("--name", default="Cirrus", help="CA name (used in the certificate subjects)")
    p.add_argument("--dns", action="append", default=None, help="DNS name or IP of the CA (repeatable)")
    p.add_argument("--provisioner", default="admin", help="name of the default JWK provisioner")
    p.add_argument("--address", default="127.0.0.1:9443", help="address `cirrus up` listens on")
    key_options(p)
    p.set_defaults(func=_bootstrap)

    from shared.cli import ca_rotation

    ca_rotation.register(steps, key_options=key_options)


def _fail(step: str, message: str) -> int:
    print(f"cirrus ca {step}: {message}", file=sys.stderr)
    return 1


def _keys(password_file: Path | None) -> KeyManagers:
    if password_file is not None and not password_file.is_file():
        raise CeremonyError(f"{password_file}: no such password file")
    return KeyManagers(password_file=password_file)


def _key_type(name: str | None) -> KeyType | None:
    return _KEY_TYPES[name] if name else None


def _check_out(path: Path) -> None:
    if path.exists():
        raise CeremonyError(f"{path} exists; refusing to overwrite it")
    if not path.parent.is_dir():
        raise CeremonyError(f"{path.parent}: no such directory")


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _read_pem_certs(path: Path) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except OSError as exc:
        raise CeremonyError(f"{path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CeremonyError(f"{path}: not a PEM certificate file") from exc
    return certs


def _guard(step: str, args: argparse.Namespace, action: Any) -> int:
    try:
        code: int = action(args)
        return code
    except (CeremonyError, ConfigError) as exc:
        return _fail(step, str(exc))


def _root(args: argparse.Namespace) -> int:
    def run(a: argparse.Namespace) -> int:
        _check_out(a.out)
        signer = open_or_create(_keys(a.password_file), a.kms, _key_type(a.create))
        cert = make_root(signer, common_name=f"{a.name} Root CA", organization=a.name, days=a.days,
                         now=SystemClock().now(), path_length=a.path_len)  # fmt: skip
        _write(a.out, cert.public_bytes(serialization.Encoding.PEM))
        print(f"root certificate: {a.out}\nfingerprint (SHA-256): {cert.fingerprint(_sha256()).hex()}")
        return 0

    return _guard("root", args, run)


def _intermediate_csr(args: argparse.Namespace) -> int:
    def run(a: argparse.Namespace) -> int:
        _check_out(a.out)
        signer = open_or_create(_keys(a.password_file), a.kms, _key_type(a.create))
        csr = make_intermediate_csr(signer, common_name=f"{a.name} Intermediate CA", organization=a.name)
        _write(a.out, csr.public_bytes(serialization.Encoding.PEM))
        print(f"intermediate CSR: {a.out} (take it to the root ceremony)")
        return 0

    return _guard("intermediate-csr", args, run)


def _sign_intermediate(args: argparse.Namespace) -> int:
    def run(a: argparse.Namespace) -> int:
        _check_out(a.out)
        try:
            csr = x509.load_pem_x509_csr(a.csr.read_bytes())
        except OSError as exc:
            raise CeremonyError(f"{a.csr}: {exc.strerror}") from exc
        except ValueError as exc:
            raise CeremonyError(f"{a.csr}: not a PEM certificate request") from exc
        root = _read_pem_certs(a.root)[0]
        signer = open_or_create(_keys(a.password_file), a.root_kms, None)
        constraints = Constraints(permitted_dns=a.permit_dns, excluded_dns=a.exclude_dns,
                                  permitted_ip=a.permit_ip, excluded_ip=a.exclude_ip)  # fmt: skip
        cert = sign_intermediate(signer, root, csr, days=a.days, now=SystemClock().now(),
                                 path_length=a.path_len, constraints=constraints)  # fmt: skip
        _write(a.out, cert.public_bytes(serialization.Encoding.PEM))
        print(f"intermediate certificate: {a.out} (serial {cert.serial_number})")
        return 0

    return _guard("sign-intermediate", args, run)


def _install(args: argparse.Namespace) -> int:
    if args.stage:  # rotation: beside the current intermediate, not instead of it
        from shared.cli.ca_rotation import run_stage

        return _guard("install", args, run_stage)
    if args.not_before:
        return _fail("install", "--not-before needs --stage")

    def run(a: argparse.Namespace) -> int:
        directory = a.dir.resolve()
        if not (directory / "config.json").is_file():
            raise CeremonyError(f"{directory}: not an authority (no config.json)")
        cert = _read_pem_certs(a.cert)[0]
        chain = _read_pem_certs(a.chain) if a.chain else []
        root = _read_pem_certs(a.root)[0] if a.root else None
        password = a.password_file or (directory / "secrets" / "password")
        uri = a.kms
        if uri.startswith("softkms:path=") and not uri.startswith("softkms:path=/"):
            uri_abs = "softkms:path=" + str(directory / uri.removeprefix("softkms:path="))
        else:
            uri_abs = uri
        signer = open_or_create(_keys(password if password.exists() else None), uri_abs, None)
        if a.authority is not None:
            if a.root is not None:
                raise CeremonyError("--root cannot change the root of a further authority")
            from shared.authority_install import install_authority

            written = install_authority(directory, name=a.authority, prefix=a.prefix, certificate=cert, chain=chain,
                                        key_uri=uri, signer=signer)  # fmt: skip
            print(f"installed: authority {a.authority!r} issues with {cert.subject.rfc4514_string()} ({written})")
            print(f"its provisioners are the `provisioners` list of its entry in {directory}/config.json")
            print("restart `cirrus up` (or redeploy the functions) to use it")
            return 0
        if a.prefix is not None:
            raise CeremonyError("--prefix needs --authority")
        install(directory, certificate=cert, chain=chain, key_uri=uri, signer=signer, root=root)
        print(f"installed: {directory}/config.json now issues with {cert.subject.rfc4514_string()}")
        print("restart `cirrus up` (or redeploy the functions) to use it")
        return 0

    return _guard("install", args, run)


def _bootstrap(args: argparse.Namespace) -> int:
    from shared.cli.init import InitError, prepare_folder, root_fingerprint, write_authority

    def run(a: argparse.Namespace) -> int:
        keys = _keys(a.password_file)
        key_type = _key_type(a.create)
        # Open (or create) every key before writing anything, so a wrong URI leaves no folder behind.
        root_signer = open_or_create(keys, a.root_kms, key_type)
        int_signer = open_or_create(keys, a.intermediate_kms, key_type)
        open_or_create(keys, a.ocsp_kms, key_type)
        now = SystemClock().now()
        root = make_root(root_signer, common_name=f"{a.name} Root CA", organization=a.name, days=3650, now=now)
        csr = make_intermediate_csr(int_signer, common_name=f"{a.name} Intermediate CA", organization=a.name)
        inter = sign_intermediate(root_signer, root, csr, days=3649, now=now)
        try:
            directory, dns, password = prepare_folder(a.dir, a.dns)
        except InitError as exc:
            raise CeremonyError(str(exc)) from exc
        write_authority(directory, root=root, intermediates=[inter], key_uri=a.intermediate_kms,
                        ocsp_key_uri=a.ocsp_kms, password=password, name=a.name, dns_names=dns,
                        provisioner_name=a.provisioner, address=a.address)  # fmt: skip
        print(f"Created an authority in {directory} with its keys in a key manager")
        print(f"  root fingerprint: {root_fingerprint(directory)}")
        print("  the root key is not needed online: disable it until the next ceremony")
        return 0

    return _guard("bootstrap", args, run)


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()

