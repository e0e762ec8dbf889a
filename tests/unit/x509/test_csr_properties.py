"""Property tests for the CSR boundary (issue 12): no request gets a 5xx or a rule-breaking certificate.

Two generators, both driven through the real WSGI app with real tokens:

- DER-level mutations of a valid CSR: inside the CertificationRequestInfo
  (bit flips, truncations, tag and length edits, TLVs duplicated, deleted or
  inserted, with the enclosing lengths fixed up and the request re-signed, so
  the lazy parsers behind the signature check are reached), and raw edits of
  the whole DER (which the signature or DER parser must catch).
- Random CSRs built with `cryptography`: names of every SAN type (valid and
  not), every key type the CA may meet (including a Fermat-weak RSA key and
  curves it refuses), a token that authorizes the same, fewer, more or other
  names.

Every answer must be a 4xx in step-ca's error JSON, or a 201 whose certificate
names exactly the token's names, each as the type step-ca gives it, carries
the request's key, and passes goodkey and pkilint. Runs are derandomized (the
same examples every run, as CI needs); the `slow` variants try many more.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.x509 import goodkey
from tests import csr_der as D
from tests.helpers import mint_sign_token, pkilint_errors
from tests.keys_weak import close_primes_rsa_key

FAST = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=int(os.environ.get("CIRRUS_CSR_EXAMPLES", "50")),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FAST, max_examples=int(os.environ.get("CIRRUS_CSR_SLOW_EXAMPLES", "500")))

_RSA: dict[str, rsa.RSAPrivateKey] = {}


def _rsa2048() -> rsa.RSAPrivateKey:
    if "good" not in _RSA:
        _RSA["good"] = rsa.generate_private_key(65537, 2048)
    return _RSA["good"]


# --------------------------------------------------------------------------- the oracle


@dataclass
class Outcomes:
    """What the runs saw (for a test that the generators reach both answers)."""

    statuses: dict[int, int] = field(default_factory=dict)

    def count(self, status: int) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _typed_ok(gn: x509.GeneralName) -> bool:
    """Each name is well formed for the type it carries (independent of the code under test)."""
    if isinstance(gn, x509.DNSName):
        labels = gn.value.split(".")
        if labels[0] == "*":
            labels = labels[1:]
        try:
            ipaddress.ip_address(gn.value)
            return False
        except ValueError:
            pass
        return bool(labels) and all(_LABEL.match(label) for label in labels)
    if isinstance(gn, x509.IPAddress):
        return isinstance(gn.value, (ipaddress.IPv4Address, ipaddress.IPv6Address))
    if isinstance(gn, x509.RFC822Name):
        local, at, domain = gn.value.rpartition("@")
        return bool(at and local and domain) and all(0x21 <= ord(c) <= 0x7E for c in gn.value)
    if isinstance(gn, x509.UniformResourceIdentifier):
        return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", gn.value)) and all(
            0x21 <= ord(c) <= 0x7E for c in gn.value
        )
    return False


def _check_answer(r: Any, *, token_subject: str, token_sans: list[str], csr_key: Any) -> int:
    """Assert the answer obeys the rules; return its status."""
    assert r.status_code < 500, (r.status_code, r.text)
    body = r.get_json()
    if r.status_code != 201:
        assert 400 <= r.status_code < 500, r.status_code
        assert isinstance(body, dict) and set(body) == {"status", "message"}, body
        assert body["status"] == r.status_code and isinstance(body["message"], str) and body["message"]
        return int(r.status_code)
    cert = x509.load_pem_x509_certificate(body["crt"].encode())
    # names: exactly the token's (as step-ca's SplitSANs types them), each well formed for its type
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert all(_typed_ok(gn) for gn in san), list(san)
    got = {str(gn.value).lower() for gn in san}
    want = {s.strip().lower() for s in token_sans} if token_sans else {token_subject.lower()}
    canon_want = set()
    for w in want:
        try:
            canon_want.add(str(ipaddress.ip_address(w.strip("[]"))))
        except ValueError:
            canon_want.add(w)
    assert got == canon_want, (got, canon_want)
    for gn in san:
        if isinstance(gn, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
            try:
                ipaddress.ip_address(gn.value.strip("[]"))
                raise AssertionError(f"IP literal issued as {type(gn).__name__}: {gn.value}")
            except ValueError:
                pass
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [a.value for a in cns] == [token_subject]
    assert 0 < len(token_subject) <= 64 and all(0x20 <= ord(c) != 0x7F for c in token_subject)
    # key: the request's, and a good one
    key = cert.public_key()
    goodkey.check(key)
    if csr_key is not None:
        assert key == csr_key
    # lint: RFC 5280 clean, except where pkilint applies a public-web rule to a private CA's
    # names: single-label and wildcard dNSNames, and URIs that are not web URLs (spiffe:, urn:),
    # which `_typed_ok` has checked above instead.
    findings = pkilint_errors(cert.public_bytes(serialization.Encoding.DER))
    web_only = [
        f
        for f in findings
        if f.endswith("uniformResourceIdentifier: pkix.invalid_uri_syntax")
        or f.endswith("dNSName: pkix.invalid_domain_name_syntax")
    ]
    assert findings == web_only, findings
    if any(f.endswith("dNSName: pkix.invalid_domain_name_syntax") for f in findings):
        assert any(isinstance(gn, x509.DNSName) and ("." not in gn.value or gn.value[0] == "*") for gn in san)
    return 201


@pytest.fixture(autouse=True)
def _lint_every_issued_certificate() -> Iterator[None]:
    """Replaces the suite-wide teardown lint: `_check_answer` lints each certificate as it comes."""
    yield


@pytest.fixture
def no_unhandled(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.ERROR, logger="cirrus.api")
    yield
    assert not [r for r in caplog.records if r.getMessage() == "unhandled error"]


# --------------------------------------------------------------------------- DER mutations


@dataclass
class Tlv:
    """A decoded TLV: children for constructed ones (and OCTET STRINGs holding DER), else content."""

    tag: int
    content: bytes = b""
    children: list[Tlv] | None = None
    length_override: bytes | None = None

    def encode(self) -> bytes:
        body = b"".join(c.encode() for c in self.children) if self.children is not None else self.content
        length = self.length_override if self.length_override is not None else D.der_len(len(body))
        return bytes([self.tag]) + length + body


def _decode(der: bytes) -> list[Tlv] | None:
    """Decode a run of TLVs, or None if `der` is not exactly that."""
    out: list[Tlv] = []
    nodes = D.walk(der)
    top = []
    pos = 0
    for n in nodes:
        if n.start == pos:
            top.append(n)
            pos = n.end
    if pos != len(der) or not top:
        return None
    for n in top:
        content = der[n.header_end : n.end]
        kids = _decode(content) if (n.tag & 0x20 or n.tag == D.OCTET_STRING) and content else None
        if n.tag & 0x20 and kids is None and content:
            return None
        out.append(Tlv(n.tag, content, kids if (n.tag & 0x20 or kids) else None))
    return out


def _flatten(nodes: list[Tlv]) -> list[tuple[Tlv, list[Tlv]]]:
    """Every node with the list it sits in (where a mutation inserts or deletes)."""
    out: list[tuple[Tlv, list[Tlv]]] = []
    for n in nodes:
        out.append((n, nodes))
        if n.children is not None:
            out.extend(_flatten(n.children))
    return out


_BASE: dict[str, Any] = {}


def _base() -> tuple[bytes, Any]:
    """A valid CSR's CertificationRequestInfo (CN, DNS + IP SANs, a basic extension) and its key."""
    if not _BASE:
        key = D.signing_key()
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example.com")]))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("app.example.com"), x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
            .sign(key, hashes.SHA256())
        )
        _BASE["info"] = csr.tbs_certrequest_bytes
        _BASE["der"] = csr.public_bytes(serialization.Encoding.DER)
        _BASE["key"] = key.public_key()
    return _BASE["info"], _BASE["key"]


