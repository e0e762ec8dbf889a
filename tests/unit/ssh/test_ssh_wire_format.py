"""The hand-written OpenSSH wire format, checked by OpenSSH's own ssh-keygen.

Certificates signed through `Signer.sign` by every CA key type the KeyManager
holds must be listed by `ssh-keygen -L`; KRLs must be read by `ssh-keygen -Q`;
malformed keys and certificates must be refused with `WireError`, never
another exception.
"""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.keys.softkms import SoftSigner
from shared.ssh.certificate import (
    DEFAULT_USER_EXTENSIONS,
    HOST_CERT,
    USER_CERT,
    build_and_sign,
    parse_certificate,
)
from shared.ssh.krl import build_krl
from shared.ssh.wire import (
    WireError,
    mpint,
    parse_authorized_key,
    parse_public_key,
    public_key_blob,
    string,
)

CA_KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "rsa": lambda: rsa.generate_private_key(65537, 2048),
}


@pytest.fixture(scope="module")
def subject_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name, args in {"ed25519": ["-t", "ed25519"], "p256": ["-t", "ecdsa"], "p384": ["-t", "ecdsa", "-b", "384"],
                       "rsa": ["-t", "rsa", "-b", "2048"]}.items():
        subprocess.run(["ssh-keygen", "-q", "-N", "", "-f", str(d / name), *args], check=True)
        out[name] = d / f"{name}.pub"
    return out


def _listing(tmp_path: Path, line: str) -> str:
    path = tmp_path / "c-cert.pub"
    path.write_text(line + "\n")
    return subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, check=True).stdout


@pytest.mark.parametrize("ca_type", sorted(CA_KEYS))
def test_every_ca_key_type_signs_what_ssh_keygen_reads(ca_type: str, subject_keys, tmp_path: Path) -> None:
    ca = SoftSigner(CA_KEYS[ca_type]())
    now = int(time.time())
    for name, pub in subject_keys.items():
        key = parse_authorized_key(pub.read_text())
        cert = build_and_sign(
            key=key, serial=2**63 + 5, cert_type=HOST_CERT if name == "p384" else USER_CERT, key_id=f"id-{name}",
            principals=("a", "b"), valid_after=now - 60, valid_before=now + 3600,
            critical_options={"force-command": "uptime", "source-address": "127.0.0.1/32"},
            extensions=DEFAULT_USER_EXTENSIONS, ca=ca,
        )
        shown = _listing(tmp_path, cert.authorized_line())
        assert f"Serial: {2**63 + 5}" in shown and f'Key ID: "id-{name}"' in shown
        assert "force-command uptime" in shown and "source-address 127.0.0.1/32" in shown
        expected_alg = {"rsa": "rsa-sha2-256"}.get(ca_type)
        if expected_alg:
            assert f"(using {expected_alg})" in shown
        parsed = parse_certificate(cert.blob)
        assert parsed.signed_by(ca.public_key()) and parsed == cert
        other = SoftSigner(ed25519.Ed25519PrivateKey.generate())
        assert not parsed.signed_by(other.public_key())


def test_a_tampered_certificate_does_not_verify(subject_keys) -> None:
    ca = SoftSigner(ec.generate_private_key(ec.SECP256R1()))
    key = parse_authorized_key(subject_keys["ed25519"].read_text())
    cert = build_and_sign(key=key, serial=1, cert_type=USER_CERT, key_id="k", principals=("root",), valid_after=0,
                          valid_before=2**64 - 1, critical_options={}, extensions={}, ca=ca)
    assert cert.not_after.year == 9999 and cert.not_before.year == 1970  # "forever" maps to a datetime
    blob = cert.blob.replace(string("root"), string("toor"))
    assert not parse_certificate(blob).signed_by(ca.public_key())


