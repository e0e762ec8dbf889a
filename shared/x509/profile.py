"""Certificate profiles: root, intermediate and the default leaf.

The default leaf meets standards.md 3.1 and 3.7: v3, random serial, issuer DN
copied byte-for-byte from the issuing certificate, AKI = issuer SKI, KU by key
type (digitalSignature; RSA adds keyEncipherment), EKU serverAuth+clientAuth
(clientAuth keeps mTLS renewal working, as in step-ca), no basicConstraints
cA, SAN always present. We include SKI in leaves too (the PKIX "should"; the
BR "not recommended" is for public TLS, and step-ca does the same). Times are
whole seconds, so encodings never carry fractions (X509-04).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from shared.keys.adapter import IssuerKey, signature_hash
from shared.keys.base import PublicKey

STEP_PROVISIONER_OID = x509.ObjectIdentifier("1.3.6.1.4.1.37476.9000.64.1")
PROVISIONER_TYPE_NUMBERS = {
    "JWK": 1,
    "OIDC": 2,
    "GCP": 3,
    "AWS": 4,
    "Azure": 5,
    "ACME": 6,
    "X5C": 7,
    "K8sSA": 8,
    "SSHPOP": 9,
    "SCEP": 10,
    "Nebula": 11,
}


@dataclass(frozen=True, slots=True)
class Issuer:
    """An issuing authority as the builders see it: its certificate and signing key."""

    certificate: x509.Certificate
    key: IssuerKey
    ski: x509.SubjectKeyIdentifier
    aki: x509.Extension[x509.ExtensionType]  # the leaves' AKI, encoded once (see `encoded`)
    hash: hashes.SHA256 | hashes.SHA384 | None  # what its key signs with (`signature_hash`), found once

    @classmethod
    def of(cls, certificate: x509.Certificate, key: IssuerKey) -> Issuer:
        """Build from a CA certificate, reading its SKI (or computing it)."""
        try:
            ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        except x509.ExtensionNotFound:
            ski = x509.SubjectKeyIdentifier.from_public_key(certificate.public_key())
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
        return cls(
            certificate=certificate,
            key=key,
            ski=ski,
            aki=encoded(x509.Extension(aki.oid, False, aki)),
            hash=signature_hash(key.public_key()),
        )


def whole_seconds(t: dt.datetime) -> dt.datetime:
    """Drop microseconds: certificate times carry none."""
    return t.replace(microsecond=0)


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(body)) + body


def encoded(ext: x509.Extension[x509.ExtensionType]) -> x509.Extension[x509.ExtensionType]:
    """The same extension with its value DER-encoded once, by cryptography itself.

    Why: `CertificateBuilder` walks every extension object's Python attributes
    from Rust on each signing, which cost about 60 us of a leaf's ~110 us build
    and sign here; most leaf extensions are the same for every certificate of
    an authority and provisioner. Handing the builder cryptography's own
    encoding (`ExtensionType.public_bytes()`) as an `UnrecognizedExtension`
    gives byte-identical certificates that parse back to the typed extensions.
    """
    if isinstance(ext.value, x509.UnrecognizedExtension):
        return ext
    return x509.Extension(ext.oid, ext.critical, x509.UnrecognizedExtension(ext.oid, ext.value.public_bytes()))


@functools.lru_cache(maxsize=4096)
def provisioner_extension(ptype: str, name: str, credential_id: str) -> x509.Extension[x509.UnrecognizedExtension]:
    """step-ca's provisioner extension (OID ...37476.9000.64.1), non-critical.

    DER: SEQUENCE { type INTEGER, name OCTET STRING, credentialID OCTET STRING }.
    Hand-encoded because it is three primitives and cryptography has no
    generic DER encoder. Cached: the same few provisioners sign every leaf.
    """
    number = PROVISIONER_TYPE_NUMBERS.get(ptype, 0)
    body = _tlv(0x02, number.to_bytes(1, "big")) + _tlv(0x04, name.encode()) + _tlv(0x04, credential_id.encode())
    value = x509.UnrecognizedExtension(STEP_PROVISIONER_OID, _tlv(0x30, body))
    return x509.Extension(STEP_PROVISIONER_OID, False, value)


def _key_usage(key_encipherment: bool) -> x509.KeyUsage:
    """A leaf's KU: consistent with the key type (X509-10), keyEncipherment for RSA keys only."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