_TAGS = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0C, 0x13, 0x16, 0x17, 0x30, 0x31, 0x80, 0x81, 0x82, 0x86, 0x87, 0xA0, 0xA3]


@st.composite
def mutated_info(draw: st.DrawFn) -> bytes:
    """The base request info with 1-3 structural mutations, lengths fixed up where the mutation keeps TLVs."""
    info, _ = _base()
    roots = _decode(info)
    assert roots is not None
    for _ in range(draw(st.integers(1, 3))):
        flat = _flatten(roots)
        # Most of the parsing the signature does not cover is in the attributes ([0]: the
        # extension request); aim there two times in three.
        attrs = [(n, sib) for n, sib in flat if n.tag == 0xA0]
        inside = _flatten(attrs[0][0].children or []) if attrs else []
        pool = inside if inside and draw(st.integers(0, 2)) else flat
        node, siblings = pool[draw(st.integers(0, len(pool) - 1))]
        kind = draw(
            st.sampled_from(["flip", "truncate", "content", "tag", "dup", "delete", "insert", "length", "int"])
        )
        if kind == "flip" and node.children is None and node.content:
            i = draw(st.integers(0, len(node.content) - 1))
            b = bytearray(node.content)
            b[i] ^= 1 << draw(st.integers(0, 7))
            node.content = bytes(b)
        elif kind == "truncate":
            data = node.encode()
            node.children = None
            node.content = data[2 : draw(st.integers(2, max(2, len(data) - 1)))]
        elif kind == "content":
            node.children = None
            node.content = draw(st.binary(max_size=40))
        elif kind == "tag":
            node.tag = draw(st.sampled_from(_TAGS) | st.integers(0, 255))
        elif kind == "dup":
            siblings.insert(siblings.index(node), copy.deepcopy(node))
        elif kind == "delete" and len(siblings) > 1:
            siblings.remove(node)
        elif kind == "insert":
            siblings.insert(
                draw(st.integers(0, len(siblings))),
                Tlv(draw(st.sampled_from(_TAGS)), draw(st.binary(max_size=20))),
            )
        elif kind == "length":
            node.length_override = draw(
                st.sampled_from([b"\x80", b"\x84\xff\xff\xff\xff", b"\x81\x05", b"\x00", b"\x82\x00\x01"])
                | st.binary(min_size=1, max_size=3)
            )
        elif kind == "int" and node.tag == D.INTEGER:
            node.content = D.integer(draw(st.integers(-3, 2**70)))[2:]
    return b"".join(r.encode() for r in roots)


