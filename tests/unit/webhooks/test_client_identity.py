"""The webhook client certificate (`shared.webhooks.identity`): made on first use, reused, renewed
after two thirds of its life, kept through a failed renewal while valid, never without a valid one;
and loaded into OpenSSL without its key landing in a file that stays behind."""

from __future__ import annotations

import datetime as dt
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shared.errors import Unavailable
from shared.webhooks.identity import RETRY_AFTER, ClientIdentity, issuing_identity, load_into, signed_by
from shared.x509.profile import Issuer, ca_name, self_signed_root

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> dt.datetime:
        return self.at


def _ca() -> tuple[Issuer, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    root = self_signed_root(key=key, subject=ca_name("Identity Test Root"), serial=1,
                            not_before=T0 - dt.timedelta(days=1), not_after=T0 + dt.timedelta(days=30))  # fmt: skip
    return Issuer.of(root, key), root


class Counting:
    """An `Issue` through the real signer that counts its calls and can be made to fail."""

    def __init__(self, clock: Clock) -> None:
        self.issuer, self.root = _ca()
        self._issue = signed_by(lambda: (self.issuer, [self.root]), common_name="ca.example",
                                names=["ca.example", "10.0.0.1"], clock=clock)  # fmt: skip
        self.calls = 0
        self.fail = False
        self.made: list[x509.Certificate] = []

    def __call__(self, key: ec.EllipticCurvePrivateKey) -> tuple[x509.Certificate, Sequence[x509.Certificate]]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("KMS is down")
        leaf, chain = self._issue(key)
        self.made.append(leaf)
        return leaf, chain


def _context() -> ssl.SSLContext:
    return ssl.create_default_context()


def test_made_once_then_renewed_after_two_thirds_of_its_life() -> None:
    clock = Clock()
    issue = Counting(clock)
    identity = ClientIdentity(issue=issue, clock=clock)
    first = identity.context(_context)
    assert identity.context(_context) is first and issue.calls == 1
    leaf = issue.made[0]
    assert leaf.not_valid_before_utc == T0 - dt.timedelta(minutes=1)
    assert leaf.not_valid_after_utc == T0 + dt.timedelta(hours=24)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ca.example"
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]
    leaf.verify_directly_issued_by(issue.root)

    renew_at = leaf.not_valid_before_utc + (leaf.not_valid_after_utc - leaf.not_valid_before_utc) * 2 / 3
    clock.at = renew_at - dt.timedelta(seconds=1)
    assert identity.context(_context) is first and issue.calls == 1
    clock.at = renew_at
    second = identity.context(_context)
    assert second is not first and issue.calls == 2
    assert issue.made[1].public_key() != issue.made[0].public_key()  # a new key with each certificate


def test_a_failed_renewal_keeps_the_valid_certificate_and_retries_later() -> None:
    clock = Clock()
    issue = Counting(clock)
    identity = ClientIdentity(issue=issue, clock=clock)
    first = identity.context(_context)
    issue.fail = True
    clock.at = T0 + dt.timedelta(hours=17)
    assert identity.context(_context) is first and issue.calls == 2
    clock.at += RETRY_AFTER - dt.timedelta(seconds=1)
    assert identity.context(_context) is first and issue.calls == 2  # not asked again before the pause ends
    clock.at += dt.timedelta(seconds=1)
    assert identity.context(_context) is first and issue.calls == 3
    clock.at = T0 + dt.timedelta(hours=24) - dt.timedelta(seconds=10)  # a failure just before the end...
    assert identity.context(_context) is first
    clock.at = T0 + dt.timedelta(hours=24)  # ...does not stretch it: expired, never shown
    with pytest.raises(Unavailable):
        identity.context(_context)
    issue.fail = False
    assert identity.context(_context) is not first


def test_no_certificate_at_all_is_a_503_without_the_cause() -> None:
    clock = Clock()
    issue = Counting(clock)
    issue.fail = True
    with pytest.raises(Unavailable) as caught:
        ClientIdentity(issue=issue, clock=clock).context(_context)
    assert "KMS" not in str(caught.value)


def test_a_revoked_intermediate_makes_no_certificate() -> None:
    clock = Clock()
    issuer, root = _ca()
    identity = issuing_identity(issuer, [root], common_name="ca.example", names=[], clock=clock,
                                revoked=lambda cert: cert == root)  # fmt: skip
    with pytest.raises(Unavailable):
        identity.context(_context)


def test_loaded_without_memfd_through_a_file_removed_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    issue = Counting(clock)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf, chain = issue(key)
    monkeypatch.delattr(os, "memfd_create", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    context = ssl.create_default_context()
    load_into(context, key, [leaf, *chain])
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ssl.SSLError):  # what was loaded is the pair: a different key is refused
        load_into(ssl.create_default_context(), ec.generate_private_key(ec.SECP256R1()), [leaf])
    assert list(tmp_path.iterdir()) == []
