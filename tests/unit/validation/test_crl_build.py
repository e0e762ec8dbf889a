"""The fast CRL builder against cryptography's builder, openssl and pkilint."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from shared.keys.base import PublicKey
from shared.keys.softkms import SoftSigner
from shared.validation import der
from shared.validation.crl import CRLBuilder, CRLScope, subject_der
from tests.unit.validation.va_pki import T0, make_chain

REASON_NAMES = {
    1: "keyCompromise",
    3: "affiliationChanged",
    4: "superseded",
    5: "cessationOfOperation",
    9: "privilegeWithdrawn",
}


class SignOnly:
    """A key that exposes only sign() and public_key(), like a KMS key."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self.calls = 0

    def public_key(self) -> PublicKey:
        return self._key.public_key()

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def _self_signed(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey,
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Differential CA"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cirrus"),
        ]
    )
    alg = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(T0 - dt.timedelta(days=1))
        .not_valid_after(T0 + dt.timedelta(days=900))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, alg)
    )


def _reference(
    cert: x509.Certificate,
    key: object,
    entries: list[tuple[int, dt.datetime, int]],
    *,
    number: int,
    idp: str | None,
) -> x509.CertificateRevocationList:
    """The same CRL through cryptography's (quadratic) builder."""
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(cert.subject)
        .last_update(T0)
        .next_update(T0 + dt.timedelta(days=7))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .add_extension(x509.CRLNumber(number), False)
    )
    if idp:
        b = b.add_extension(
            x509.IssuingDistributionPoint(
                [x509.UniformResourceIdentifier(idp)], None, True, False, None, False, False
            ),
            True,
        )
    for serial, when, code in entries:
        rb = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
        if code in REASON_NAMES:
            rb = rb.add_extension(x509.CRLReason(x509.ReasonFlags(REASON_NAMES[code])), False)
        b = b.add_revoked_certificate(rb.build())
    alg = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return b.sign(key, alg)  # type: ignore[arg-type]


def _entries(n: int) -> list[tuple[int, dt.datetime, int]]:
    # every reason code, including ones the BR forbid (0, 2, 6, 8, 10: written without reason)
    return [
        (secrets.randbits(159) | 1, T0 - dt.timedelta(minutes=i, microseconds=i), i % 11)
        for i in range(n)
    ] + [(1, dt.datetime(2051, 1, 1, tzinfo=dt.UTC), 1)]


@pytest.mark.parametrize("idp", [None, "http://crl.example/crl/ca/3.crl"])
def test_byte_identical_to_cryptography_ed25519(idp: str | None) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert = _self_signed(key)
    entries = _entries(60)
    mine = CRLBuilder(certificate=cert, signer=SoftSigner(key)).build(
        entries,
        number=42,
        this_update=T0,
        next_update=T0 + dt.timedelta(days=7),
        scope=CRLScope(distribution_point=idp),
    )
    ref = _reference(
        cert, key, [(s, w.replace(microsecond=0), c) for s, w, c in entries], number=42, idp=idp
    )
    # Ed25519 is deterministic: the whole CRL, signature included, must match
    assert mine == ref.public_bytes(serialization.Encoding.DER)


def test_tbs_identical_for_ecdsa_and_rsa_with_sign_only_key() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(ec_key)
    signer = SignOnly(ec_key)
    entries = _entries(30)
    mine = x509.load_der_x509_crl(
        CRLBuilder(certificate=cert, signer=signer).build(
            entries, number=5, this_update=T0, next_update=T0 + dt.timedelta(days=7)
        )
    )
    ref = _reference(
        cert, ec_key, [(s, w.replace(microsecond=0), c) for s, w, c in entries], number=5, idp=None
    )
    assert mine.tbs_certlist_bytes == ref.tbs_certlist_bytes
    assert mine.is_signature_valid(ec_key.public_key())
    assert signer.calls == 1  # one KMS call per CRL

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_cert = _self_signed(rsa_key)
    rsa_crl = CRLBuilder(certificate=rsa_cert, signer=SoftSigner(rsa_key)).build(
        entries, number=5, this_update=T0, next_update=T0 + dt.timedelta(days=7)
    )
    ref = _reference(
        rsa_cert,
        rsa_key,
        [(s, w.replace(microsecond=0), c) for s, w, c in entries],
        number=5,
        idp=None,
    )
    assert rsa_crl == ref.public_bytes(serialization.Encoding.DER)  # PKCS#1 v1.5 is deterministic


def test_reasons_follow_br06_and_empty_list_is_absent() -> None:
    chain = make_chain()
    builder = CRLBuilder(certificate=chain.ca, signer=chain.ca_signer)
    entries = [(100 + code, T0, code) for code in range(11)]
    crl = x509.load_der_x509_crl(
        builder.build(entries, number=1, this_update=T0, next_update=T0 + dt.timedelta(days=1))
    )
    got = {}
    for rc in crl:
        try:
            got[rc.serial_number] = rc.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            got[rc.serial_number] = None
    assert got[100] is None  # unspecified is omitted
    assert got[106] is None  # certificateHold never appears
    assert got[102] is None  # cACompromise is not for leaf CRLs
    assert got[101] == x509.ReasonFlags.key_compromise
    assert got[109] == x509.ReasonFlags.privilege_withdrawn
    arl = x509.load_der_x509_crl(
        builder.build(
            entries,
            number=2,
            this_update=T0,
            next_update=T0 + dt.timedelta(days=1),
            scope=CRLScope(authority=True),
        )
    )
    assert (
        arl.get_revoked_certificate_by_serial_number(102)
        .extensions.get_extension_for_class(  # type: ignore[union-attr]
            x509.CRLReason
        )
        .value.reason
        == x509.ReasonFlags.ca_compromise
    )

    empty = builder.build([], number=3, this_update=T0, next_update=T0 + dt.timedelta(days=1))
    start, end = der.expect(empty, 0, der.SEQUENCE)
    tbs_start, tbs_end = der.expect(empty, start, der.SEQUENCE, end)
    tags = []
    pos = tbs_start
    while pos < tbs_end:
        tag, _, pos = der.read_tlv(empty, pos, tbs_end)
        tags.append(tag)
    assert tags == [0x02, 0x30, 0x30, 0x17, 0x17, 0xA0]  # no empty revokedCertificates
    parsed = x509.load_der_x509_crl(empty)
    assert parsed.issuer.public_bytes() == subject_der(chain.ca) == chain.ca.subject.public_bytes()
    assert parsed.is_signature_valid(chain.ca_key.public_key())