@st.composite
def raw_mutation(draw: st.DrawFn) -> bytes:
    """A byte-level edit of the whole signed CSR (no re-signing)."""
    _base()
    der = bytearray(_BASE["der"])
    kind = draw(st.sampled_from(["flip", "truncate", "length", "dup"]))
    if kind == "flip":
        i = draw(st.integers(0, len(der) - 1))
        der[i] ^= 1 << draw(st.integers(0, 7))
        return bytes(der)
    if kind == "truncate":
        return bytes(der[: draw(st.integers(0, len(der) - 1))])
    nodes = D.walk(bytes(der))
    n = nodes[draw(st.integers(0, len(nodes) - 1))]
    if kind == "length":
        der[n.start + 1] = draw(st.integers(0, 255))
        return bytes(der)
    return bytes(der[: n.end] + der[n.start : n.end] + der[n.end :])


def _post(api: Any, path: str, der: bytes, as_pem: bool, authority_dir: Path) -> Any:
    csr = D.pem(der) if as_pem else __import__("base64").b64encode(der).decode()
    tok = mint_sign_token(authority_dir, "app.example.com", ["app.example.com", "10.0.0.1"])
    return api.post(path, json={"csr": csr, "ott": tok})


def _csr_key(der: bytes) -> Any:
    try:
        return x509.load_der_x509_csr(der).public_key()
    except Exception:
        return None