# The constant parts of a leaf, encoded once each (see `encoded`). Bounded: the
# arguments come from configuration (URLs, CRL shards), not from requests.
@functools.lru_cache(maxsize=8)
def _leaf_constants(key_encipherment: bool) -> tuple[x509.Extension[x509.ExtensionType], ...]:
    ku = _key_usage(key_encipherment)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    return (encoded(x509.Extension(ku.oid, True, ku)), encoded(x509.Extension(eku.oid, False, eku)))


@functools.lru_cache(maxsize=1024)
def _crl_distribution_point(url: str) -> x509.Extension[x509.ExtensionType]:
    cdp = x509.CRLDistributionPoints([x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)])
    return encoded(x509.Extension(cdp.oid, False, cdp))


@functools.lru_cache(maxsize=64)
def _authority_information_access(
    ocsp_url: str | None, ca_issuers_url: str | None
) -> x509.Extension[x509.ExtensionType]:
    access: list[x509.AccessDescription] = []
    if ocsp_url:
        access.append(
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
        )
    if ca_issuers_url:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(ca_issuers_url)
            )
        )
    aia = x509.AuthorityInformationAccess(access)
    return encoded(x509.Extension(aia.oid, False, aia))


def default_leaf_extensions(
    *,
    public_key: PublicKey,
    san: x509.SubjectAlternativeName,
    san_critical: bool,
    provisioner: x509.Extension[x509.UnrecognizedExtension] | None,
    crl_url: str | None = None,
    ocsp_url: str | None = None,
    ca_issuers_url: str | None = None,
) -> list[x509.Extension[x509.ExtensionType]]:
    """The default leaf's extensions, minus SKI/AKI (added at signing).

    All but the SAN come pre-encoded from small caches (see `encoded`).
    """
    ku, eku = _leaf_constants(isinstance(public_key, rsa.RSAPublicKey))
    exts: list[x509.Extension[x509.ExtensionType]] = [ku, eku, x509.Extension(san.oid, san_critical, san)]
    exts += ca_leaf_extensions(provisioner=provisioner, crl_url=crl_url, ocsp_url=ocsp_url,
                               ca_issuers_url=ca_issuers_url)
    return exts


def ca_leaf_extensions(
    *,
    provisioner: x509.Extension[x509.UnrecognizedExtension] | None,
    crl_url: str | None = None,
    ocsp_url: str | None = None,
    ca_issuers_url: str | None = None,
) -> list[x509.Extension[x509.ExtensionType]]:
    """What the CA adds after a leaf's own extensions (default profile or template): CDP, AIA, provisioner."""
    exts: list[x509.Extension[x509.ExtensionType]] = []
    if crl_url:
        exts.append(_crl_distribution_point(crl_url))
    if ocsp_url or ca_issuers_url:
        exts.append(_authority_information_access(ocsp_url or None, ca_issuers_url or None))
    if provisioner is not None:
        exts.append(provisioner)
    return exts


_KEY_IDS = frozenset({x509.SubjectKeyIdentifier.oid, x509.AuthorityKeyIdentifier.oid})
_SKI_OID = x509.SubjectKeyIdentifier.oid
_X962 = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def subject_key_identifier(public_key: PublicKey) -> x509.Extension[x509.ExtensionType]:
    """The SKI extension (RFC 5280 s.4.2.1.2, method 1: SHA-1 of the subjectPublicKey bits), encoded.

    For EC keys, the usual leaf, the value is computed and DER-encoded here: an OCTET
    STRING of 20 bytes is two header bytes, and cryptography's own route (ABC checks, a
    `SubjectKeyIdentifier` object, then `public_bytes()` for `encoded`) cost about 10 us of
    a leaf in a worker. The bits of an EC key are its X9.62 uncompressed point, which is
    what cryptography hashes too; a test holds the two to the same bytes for every key type.
    """
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        digest = hashlib.sha1(public_key.public_bytes(*_X962)).digest()  # noqa: S324 - RFC 5280's key id, not a MAC
        return x509.Extension(_SKI_OID, False, x509.UnrecognizedExtension(_SKI_OID, b"\x04\x14" + digest))
    return encoded(x509.Extension(_SKI_OID, False, x509.SubjectKeyIdentifier.from_public_key(public_key)))


