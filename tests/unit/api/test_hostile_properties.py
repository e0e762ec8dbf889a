"""Property-based hostile input through the real WSGI app (issue 12, "how to make it stay fixed").

Random and mutated JSON bodies, tokens with header and claim mutations re-signed with the
provisioner's own key (so only the rule is wrong), duration strings and serials. Every
answer must be a 4xx in step-ca's error JSON, or a 2xx whose certificate obeys every rule
restated here independently of the code under test (names from the token, the CSR's key,
the validity bounds; pkilint by the autouse fixture). No 5xx, and no request may reach the
generic 500 handler (`hostile` marker).

Derandomized, with a modest number of examples, in CI; the `long` variants (marked `slow`)
run thousands of random examples when CIRRUS_LONG_PROPERTIES=1.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.durations import parse_duration
from shared.x509.serials import parse_serial
from tests.helpers import make_csr, provisioner_jwk, sign_claims
from tests.unit.api.hostile_support import b64url

pytestmark = pytest.mark.hostile

NAME = "app.example.com"
MAX_TLS = dt.timedelta(hours=24)
MIN_TLS = dt.timedelta(minutes=5)
BACKDATE = dt.timedelta(minutes=1)
LONG = os.environ.get("CIRRUS_LONG_PROPERTIES") == "1"

RUNS = [
    pytest.param(40, id="ci"),
    pytest.param(
        2000,
        id="long",
        marks=[pytest.mark.slow, pytest.mark.skipif(not LONG, reason="set CIRRUS_LONG_PROPERTIES=1")],
    ),
]

UNIT_RUNS = [
    pytest.param(300, id="ci"),
    pytest.param(
        20000,
        id="long",
        marks=[pytest.mark.slow, pytest.mark.skipif(not LONG, reason="set CIRRUS_LONG_PROPERTIES=1")],
    ),
]


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=not LONG,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# ------------------------------------------------------------------ the independent rules
GOOD_AUDS = [
    "https://127.0.0.1:9443/1.0/sign",
    "https://localhost/sign",
    "https://[::1]:9443/1.0/ssh/sign",
    "https://127.0.0.1:9443/1.0/sign#jwk/admin",
    "step-certificate-authority",
]
BAD_AUDS = [
    "https://127.0.0.1:9443.evil.test/1.0/sign",
    "https://127.0.0.1:9443/1.0/sign?x=1",
    "https://127.0.0.1:9443/1.0/sign#jwk/other",
    "https://u:p@127.0.0.1/1.0/sign",
    "https://127.0.0.1:9443/1.0/revoke",
    "https://evil.test/1.0/sign",
    "http://127.0.0.1/1.0/sign",
    "https://127.0.0.1:0/1.0/sign",
    "",
]
GO_DURATION = re.compile(r"[+-]?(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)")
GO_UNITS_NS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}


def go_duration_ns(text: str) -> int | None:
    """Go's time.ParseDuration restated (exact fractions): nanoseconds, or None if Go refuses."""
    if not GO_DURATION.fullmatch(text):
        return None
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    total = Fraction(0)
    for number, unit in re.findall(r"([0-9.]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)", body):
        total += Fraction(number if not number.endswith(".") else number[:-1] or "0") * GO_UNITS_NS[unit]
    if total >= 2**63 + (1 if sign < 0 else 0):
        return None
    return sign * int(total)