def _der_property(api: Any, authority_dir: Path, outcomes: Outcomes) -> Callable[..., None]:
    @given(
        # re-signed structural mutations two times in three; raw byte edits otherwise
        st.one_of(mutated_info().map(D.signed_csr), mutated_info().map(D.signed_csr), raw_mutation()),
        st.booleans(),
        st.sampled_from(["/1.0/sign", "/sign"]),
    )
    def prop(der: bytes, as_pem: bool, path: str) -> None:
        r = _post(api, path, der, as_pem, authority_dir)
        outcomes.count(
            _check_answer(
                r, token_subject="app.example.com", token_sans=["app.example.com", "10.0.0.1"], csr_key=_csr_key(der)
            )
        )

    return prop


@pytest.mark.usefixtures("no_unhandled")
def test_mutated_csrs_get_a_4xx_or_a_rule_abiding_certificate(api, authority_dir: Path) -> None:
    outcomes = Outcomes()
    FAST(_der_property(api, authority_dir, outcomes))()
    assert set(outcomes.statuses) >= {400}, outcomes.statuses
    assert set(outcomes.statuses) <= {201, 400, 401, 403, 413}, outcomes.statuses


@pytest.mark.slow
@pytest.mark.usefixtures("no_unhandled")
def test_mutated_csrs_slow(api, authority_dir: Path) -> None:
    outcomes = Outcomes()
    SLOW(_der_property(api, authority_dir, outcomes))()
    assert 201 in outcomes.statuses and 400 in outcomes.statuses, outcomes.statuses


# --------------------------------------------------------------------------- random CSRs

_DNS_LABEL = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?\Z")
# Labels as RFC 1123 allows; the last one from a fixed list, since pkilint (rightly, for the
# public web) wants a TLD that ends in a letter and has two or more characters.
_VALID_DNS = st.builds(
    lambda labels, tld, wild: ("*." if wild else "") + ".".join([*labels, tld]),
    st.lists(_DNS_LABEL, min_size=1, max_size=3),
    st.sampled_from(["example", "test", "internal", "com"]),
    st.booleans(),
)
_ODD_TEXT = st.text(
    alphabet=st.sampled_from([*"abcXYZ019.-_@:/[]*% ", "\x00", "\n", "\x7f", "\u00e9", "\u0661", "\x1b"]),
    min_size=0,
    max_size=24,
)
_IPS = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
_EMAILS = st.one_of(
    st.builds(lambda u, d: f"{u}@{d}", st.from_regex(r"\A[a-z0-9.+_-]{1,10}\Z"), _VALID_DNS.filter(lambda d: "*" not in d)),
    _ODD_TEXT,
)
_URIS = st.one_of(
    st.builds(lambda s, d, p: f"{s}://{d}/{p}", st.sampled_from(["https", "spiffe", "urn"]), _VALID_DNS, _ODD_TEXT),
    st.sampled_from(["fe80::1", "urn:uuid:1234", "mailto:a@b.example", "a:b", "10.0.0.1"]),
    _ODD_TEXT,
)


@st.composite
def general_name(draw: st.DrawFn) -> tuple[x509.GeneralName, str] | None:
    """A SAN of any type, with the string a token would list for it (None: cryptography refuses to build it)."""
    try:
        return _general_name(draw)
    except (ValueError, TypeError, UnicodeError):
        return None


def _general_name(draw: st.DrawFn) -> tuple[x509.GeneralName, str]:
    kind = draw(st.sampled_from(["dns", "dns_odd", "ip", "email", "uri", "dir", "rid"]))
    if kind == "dns":
        value = draw(_VALID_DNS | st.sampled_from(["localhost", "10.0.0.1", "::1", "a@b.example"]))
        return x509.DNSName(value), value
    if kind == "dns_odd":
        value = draw(_ODD_TEXT)
        return x509.DNSName(value), value
    if kind == "ip":
        value = draw(_IPS)
        return x509.IPAddress(ipaddress.ip_address(value)), value
    if kind == "email":
        value = draw(_EMAILS)
        return x509.RFC822Name(value), value
    if kind == "uri":
        value = draw(_URIS)
        return x509.UniformResourceIdentifier(value), value
    if kind == "dir":
        return x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dir")])), "dir"
    return x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4")), "1.2.3.4"