def test_krl_revokes_exactly_its_serials(subject_keys, tmp_path: Path) -> None:
    ca = SoftSigner(ed25519.Ed25519PrivateKey.generate())
    key = parse_authorized_key(subject_keys["p256"].read_text())
    now = int(time.time())
    files = {}
    for serial in (3, 10, 2**64 - 2):
        cert = build_and_sign(key=key, serial=serial, cert_type=USER_CERT, key_id="k", principals=("p",),
                              valid_after=now, valid_before=now + 600, critical_options={}, extensions={}, ca=ca)
        files[serial] = tmp_path / f"s{serial}-cert.pub"
        files[serial].write_text(cert.authorized_line() + "\n")
    krl = tmp_path / "krl"
    krl.write_bytes(build_krl({public_key_blob(ca.public_key()): [2**64 - 2, 3, 3]}, version=7, generated_at=now,
                              comment="test"))
    for serial, path in files.items():
        q = subprocess.run(["ssh-keygen", "-Q", "-f", str(krl), str(path)], capture_output=True, text=True)
        assert (q.returncode != 0) == (serial != 10), q.stdout
    # Another CA's certificates with the same serial are not revoked.
    other = tmp_path / "other"
    other.write_bytes(build_krl({public_key_blob(SoftSigner(ed25519.Ed25519PrivateKey.generate()).public_key()): [3]},
                                version=1, generated_at=now))
    assert subprocess.run(["ssh-keygen", "-Q", "-f", str(other), str(files[3])], capture_output=True).returncode == 0


def _rsa_blob(bits: int) -> bytes:
    n = rsa.generate_private_key(65537, bits).public_key().public_numbers().n
    return string("ssh-rsa") + mpint(65537) + mpint(n)


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        string("ssh-ed25519") + string(b"x" * 31),
        string("ssh-ed25519") + string(b"x" * 32) + b"\x00",  # trailing byte
        string("ssh-dss") + string(b"x"),
        string("ecdsa-sha2-nistp256") + string("nistp384") + string(b"\x04" + b"\x01" * 64),
        string("ecdsa-sha2-nistp256") + string("nistp256") + string(b"\x04" + b"\x01" * 64),  # off the curve
        string("ecdsa-sha2-nistp521") + string("nistp521") + string(b"\x04"),
        string("ssh-rsa") + mpint(65537),  # truncated
        string("ssh-rsa") + string(b"\x00\x01") + string(b"\x01" * 256),  # mpint not minimal
        string("ssh-rsa") + mpint(4) + mpint(2**2047 + 1),  # even exponent
        b"\xff\xff\xff\xff",
    ],
)
def test_malformed_public_keys_are_refused(blob: bytes) -> None:
    with pytest.raises(WireError):
        parse_public_key(blob)


def test_weak_rsa_is_refused_and_2048_accepted() -> None:
    with pytest.raises(WireError, match="2048"):
        parse_public_key(_rsa_blob(1024))
    assert parse_public_key(_rsa_blob(2048)).key_type == "ssh-rsa"


@settings(derandomize=True, max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_but_wire_error(data: bytes) -> None:
    for parse in (parse_public_key, parse_certificate):
        try:
            parse(data)
        except WireError:
            pass


@settings(derandomize=True, max_examples=50, deadline=None)
@given(
    principals=st.lists(st.text(min_size=1, max_size=20), max_size=5).map(tuple),
    extensions=st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=20), max_size=5),
    serial=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_certificates_round_trip(principals, extensions, serial) -> None:
    ca = _CA
    key = parse_public_key(public_key_blob(ed25519.Ed25519PrivateKey.generate().public_key()))
    cert = build_and_sign(key=key, serial=serial, cert_type=USER_CERT, key_id="k", principals=principals,
                          valid_after=1, valid_before=2, critical_options={}, extensions=extensions, ca=ca)
    parsed = parse_certificate(cert.blob)
    assert parsed == cert and parsed.signed_by(ca.public_key())
    assert base64.b64decode(base64.b64encode(cert.blob)) == cert.blob


_CA = SoftSigner(ec.generate_private_key(ec.SECP256R1()))
