"""Issue 12's step-API examples, one test each: every one answered 500 or got a certificate before.

Each must now be a 4xx in step-ca's error JSON that names the problem, leave no certificate
behind, and never reach the generic 500 handler (the `hostile` marker's watch).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.helpers import make_csr, mint_sign_token, mint_token, sign_claims
from tests.unit.api.hostile_support import (
    assert_step_error,
    certificate_count,
    dumps,
    malleable_twin,
    raw_json,
    renew_token,
)

pytestmark = pytest.mark.hostile

NAME = "app.example.com"


def _sign(api, token: str, **extra):
    csr, _ = make_csr(NAME, [NAME])
    return api.post("/1.0/sign", json={"csr": csr, "ott": token, **extra})


def _issue(api, authority_dir: Path):
    csr, key = make_csr(NAME, [NAME])
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, NAME, [NAME])})
    assert r.status_code == 201, r.text
    chain = [x509.load_pem_x509_certificate(p.encode()) for p in r.get_json()["certChain"]]
    return chain, key


# ------------------------------------------------------------------ item 2: audience
@pytest.mark.parametrize(
    "aud",
    [
        "https://127.0.0.1:9443.evil.test/1.0/sign",  # the "port" is part of another host
        "https://127.0.0.1:9443/1.0/sign?x=1",
        "https://127.0.0.1:9443/1.0/sign#x5c/admin",  # another provisioner's fragment
        "https://127.0.0.1:9443/1.0/sign#",
        "https://user:pw@127.0.0.1:9443/1.0/sign",
        "https://evil.test@127.0.0.1/1.0/sign",
        "https://127.0.0.1:\uff19\uff14\uff14\uff13/1.0/sign",  # fullwidth port digits
        "https://127.0.0.1:99999/1.0/sign",
        "https://127.0.0.1:/1.0/sign",
        "https://[127.0.0.1/1.0/sign",
        "http://127.0.0.1:9443/1.0/sign",
        "https://127.0.0.1:9443/1.0/sign/",
        "https://127.0.0.1:9443/1.0/renew",
        "https://ca.evil.test/1.0/sign",
    ],
)
def test_audience_refused(api, authority_dir: Path, aud: str) -> None:
    r = _sign(api, mint_token(authority_dir, sign_claims(NAME, [NAME], aud=aud)))
    assert_step_error(r, 401, "audience")
    assert certificate_count(authority_dir) == 0


@pytest.mark.parametrize(
    "aud",
    [
        "https://127.0.0.1:9443/1.0/sign",
        "https://127.0.0.1/sign",  # port dropped, as behind a front end on 443
        "HTTPS://LOCALHOST:8443/1.0/sign",
        "https://[::1]:9443/1.0/sign",
        "https://127.0.0.1:9443/1.0/sign#jwk/admin",  # the provisioner's own fragment
        "step-certificate-authority",
    ],
)
def test_audience_accepted(api, authority_dir: Path, aud: str) -> None:
    r = _sign(api, mint_token(authority_dir, sign_claims(NAME, [NAME], aud=aud)))
    assert r.status_code == 201, r.text


def test_audience_list_needs_one_exact_match(api, authority_dir: Path) -> None:
    bad = ["https://127.0.0.1:9443/1.0/sign?x=1", "https://user@127.0.0.1/1.0/sign"]
    assert_step_error(_sign(api, mint_token(authority_dir, sign_claims(NAME, [NAME], aud=bad))), 401)
    good = [*bad, "https://127.0.0.1:9443/1.0/sign"]
    assert _sign(api, mint_token(authority_dir, sign_claims(NAME, [NAME], aud=good))).status_code == 201


# ------------------------------------------------------------------ item 3: claims
def test_nbf_after_exp_refused(api, authority_dir: Path) -> None:
    t = int(time.time())
    r = _sign(api, mint_token(authority_dir, sign_claims(NAME, [NAME], nbf=t + 30, exp=t + 20)))
    assert_step_error(r, 401, "nbf")
    assert certificate_count(authority_dir) == 0


@pytest.mark.parametrize("cnf", ["abc", ["x5rt#S256"], 1, True, {"x5rt#S256": 5}])
def test_cnf_must_be_an_object(api, authority_dir: Path, cnf: object) -> None:
    r = _sign(api, mint_token(authority_dir, sign_claims(NAME, [NAME], cnf=cnf)))
    assert_step_error(r, 401, "cnf")
    assert certificate_count(authority_dir) == 0


@pytest.mark.parametrize("jti", ["", 5, ["a"], {"a": 1}, None, "x" * 257])
def test_jti_must_be_a_non_empty_string(api, authority_dir: Path, jti: object) -> None:
    claims = sign_claims(NAME, [NAME], jti=jti)
    if jti is None:
        del claims["jti"]
    r = _sign(api, mint_token(authority_dir, claims))
    assert_step_error(r, 401, "jti")
    assert certificate_count(authority_dir) == 0


@pytest.mark.parametrize("field", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**30, -(10**30)])
def test_token_times_out_of_range_refused(api, authority_dir: Path, field: str, value: object) -> None:
    # PyJWT writes NaN/Infinity as bare words (not JSON): the strict reader refuses them.
    r = _sign(api, mint_token(authority_dir, sign_claims(NAME, [NAME], **{field: value})))
    assert r.status_code == 401, r.text
    assert_step_error(r, 401)
    assert certificate_count(authority_dir) == 0


def test_malleable_twin_of_a_sign_token_is_a_replay(api, authority_dir: Path) -> None:
    token = mint_sign_token(authority_dir, NAME, [NAME])
    assert _sign(api, token).status_code == 201
    assert_step_error(_sign(api, malleable_twin(token)), 401, "token already used")
    assert certificate_count(authority_dir) == 1


def test_malleable_twin_of_a_renew_token_is_a_replay(api, authority_dir: Path) -> None:
    chain, key = _issue(api, authority_dir)
    token = renew_token(chain, key, aud="https://127.0.0.1:9443/1.0/renew")
    assert api.post("/1.0/renew", headers={"Authorization": f"Bearer {token}"}).status_code == 201
    r = api.post("/1.0/renew", headers={"Authorization": f"Bearer {malleable_twin(token)}"})
    assert_step_error(r, 401, "token already used")
    assert certificate_count(authority_dir) == 2


# ------------------------------------------------------------------ item 9: renew parity
def test_renew_token_subject_must_be_the_common_name(api, authority_dir: Path) -> None:
    chain, key = _issue(api, authority_dir)
    token = renew_token(chain, key, aud="https://127.0.0.1:9443/1.0/renew", sub="other.example.com")
    r = api.post("/1.0/renew", headers={"Authorization": f"Bearer {token}"})
    assert_step_error(r, 401, "subject")
    assert certificate_count(authority_dir) == 1


def test_renew_token_audience_is_strict_too(api, authority_dir: Path) -> None:
    chain, key = _issue(api, authority_dir)
    token = renew_token(chain, key, aud="https://127.0.0.1:9443.evil.test/1.0/renew")
    assert_step_error(api.post("/1.0/renew", headers={"Authorization": f"Bearer {token}"}), 401, "audience")


# ------------------------------------------------------------------ items 1 and 6: bodies
def test_deeply_nested_body_is_400(api, authority_dir: Path) -> None:
    r = raw_json(api, "/1.0/sign", '{"csr":' + "[" * 1000 + "]" * 1000 + "}")
    assert_step_error(r, 400, "json")
    r = raw_json(api, "/1.0/revoke", "[" * 30_000 + "]" * 30_000)
    assert_step_error(r, 400, "json")


@pytest.mark.parametrize(
    ("not_before", "not_after"),
    [
        ("9999-12-31T00:00:00Z", "24h"),  # past year 9999
        ("0001-01-01T00:00:00Z", "-24h"),  # before year 1
        (None, "999999999999h"),  # a timedelta too large
        (None, "99999999999999999999999999ns"),  # nanoseconds past C int
        (None, "9223372036854775808ns"),  # one past Go's int64
    ],
)
def test_validity_out_of_range_is_400(api, authority_dir: Path, not_before, not_after) -> None:
    extra = {"notAfter": not_after} | ({"notBefore": not_before} if not_before else {})
    r = _sign(api, mint_sign_token(authority_dir, NAME, [NAME]), **extra)
    assert_step_error(r, 400, "validity")
    assert certificate_count(authority_dir) == 0


@pytest.mark.parametrize(
    "value",
    [
        "\uff12\uff14h",  # fullwidth digits
        "\u0662\u0664h",  # Arabic-Indic digits
        "24h ",
        " 24h",
        "1_0h",
        "24",
        "1d",
        "\uff12\uff10\uff12\uff17-01-01T00:00:00Z",
        "2027-01-01",
        "2027-01-01T00:00:00",  # no offset
        "2027-01-01 00:00:00Z",
    ],
)
def test_durations_and_times_as_go_reads_them(api, authority_dir: Path, value: str) -> None:
    r = _sign(api, mint_sign_token(authority_dir, NAME, [NAME]), notAfter=value)
    assert_step_error(r, 400, "validity")
    assert certificate_count(authority_dir) == 0


def test_go_durations_still_accepted(api, authority_dir: Path) -> None:
    r = _sign(api, mint_sign_token(authority_dir, NAME, [NAME]), notAfter="1h30m")
    assert r.status_code == 201, r.text
    cert = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() == pytest.approx(5460, abs=2)


def test_unpaired_surrogate_in_csr_is_400(api, authority_dir: Path) -> None:
    csr, _ = make_csr(NAME, [NAME])
    text = '{"csr":"\\ud800' + dumps(csr)[1:] + ',"ott":' + dumps(mint_sign_token(authority_dir, NAME, [NAME])) + "}"
    assert_step_error(raw_json(api, "/1.0/sign", text), 400, "surrogate")
    assert certificate_count(authority_dir) == 0


@pytest.mark.parametrize(
    "text",
    [
        '{"csr":"a","csr":"b"}',  # a repeated member
        '{"notAfter":NaN}',
        '{"notAfter":1e400}',
        '{"csr":"\\udc00"}',
    ],
)
def test_bodies_are_read_as_i_json(api, text: str) -> None:
    for path in ("/1.0/sign", "/1.0/revoke", "/1.0/rekey"):
        r = raw_json(api, path, text)
        if path == "/1.0/rekey":
            assert r.status_code == 401  # no client certificate: refused before the body
            continue
        assert_step_error(r, 400, "json")


# ------------------------------------------------------------------ item 7: revoke passive
@pytest.mark.parametrize("passive", ["true", 1, [], {}])
def test_revoke_passive_of_wrong_type_is_400(api, authority_dir: Path, passive: object) -> None:
    chain, _ = _issue(api, authority_dir)
    serial = str(chain[0].serial_number)
    tok = mint_token(authority_dir, sign_claims(serial, None, op="revoke"))
    r = api.post("/1.0/revoke", json={"serial": serial, "ott": tok, "passive": passive})
    assert_step_error(r, 400, "passive")


# ------------------------------------------------------------------ item 12: routes
@pytest.mark.parametrize("limit", ["%C2%B2", "%EF%BC%91", "1_0", "+1", "-1", " 1", "1" * 7, "0x10"])
def test_provisioners_limit_is_ascii_digits(api, limit: str) -> None:
    assert_step_error(api.get(f"/provisioners?limit={limit}"), 400, "limit")


def test_provisioners_limit_accepted(api) -> None:
    r = api.get("/provisioners?limit=1")
    assert r.status_code == 200 and len(r.get_json()["provisioners"]) == 1


@pytest.mark.parametrize("cursor", ["\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff11" + "0" * 16, "+0000001" + "0" * 16])
def test_provisioners_cursor_is_ascii_hex(api, cursor: str) -> None:
    assert_step_error(api.get("/provisioners", query_string={"cursor": cursor}), 400, "cursor")


@pytest.mark.parametrize("shard", ["%C2%B2", "%EF%BC%91", "1" * 7, "-1"])
def test_crl_shard_is_ascii_digits(api, services, shard: str) -> None:
    r = api.get(f"/crl/{services.settings.authority_id}/{shard}.crl")
    assert r.status_code == 400, r.status_code


@pytest.mark.parametrize("serial", ["\uff11\uff12\uff13", " 123", "123 ", "1_000", "+123", "0x", "0x_1", "1" * 49])
def test_revoke_serial_is_ascii_digits(api, authority_dir: Path, serial: str) -> None:
    tok = mint_token(authority_dir, sign_claims(serial, None, op="revoke"))
    r = api.post("/1.0/revoke", json={"serial": serial, "ott": tok, "passive": True})
    assert_step_error(r, 400, "serial")


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()