_KEYS: dict[str, Callable[[], Any]] = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "p521": lambda: ec.generate_private_key(ec.SECP521R1()),
    "secp256k1": lambda: ec.generate_private_key(ec.SECP256K1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "ed448": ed448.Ed448PrivateKey.generate,
    "rsa2048": _rsa2048,
    "rsa_close_primes": close_primes_rsa_key,
}


@st.composite
def request(draw: st.DrawFn) -> tuple[str | None, str, list[str], str, list[str]]:
    """(CSR PEM or None if cryptography refuses to build it, key kind, CSR names, token subject, token sans)."""
    names = [n for n in draw(st.lists(general_name(), min_size=0, max_size=4)) if n is not None]
    key_kind = draw(st.sampled_from(sorted(_KEYS)))
    key = _KEYS[key_kind]()
    csr_strings = [s for _, s in names]
    token_sans = draw(
        st.sampled_from(["same", "fewer", "more", "other"]).flatmap(
            lambda how: st.just(csr_strings)
            if how == "same"
            else st.just(csr_strings[1:])
            if how == "fewer"
            else st.lists(_VALID_DNS | _IPS, max_size=2).map(lambda extra: csr_strings + extra)
            if how == "more"
            else st.lists(_VALID_DNS | _IPS | _EMAILS | _URIS, min_size=1, max_size=3)
        )
    )
    subject = draw(
        st.sampled_from([*token_sans, "app.example.com", "a" * 65, "app\x00.example.com"]) if token_sans else _VALID_DNS
    )
    cn = draw(st.sampled_from([None, subject, "other.example.com", "x" * 65]))
    try:
        builder = x509.CertificateSigningRequestBuilder().subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn, _validate=False)] if cn else [])
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName([gn for gn, _ in names]), critical=False)
        algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey) else hashes.SHA256()
        pem = builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM).decode()
    except (ValueError, TypeError, UnicodeError):
        pem = None
    return pem, key_kind, csr_strings, subject, token_sans


def _random_property(api: Any, authority_dir: Path, outcomes: Outcomes) -> Callable[..., None]:
    @given(request(), st.sampled_from(["/1.0/sign", "/sign"]))
    def prop(req: tuple[str | None, str, list[str], str, list[str]], path: str) -> None:
        pem, key_kind, _csr_names, subject, token_sans = req
        if pem is None:
            return
        tok = mint_sign_token(authority_dir, subject, token_sans or None)
        r = api.post(path, json={"csr": pem, "ott": tok})
        status = _check_answer(
            r,
            token_subject=subject,
            token_sans=token_sans,
            csr_key=x509.load_pem_x509_csr(pem.encode()).public_key(),
        )
        if key_kind in ("secp256k1", "ed448", "rsa_close_primes"):
            assert status != 201, key_kind  # 400/403 for the key, or 401 if the token was refused first
        outcomes.count(status)

    return prop


@pytest.mark.usefixtures("no_unhandled")
def test_random_csrs_get_a_4xx_or_a_rule_abiding_certificate(api, authority_dir: Path) -> None:
    outcomes = Outcomes()
    FAST(_random_property(api, authority_dir, outcomes))()
    assert 201 in outcomes.statuses and (400 in outcomes.statuses or 403 in outcomes.statuses), outcomes.statuses


@pytest.mark.slow
@pytest.mark.usefixtures("no_unhandled")
def test_random_csrs_slow(api, authority_dir: Path) -> None:
    outcomes = Outcomes()
    SLOW(_random_property(api, authority_dir, outcomes))()
    assert 201 in outcomes.statuses, outcomes.statuses
