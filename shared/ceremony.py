"""Key ceremonies: build a CA hierarchy whose keys live in a key manager.

A production root key is kept offline (an HSM, a KMS key that is disabled
between ceremonies, or an encrypted file on removable media); the online CA
holds only its intermediate key. The steps mirror how such hierarchies are
built by hand, so each runs where its key is:

1. `make_root`: a self-signed root from a key addressed by URI.
2. `make_intermediate_csr`: an intermediate key (in the online KMS/HSM) and a CSR
   for it; the CSR travels to the root, the key never does.
3. `sign_intermediate`: at the root, the operator's choices (path length, name
   constraints, validity) turn the CSR into a CA certificate.
4. `install`: the certificate and the key URI go into an authority's config,
   after checking that the key is the certified one and the chain reaches the
   root. The online CA never needs the root key.

Every step refuses to overwrite a key or a file it did not create.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from shared.errors import ConfigError
from shared.keys.adapter import as_private_key, signature_hash
from shared.keys.base import KeyManager, KeyType, Signer
from shared.x509.names import is_dns_name
from shared.x509.profile import Issuer, ca_name, intermediate, is_ca_key_type_ok, self_signed_root
from shared.x509.serials import random_serial

#: Leeway for clocks that differ between the ceremony machine and relying parties.
BACKDATE = dt.timedelta(minutes=1)


class CeremonyError(Exception):
    """A ceremony step cannot proceed (the message says why, for the operator)."""


def open_or_create(keys: KeyManager, uri: str, key_type: KeyType | None) -> Signer:
    """The key at `uri`: created when `key_type` is given (never overwriting), else opened."""
    try:
        return keys.create_key(uri, key_type) if key_type is not None else keys.signer(uri)
    except ConfigError as exc:
        raise CeremonyError(str(exc)) from exc


def make_root(
    signer: Signer, *, common_name: str, organization: str | None, days: int, now: dt.datetime,
    path_length: int = 1,
) -> x509.Certificate:  # fmt: skip
    """A self-signed root certificate for the signer's key.

    `path_length` 1 allows root -> issuing intermediate; 2 or more allow intermediates
    that certify further intermediates (several levels of issuing authorities).
    """
    _check_days(days)
    if not is_ca_key_type_ok(signer.public_key()):
        raise CeremonyError("the root key type cannot sign certificates")
    if not 1 <= path_length <= 8:
        raise CeremonyError("a root's path length must be between 1 and 8")
    return self_signed_root(
        key=as_private_key(signer),
        subject=ca_name(common_name, organization),
        serial=random_serial(),
        not_before=now - BACKDATE,
        not_after=now + dt.timedelta(days=days),
        path_length=path_length,
    )


def make_intermediate_csr(
    signer: Signer, *, common_name: str, organization: str | None
) -> x509.CertificateSigningRequest:
    """A CSR for an intermediate key, signed by that key (proof of possession)."""
    key = as_private_key(signer)
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(ca_name(common_name, organization))
        .sign(key, signature_hash(signer.public_key()))
    )


@dataclass(frozen=True, slots=True)
class Constraints:
    """What the root operator allows the intermediate to issue for (RFC 5280 s.4.2.1.10)."""

    permitted_dns: Sequence[str] = ()
    excluded_dns: Sequence[str] = ()
    permitted_ip: Sequence[str] = ()
    excluded_ip: Sequence[str] = ()

    def extension(self) -> x509.NameConstraints | None:
        """The NameConstraints value, or None when nothing is constrained."""
        permitted = [*map(_dns, self.permitted_dns), *map(_cidr, self.permitted_ip)]
        excluded = [*map(_dns, self.excluded_dns), *map(_cidr, self.excluded_ip)]
        if not permitted and not excluded:
            return None
        return x509.NameConstraints(permitted_subtrees=permitted or None, excluded_subtrees=excluded or None)


def _dns(name: str) -> x509.GeneralName:
    # A leading dot is OpenSSL's "subdomains only" form; RFC 5280 matches the name and its subdomains.
    bare = name.lower().removeprefix(".")
    if not is_dns_name(bare, allow_wildcard=False):
        raise CeremonyError(f"not a DNS name constraint: {name!r}")
    return x509.DNSName(bare)


def _cidr(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_network(value, strict=True))
    except ValueError as exc:
        raise CeremonyError(f"not a CIDR block: {value!r}") from exc


def sign_intermediate(
    root_signer: Signer,
    root: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    *,
    days: int,
    now: dt.datetime,
    path_length: int | None = 0,
    constraints: Constraints = Constraints(),
) -> x509.Certificate:
    """Certify the CSR's key as an intermediate CA under `root`.

    The CSR's signature must verify (the requester holds the key); the
    validity may not outlast the root's; the root key must be the one
    `root` certifies.
    """
    _check_days(days)
    if root_signer.public_key() != root.public_key():
        raise CeremonyError("the root key does not match the root certificate")
    if not csr.is_signature_valid:
        raise CeremonyError("the CSR's signature does not verify; it was not made with its key")
    public = csr.public_key()
    if not is_ca_key_type_ok(public):  # type: ignore[arg-type]
        raise CeremonyError("the CSR's key type cannot be a CA key")
    if path_length is not None and not 0 <= path_length <= 8:
        raise CeremonyError("path length must be between 0 and 8")
    root_bc = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    if root_bc.path_length is not None and path_length is not None and path_length >= root_bc.path_length:
        raise CeremonyError(f"the root allows path length below {root_bc.path_length} only")
    if not csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        raise CeremonyError("the CSR's subject has no common name")
    not_after = now + dt.timedelta(days=days)
    if not_after > root.not_valid_after_utc:
        expires = f"{root.not_valid_after_utc:%Y-%m-%d}"
        raise CeremonyError(f"the intermediate may not outlast the root (root expires {expires})")
    return intermediate(
        Issuer.of(root, as_private_key(root_signer)),
        public_key=public,  # type: ignore[arg-type]
        subject=csr.subject,
        serial=random_serial(),
        not_before=now - BACKDATE,
        not_after=not_after,
        path_length=path_length,
        name_constraints=constraints.extension(),
    )


def verify_chain(leaf_ca: x509.Certificate, chain: Sequence[x509.Certificate], root: x509.Certificate) -> None:
    """Check that `leaf_ca` reaches `root` through `chain` (issuer order), each a CA."""
    path = [leaf_ca, *chain, root]
    for child, parent in itertools.pairwise(path):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as exc:
            names = child.subject.rfc4514_string(), parent.subject.rfc4514_string()
            raise CeremonyError("{} is not issued by {}".format(*names)) from exc
    for cert in path:
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise CeremonyError(f"{cert.subject.rfc4514_string()} is not a CA certificate")


def install(
    directory: Path,
    *,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    key_uri: str,
    signer: Signer,
    root: x509.Certificate | None,
) -> None:
    """Point an authority's config at a new intermediate (and its key URI).

    The current root stays unless `root` is given. The files are replaced
    atomically; the old intermediate is kept beside it as `.previous`.
    """
    config_path = directory / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise CeremonyError(f"{config_path}: not an authority's config.json") from exc
    if not isinstance(config, dict) or not all(isinstance(config.get(k), str) for k in ("root", "crt")):
        raise CeremonyError(f"{config_path}: has no root/crt entries")
    root_path = directory / config["root"]
    if root is None:
        try:
            root = x509.load_pem_x509_certificates(root_path.read_bytes())[0]
        except (OSError, ValueError, IndexError) as exc:
            raise CeremonyError(f"{root_path}: cannot read the authority's root") from exc
    if signer.public_key() != certificate.public_key():
        raise CeremonyError("the key at the URI is not the one the certificate certifies")
    verify_chain(certificate, chain, root)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (certificate, *chain))
    crt_path = directory / config["crt"]
    if crt_path.exists():
        _atomic_write(crt_path.with_name(crt_path.name + ".previous"), crt_path.read_bytes())
    _atomic_write(crt_path, pem)
    _atomic_write(root_path, root.public_bytes(serialization.Encoding.PEM))
    config["key"] = key_uri
    _atomic_write(config_path, (json.dumps(config, indent=2) + "\n").encode())


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _check_days(days: int) -> None:
    if not 1 <= days <= 36500:
        raise CeremonyError("validity must be between 1 and 36500 days")