def sign_certificate(
    issuer: Issuer,
    *,
    subject: x509.Name,
    public_key: PublicKey,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
    extensions: Sequence[x509.Extension[x509.ExtensionType]],
) -> x509.Certificate:
    """Sign a certificate under `issuer`, adding SKI and AKI.

    Extensions named SKI/AKI in `extensions` are replaced, so renewals can pass
    the old certificate's extensions through unchanged.

    The builder is given everything at once (its constructor) rather than
    through its chained setters, which re-validate and copy on every call; the
    checks those setters made that can fail for our inputs are made here.
    """
    if not 0 < serial < (1 << 159):
        raise ValueError("serial number must be positive and at most 159 bits")
    start, end = whole_seconds(not_before), whole_seconds(not_after)
    if end < start:
        raise ValueError("not_after is before not_before")
    exts = [e for e in extensions if e.oid not in _KEY_IDS]
    exts.append(subject_key_identifier(public_key))
    exts.append(issuer.aki)
    if len({e.oid for e in exts}) != len(exts):
        raise ValueError("duplicate extension")
    builder = x509.CertificateBuilder(
        issuer_name=issuer.certificate.subject,
        subject_name=subject,
        public_key=public_key,
        serial_number=serial,
        not_valid_before=start,
        not_valid_after=end,
        extensions=exts,
    )
    return builder.sign(issuer.key, issuer.hash)


def ca_name(common_name: str, organization: str | None = None) -> x509.Name:
    """A CA subject DN."""
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _ca_extensions(path_length: int | None) -> list[x509.Extension[x509.ExtensionType]]:
    ku = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    bc = x509.BasicConstraints(ca=True, path_length=path_length)
    return [x509.Extension(bc.oid, True, bc), x509.Extension(ku.oid, True, ku)]


def self_signed_root(
    *, key: IssuerKey, subject: x509.Name, serial: int, not_before: dt.datetime, not_after: dt.datetime,
    path_length: int = 1,
) -> x509.Certificate:
    """A self-signed root (no AKI needed, X509-07): pathLen 1 (root -> issuing CA) unless deeper."""
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(whole_seconds(not_before))
        .not_valid_after(whole_seconds(not_after))
    )
    for ext in _ca_extensions(path_length):
        builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
    return builder.sign(key, signature_hash(public))


def intermediate(
    issuer: Issuer,
    *,
    public_key: PublicKey,
    subject: x509.Name,
    serial: int,
    not_before: dt.datetime,
    not_after: dt.datetime,
    path_length: int | None = 0,
    name_constraints: x509.NameConstraints | None = None,
) -> x509.Certificate:
    """An intermediate (issuing) CA certificate signed by `issuer`.

    Name constraints, when given, are critical (RFC 5280 s.4.2.1.10 requires it of CAs).
    """
    extensions = _ca_extensions(path_length)
    if name_constraints is not None:
        extensions.append(x509.Extension(name_constraints.oid, True, name_constraints))
    return sign_certificate(
        issuer,
        subject=subject,
        public_key=public_key,
        serial=serial,
        not_before=not_before,
        not_after=not_after,
        extensions=extensions,
    )


def is_ca_key_type_ok(public_key: PublicKey) -> bool:
    """Whether Cirrus can sign with such a CA key."""
    return isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey)


__all__ = [
    "STEP_PROVISIONER_OID",
    "Issuer",
    "ca_name",
    "default_leaf_extensions",
    "hashes",
    "intermediate",
    "provisioner_extension",
    "self_signed_root",
    "sign_certificate",
    "whole_seconds",
]