def _number_ok(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v and abs(v) < 253402300799


def sign_token_is_valid(header: dict[str, Any], claims: dict[str, Any], kid: str, now: float) -> bool:
    """The JWK sign-token rules (reference s.2.1-2.3, issue 12 items 2-3), restated."""
    if header.get("alg") != "ES256" or header.get("kid") != kid or "crit" in header:
        return False
    if claims.get("iss") != "admin":
        return False
    aud = claims.get("aud")
    auds = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    if not any(a in GOOD_AUDS for a in auds):
        return False
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        return False
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        return False
    exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
    if not _number_ok(exp) or now > exp + 60:
        return False
    for t in (nbf, iat):
        if t is not None and (not _number_ok(t) or now < t - 60):
            return False
    if nbf is not None and nbf > exp:
        return False
    start = nbf if nbf is not None else iat if iat is not None else now
    if exp - start > 3660:
        return False
    sans = claims.get("sans")
    if sans is not None and not (isinstance(sans, list) and all(isinstance(s, str) for s in sans)):
        return False
    cnf = claims.get("cnf")
    return cnf is None or (isinstance(cnf, dict) and not isinstance(cnf.get("x5rt#S256", ""), list | dict | int))


def assert_refusal(r: Any, *, non_passive: bool = False) -> None:
    """A 4xx in step-ca's error JSON (or step-ca's 501 for a valid non-passive revocation)."""
    assert 400 <= r.status_code < 500 or (non_passive and r.status_code == 501), (r.status_code, r.text)
    body = json.loads(r.get_data())
    assert isinstance(body, dict) and set(body) == {"status", "message"} and body["status"] == r.status_code, body
    assert isinstance(body["message"], str) and body["message"]
    assert "Traceback" not in body["message"]


def assert_certificate_obeys(r: Any, *, sub: str, sans: list[str], key: Any, duration: dt.timedelta | None) -> None:
    assert r.status_code == 201, r.text
    body = r.get_json()
    cert = x509.load_pem_x509_certificate(body["crt"].encode())
    ca = x509.load_pem_x509_certificate(body["ca"].encode())
    cert.verify_directly_issued_by(ca)
    assert cert.public_key() == key.public_key()
    cn = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    assert cn in ([], [sub])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    got = {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    }
    assert got and got <= {*sans, sub}
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert MIN_TLS <= lifetime <= MAX_TLS + BACKDATE
    if duration is not None:
        assert abs(cert.not_valid_after_utc - (dt.datetime.now(dt.UTC) + duration)) < dt.timedelta(seconds=30)


# ------------------------------------------------------------------ tokens
def jws(header: dict[str, Any], claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    """A compact ES256 JWS over exactly this header and these claims, whatever they say."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)


class Rel(int):
    """A time drawn relative to the moment the token is made (so replays draw the same data)."""


def resolve_times(claims: dict[str, Any], now: int) -> dict[str, Any]:
    return {k: now + int(v) if isinstance(v, Rel) else v for k, v in claims.items()}


def claim_values(name: str) -> st.SearchStrategy[Any]:
    times = st.integers(min_value=-7200, max_value=7200).map(Rel) | st.sampled_from(
        [Rel(0), Rel(300), Rel(-61), Rel(61), Rel(3600), Rel(3661), 0]
    )
    specific = {
        "aud": st.sampled_from(GOOD_AUDS + BAD_AUDS) | st.lists(st.sampled_from(GOOD_AUDS + BAD_AUDS), max_size=3),
        "exp": times,
        "nbf": times,
        "iat": times,
        "iss": st.sampled_from(["admin", "Admin", "other", ""]),
        "sub": st.sampled_from([NAME, "other.example.com", ""]),
        "sans": st.sampled_from([[NAME], [], [NAME, "10.0.0.1"], ["other.example.com"], [NAME, ""]]),
        "jti": st.sampled_from(["", "a", "x" * 257]) | st.text(min_size=1, max_size=8),
        "cnf": st.sampled_from([{}, {"x5rt#S256": "abc"}, "x", [], 1]),
    }
    return specific.get(name, st.nothing()) | json_values


mutation = st.tuples(
    st.sampled_from(["set", "del", "header"]),
    st.sampled_from(["aud", "exp", "nbf", "iat", "iss", "sub", "sans", "jti", "cnf", "extra"]),
)
HEADER_VALUES = {
    "alg": st.sampled_from(["ES256", "ES384", "HS256", "none", "RS256", "EdDSA", ""]) | json_values,
    "kid": st.sampled_from(["", "nope"]) | json_values,
    "crit": st.just(["exp"]),
    "typ": json_values,
}


@pytest.mark.parametrize("examples", RUNS)
def test_mutated_sign_tokens(api, authority_dir: Path, examples: int) -> None:
    jwk = provisioner_jwk(authority_dir)
    key = jwt.PyJWK(jwk).key
    csr, csr_key = make_csr(NAME, [NAME])

    @_settings(examples)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        claims = sign_claims(NAME, [NAME], now=0)
        claims.update({"nbf": Rel(0), "iat": Rel(0), "exp": Rel(300)})
        header: dict[str, Any] = {"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"}
        for op, name in data.draw(st.lists(mutation, min_size=1, max_size=3), label="mutations"):
            if op == "set":
                claims[name] = data.draw(claim_values(name), label=name)
            elif op == "del":
                claims.pop(name, None)
            else:
                hname = data.draw(st.sampled_from(sorted(HEADER_VALUES)), label="header")
                header[hname] = data.draw(HEADER_VALUES[hname], label=hname)
        claims = resolve_times(claims, int(time.time()))
        try:
            token = jws(header, claims, key)
        except ValueError:  # a value json.dumps cannot write (a surrogate): not a token
            return
        r = api.post("/1.0/sign", json={"csr": csr, "ott": token})
        if r.status_code < 300:
            assert sign_token_is_valid(header, claims, jwk["kid"], time.time()), (header, claims)
            sans = claims.get("sans") or [claims["sub"]]
            assert_certificate_obeys(r, sub=claims["sub"], sans=sans, key=csr_key, duration=None)
        else:
            assert_refusal(r)

    run()


# ------------------------------------------------------------------ bodies
BODY_KEYS = ["csr", "ott", "notBefore", "notAfter", "serial", "passive", "reasonCode", "reason", "templateData"]


@pytest.mark.parametrize("examples", RUNS)
def test_random_json_bodies(api, authority_dir: Path, examples: int) -> None:
    @_settings(examples)
    @given(
        st.sampled_from(["/1.0/sign", "/sign", "/1.0/revoke", "/1.0/renew", "/1.0/rekey"]),
        st.dictionaries(st.sampled_from(BODY_KEYS) | st.text(max_size=4), json_values, max_size=5) | json_values,
    )
    def run(path: str, body: Any) -> None:
        try:
            raw = json.dumps(body).encode()
        except (ValueError, UnicodeEncodeError):
            return
        r = api.post(path, data=raw, content_type="application/json")
        assert_refusal(r, non_passive=path.endswith("revoke") and isinstance(body, dict) and body.get("passive") is not True)

    run()


def _mutate(raw: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(raw)
    for kind, pos, byte in edits:
        i = pos % (len(out) + 1)
        if kind == 0:
            out[i:i] = bytes([byte])
        elif kind == 1 and out:
            del out[min(i, len(out) - 1)]
        elif out:
            out[min(i, len(out) - 1)] = byte
    return bytes(out)


@pytest.mark.parametrize("examples", RUNS)
def test_mutated_sign_bodies(api, authority_dir: Path, examples: int) -> None:
    csr, csr_key = make_csr(NAME, [NAME])
    jwk = provisioner_jwk(authority_dir)
    key = jwt.PyJWK(jwk).key
    interesting = st.sampled_from(list(b'{}[]":,\\0-9.uUdD\x00\xff\xed\xa0\x80')) | st.integers(0, 255)

    @_settings(examples)
    @given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 4000), interesting), min_size=1, max_size=4))
    def run(edits: list[tuple[int, int, int]]) -> None:
        claims = sign_claims(NAME, [NAME])
        token = jws({"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"}, claims, key)
        raw = json.dumps({"csr": csr, "ott": token, "notAfter": "2h"}).encode()
        r = api.post("/1.0/sign", data=_mutate(raw, edits), content_type="application/json")
        if r.status_code < 300:
            assert_certificate_obeys(r, sub=NAME, sans=[NAME], key=csr_key, duration=None)
        else:
            assert_refusal(r)

    run()


# ------------------------------------------------------------------ durations
duration_text = (
    st.text(alphabet=st.sampled_from(list("0123456789.+-hmsnu\u00b5\u03bc \uff12\u0664d_eE")), max_size=14)
    | st.builds(
        lambda sign, parts: sign + "".join(n + u for n, u in parts),
        st.sampled_from(["", "+", "-"]),
        st.lists(
            st.tuples(
                st.integers(0, 10**12).map(str)
                | st.tuples(st.integers(0, 99), st.integers(0, 10**9)).map(lambda t: f"{t[0]}.{t[1]}")
                | st.sampled_from(["0", ".5", "1.", "9223372036854775807", "2562047", "2562048"]),
                st.sampled_from(list(GO_UNITS_NS)),
            ),
            min_size=1,
            max_size=3,
        ),
    )
    | st.text(max_size=10)
)


@pytest.mark.parametrize("examples", UNIT_RUNS)
def test_parse_duration_is_go(examples: int) -> None:
    @_settings(examples)
    @given(duration_text)
    def run(text: str) -> None:
        want = go_duration_ns(text)
        try:
            got = parse_duration(text)
        except ValueError:
            assert want is None, text
            return
        assert want is not None, text
        assert abs(got - dt.timedelta(microseconds=want / 1000)) <= dt.timedelta(microseconds=1), text

    run()


@pytest.mark.parametrize("examples", RUNS)
def test_not_after_strings(api, authority_dir: Path, examples: int) -> None:
    csr, csr_key = make_csr(NAME, [NAME])
    jwk = provisioner_jwk(authority_dir)
    key = jwt.PyJWK(jwk).key

    @_settings(examples)
    @given(duration_text | st.sampled_from(["5m", "1h", "23h59m", "24h", "24h1m", "-1h", "1h30m", ".5h"]))
    def run(text: str) -> None:
        token = jws({"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"}, sign_claims(NAME, [NAME]), key)
        r = api.post("/1.0/sign", json={"csr": csr, "ott": token, "notAfter": text})
        want = go_duration_ns(text) if text else 24 * 3600 * 10**9  # "" is unset: the default
        if want is None:
            assert r.status_code == 400, (text, r.status_code, r.text)
        if r.status_code < 300:
            assert want is not None
            duration = dt.timedelta(microseconds=want // 1000)
            assert_certificate_obeys(r, sub=NAME, sans=[NAME], key=csr_key, duration=duration)
        else:
            assert_refusal(r)

    run()


# ------------------------------------------------------------------ serials
SERIAL_REF = re.compile(r"(?:0[xX][0-9a-fA-F]{1,40}|[0-9]{1,48})")

serial_text = (
    st.integers(min_value=-5, max_value=2**170).map(str)
    | st.integers(min_value=0, max_value=2**170).map(hex)
    | st.text(alphabet=st.sampled_from(list("0123456789abcdefxX_ +-\uff11\u0661\u00b2")), max_size=12)
    | st.text(max_size=8)
)


@pytest.mark.parametrize("examples", UNIT_RUNS)
def test_parse_serial_is_strict(examples: int) -> None:
    @_settings(examples)
    @given(serial_text)
    def run(text: str) -> None:
        ok = SERIAL_REF.fullmatch(text) is not None
        value = int(text, 0 if text[:2].lower() == "0x" else 10) if ok else None
        if value is not None and not 0 < value < 2**159:
            ok = False
        try:
            got = parse_serial(text)
        except ValueError:
            assert not ok, text
            return
        assert ok and got == value, text

    run()


@pytest.mark.parametrize("examples", RUNS)
def test_revoke_serials(api, authority_dir: Path, examples: int) -> None:
    jwk = provisioner_jwk(authority_dir)
    key = jwt.PyJWK(jwk).key

    @_settings(examples)
    @given(serial_text, st.booleans())
    def run(serial: str, with_token: bool) -> None:
        body: dict[str, Any] = {"serial": serial, "passive": True}
        if with_token:
            body["ott"] = jws({"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"}, sign_claims(serial, None, op="revoke"), key)
        try:
            raw = json.dumps(body).encode()
        except (ValueError, UnicodeEncodeError):
            return
        r = api.post("/1.0/revoke", data=raw, content_type="application/json")
        assert_refusal(r)  # no such certificate was ever issued
        try:
            parse_serial(serial)
        except ValueError:
            assert r.status_code == 400, (serial, r.text)
        else:
            assert r.status_code == (404 if with_token else 400), (serial, r.text)

    run()
