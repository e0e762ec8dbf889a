"""The leaf profile's pre-encoded extensions give the certificate cryptography's typed builder gives."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from shared.x509.profile import (
    Issuer,
    default_leaf_extensions,
    provisioner_extension,
    sign_certificate,
)

NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=dt.UTC)


def _issuer() -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test Intermediate")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .sign(key, hashes.SHA256())
    )
    return Issuer.of(cert, key)


def _typed_reference(
    issuer: Issuer, public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey, san: x509.SubjectAlternativeName
) -> x509.CertificateBuilder:
    """The same leaf built the long way: typed extension objects through the chained setters."""
    ku = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    eku = x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH])
    cdp = x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier("http://ca.test/crl/1.crl")], None, None, None)]
    )
    aia = x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier("http://ca.test/ocsp")
            ),
            x509.AccessDescription(
                x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier("http://ca.test/int.crt")
            ),
        ]
    )
    prov = provisioner_extension("JWK", "admin", "kid-1")
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc.example.com")]))
        .issuer_name(issuer.certificate.subject)
        .public_key(public_key)
        .serial_number(0x1234567890ABCDEF)
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(hours=24))
        .add_extension(ku, True)
        .add_extension(eku, False)
        .add_extension(san, False)
        .add_extension(cdp, False)
        .add_extension(aia, False)
        .add_extension(prov.value, False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer.ski), False)
    )


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_pre_encoded_leaf_is_byte_identical_to_the_typed_build(key_type: str) -> None:
    issuer = _issuer()
    public_key = (
        ec.generate_private_key(ec.SECP256R1()).public_key()
        if key_type == "ec"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    )
    san = x509.SubjectAlternativeName([x509.DNSName("svc.example.com"), x509.DNSName("api.example.com")])
    exts = default_leaf_extensions(
        public_key=public_key,
        san=san,
        san_critical=False,
        provisioner=provisioner_extension("JWK", "admin", "kid-1"),
        crl_url="http://ca.test/crl/1.crl",
        ocsp_url="http://ca.test/ocsp",
        ca_issuers_url="http://ca.test/int.crt",
    )
    ours = sign_certificate(
        issuer,
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "svc.example.com")]),
        public_key=public_key,
        serial=0x1234567890ABCDEF,
        not_before=NOW,
        not_after=NOW + dt.timedelta(hours=24),
        extensions=exts,
    )
    reference = _typed_reference(issuer, public_key, san).sign(issuer.key, hashes.SHA256())
    assert ours.tbs_certificate_bytes == reference.tbs_certificate_bytes
    # And they read back as the typed extensions, not as opaque ones.
    ku = ours.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_encipherment is (key_type == "rsa")
    assert ours.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == (
        issuer.ski.digest
    )


def test_sign_certificate_refuses_what_the_builder_setters_refused() -> None:
    issuer = _issuer()
    pub = ec.generate_private_key(ec.SECP256R1()).public_key()
    san = x509.SubjectAlternativeName([x509.DNSName("a.example.com")])
    exts = [x509.Extension(san.oid, False, san)]
    common = {"subject": x509.Name([]), "public_key": pub, "extensions": exts}
    with pytest.raises(ValueError, match="serial"):
        sign_certificate(issuer, serial=0, not_before=NOW, not_after=NOW, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="serial"):
        sign_certificate(issuer, serial=1 << 159, not_before=NOW, not_after=NOW, **common)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="before"):
        sign_certificate(
            issuer,
            serial=5,
            not_before=NOW,
            not_after=NOW - dt.timedelta(seconds=1),
            **common,  # type: ignore[arg-type]
        )
    with pytest.raises(ValueError, match="duplicate"):
        sign_certificate(
            issuer,
            subject=x509.Name([]),
            public_key=pub,
            serial=5,
            not_before=NOW,
            not_after=NOW,
            extensions=[*exts, *exts],
        )
    # SKI/AKI passed in (a renewal passing the old certificate's extensions) are replaced, not duplicated.
    old_ski = x509.SubjectKeyIdentifier(b"\x01" * 20)
    cert = sign_certificate(
        issuer,
        subject=x509.Name([]),
        public_key=pub,
        serial=5,
        not_before=NOW,
        not_after=NOW,
        extensions=[*exts, x509.Extension(old_ski.oid, False, old_ski)],
    )
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value != old_ski


@pytest.mark.parametrize("kind", ["p256", "p384", "p521", "rsa", "ed25519"])
def test_subject_key_identifier_is_cryptographys_for_every_key_type(kind: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from shared.x509.profile import subject_key_identifier

    key = {
        "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
        "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
        "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
        "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "ed25519": ed25519.Ed25519PrivateKey.generate,
    }[kind]().public_key()
    ext = subject_key_identifier(key)
    assert ext.oid == x509.SubjectKeyIdentifier.oid and not ext.critical
    expected = x509.SubjectKeyIdentifier.from_public_key(key)
    assert ext.value.public_bytes() == expected.public_bytes()
    cert = sign_certificate(
        _issuer(),
        subject=x509.Name([]),
        public_key=key,
        serial=99,
        not_before=NOW,
        not_after=NOW + dt.timedelta(hours=1),
        extensions=[],
    )
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value == expected