def test_rejects_bad_inputs() -> None:
    chain = make_chain()
    with pytest.raises(ValueError, match="not the CA certificate's key"):
        CRLBuilder(certificate=chain.ca, signer=chain.root_signer)
    builder = CRLBuilder(certificate=chain.ca, signer=chain.ca_signer)
    with pytest.raises(ValueError, match="nextUpdate"):
        builder.build([], number=1, this_update=T0, next_update=T0)
    with pytest.raises(ValueError, match="outside"):
        builder.build(
            [(1 << 159, T0, 0)], number=1, this_update=T0, next_update=T0 + dt.timedelta(days=1)
        )
    with pytest.raises(ValueError, match="cRLNumber"):
        builder.build([], number=0, this_update=T0, next_update=T0 + dt.timedelta(days=1))


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def test_openssl_verifies_signature_and_chain(tmp_path: Path) -> None:
    chain = make_chain()
    paths = chain.write_pem(tmp_path)
    crl = CRLBuilder(certificate=chain.ca, signer=chain.ca_signer).build(
        [(12345, T0, 1)], number=9, this_update=T0, next_update=T0 + dt.timedelta(days=7)
    )
    (tmp_path / "c.der").write_bytes(crl)
    res = _openssl(
        "crl",
        "-inform",
        "DER",
        "-in",
        str(tmp_path / "c.der"),
        "-noout",
        "-CAfile",
        str(paths["ca"]),
        "-verify",
    )
    assert res.returncode == 0, res.stderr
    assert "verify OK" in res.stderr + res.stdout
    text = _openssl(
        "crl", "-inform", "DER", "-in", str(tmp_path / "c.der"), "-noout", "-text"
    ).stdout
    assert "Version 2" in text and "X509v3 CRL Number" in text and "Key Compromise" in text
    # a CRL signed by another key is refused
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = make_chain().write_pem(other_dir)
    res = _openssl(
        "crl",
        "-inform",
        "DER",
        "-in",
        str(tmp_path / "c.der"),
        "-noout",
        "-CAfile",
        str(other["ca"]),
        "-verify",
    )
    assert "verify OK" not in res.stderr + res.stdout


def lint_crl(path: Path, *, kind: str = "CRL") -> list[dict[str, object]]:
    """pkilint findings of severity ERROR or worse, under the PKIX and the BR profiles."""
    exe = shutil.which("lint_crl")
    assert exe, "pkilint is required (pip install pkilint)"
    found: list[dict[str, object]] = []
    for profile in ("PKIX", "BR"):
        res = subprocess.run(
            [exe, "lint", "-t", kind, "-p", profile, "-s", "ERROR", "-f", "JSON", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.stdout.strip(), res.stderr
        found.extend(_findings(json.loads(res.stdout)))
    return found


def _findings(doc: object) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    if isinstance(doc, dict):
        if "severity" in doc and "code" in doc:
            out.append(doc)
        for v in doc.values():
            out.extend(_findings(v))
    elif isinstance(doc, list):
        for v in doc:
            out.extend(_findings(v))
    return out


@pytest.mark.parametrize("shard_url", [None, "http://127.0.0.1:8080/crl/intermediate/1.crl"])
def test_pkilint_finds_no_error(tmp_path: Path, shard_url: str | None) -> None:
    chain = make_chain()
    crl = CRLBuilder(certificate=chain.ca, signer=chain.ca_signer).build(
        [(secrets.randbits(127) | 1, T0, c) for c in (0, 1, 3, 4, 5, 9)],
        number=3,
        this_update=T0,
        next_update=T0 + dt.timedelta(days=7),
        scope=CRLScope(distribution_point=shard_url),
    )
    path = tmp_path / "c.crl"
    path.write_bytes(crl)
    assert lint_crl(path) == []
    arl = CRLBuilder(certificate=chain.root, signer=chain.root_signer).build(
        [(chain.ca.serial_number, T0, 2)],
        number=1,
        this_update=T0,
        next_update=T0 + dt.timedelta(days=30),
        scope=CRLScope(authority=True),
    )
    path.write_bytes(arl)
    assert lint_crl(path, kind="ARL") == []


def test_pkilint_reports_errors_it_should(tmp_path: Path) -> None:
    """The lint gate can fail: a CRL without nextUpdate is an error for pkilint."""
    chain = make_chain()
    bad = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(chain.ca.subject)
        .last_update(T0)
        .next_update(T0 + dt.timedelta(days=1))
        .add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(5).revocation_date(T0).build()
        )
        .sign(chain.ca_key, hashes.SHA256())
    )  # no AKI, no cRLNumber
    path = tmp_path / "bad.crl"
    path.write_bytes(bad.public_bytes(serialization.Encoding.DER))
    assert lint_crl(path) != []
