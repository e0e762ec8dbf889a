"""A short hypothesis run against a real `cirrus up` (issue 12): the same mutated tokens and
random bodies as tests/unit/api/test_hostile_properties.py, over TLS through the HTTP loop.

Every answer is a 4xx in step-ca's error JSON or a certificate that obeys the rules; the
server stays up, and its log never shows the generic 500 handler or a traceback.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import make_csr, provisioner_jwk, sign_claims
from tests.interop.test_cli_session import server  # noqa: F401 - the `cirrus up` fixture
from tests.unit.api.test_hostile_properties import (
    BODY_KEYS,
    NAME,
    Rel,
    _settings,
    assert_certificate_obeys,
    claim_values,
    json_values,
    jws,
    mutation,
    resolve_times,
    sign_token_is_valid,
)

pytestmark = [pytest.mark.interop, pytest.mark.hostile]


class _Answer:
    """Just enough of a test response for the shared assertions."""

    def __init__(self, status: int, data: bytes) -> None:
        self.status_code = status
        self._data = data
        self.text = data.decode("utf-8", "replace")

    def get_data(self) -> bytes:
        return self._data

    def get_json(self) -> Any:
        return json.loads(self._data)


def _assert_refusal(r: _Answer, *, non_passive: bool = False) -> None:
    assert 400 <= r.status_code < 500 or (non_passive and r.status_code == 501), (r.status_code, r.text)
    body = r.get_json()
    assert set(body) == {"status", "message"} and body["status"] == r.status_code, body


def test_hypothesis_against_cirrus_up(server, authority_dir: Path) -> None:  # noqa: F811
    proc, log_path = server
    cfg = json.loads((authority_dir / "config.json").read_text())
    host, port = cfg["address"].rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(authority_dir / "certs" / "root_ca.crt"))
    jwk = provisioner_jwk(authority_dir)
    key = jwt.PyJWK(jwk).key
    csr, csr_key = make_csr(NAME, [NAME])
    conn: list[http.client.HTTPSConnection] = []

    def post(path: str, raw: bytes) -> _Answer:
        for attempt in (0, 1):
            if not conn:
                conn.append(http.client.HTTPSConnection(host, int(port), context=ctx, timeout=20))
            try:
                conn[0].request("POST", path, body=raw, headers={"Content-Type": "application/json"})
                resp = conn[0].getresponse()
                return _Answer(resp.status, resp.read())
            except (ConnectionError, http.client.HTTPException):
                conn.pop().close()  # the server may close after an error answer; a new connection
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @_settings(25)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        if data.draw(st.booleans(), label="token or body"):
            claims = sign_claims(NAME, [NAME], now=0)
            claims.update({"nbf": Rel(0), "iat": Rel(0), "exp": Rel(300)})
            header: dict[str, Any] = {"alg": "ES256", "kid": jwk["kid"], "typ": "JWT"}
            for op, name in data.draw(st.lists(mutation, min_size=1, max_size=3), label="mutations"):
                if op == "set":
                    claims[name] = data.draw(claim_values(name), label=name)
                elif op == "del":
                    claims.pop(name, None)
                else:
                    header["alg"] = data.draw(st.sampled_from(["ES384", "HS256", "none", ""]), label="alg")
            claims = resolve_times(claims, int(time.time()))
            try:
                token = jws(header, claims, key)
            except ValueError:
                return
            r = post("/1.0/sign", json.dumps({"csr": csr, "ott": token}).encode())
            if r.status_code < 300:
                assert sign_token_is_valid(header, claims, jwk["kid"], time.time()), (header, claims)
                sans = claims.get("sans") or [claims["sub"]]
                assert_certificate_obeys(r, sub=claims["sub"], sans=sans, key=csr_key, duration=None)
            else:
                _assert_refusal(r)
        else:
            path = data.draw(st.sampled_from(["/1.0/sign", "/1.0/revoke"]), label="path")
            body = data.draw(st.dictionaries(st.sampled_from(BODY_KEYS), json_values, max_size=4), label="body")
            try:
                raw = json.dumps(body).encode()
            except (ValueError, UnicodeEncodeError):
                return
            r = post(path, raw)
            _assert_refusal(r, non_passive=path.endswith("revoke") and body.get("passive") is not True)

    try:
        run()
        # The bodies the examples above could not reach by JSON: the strict reader's cases.
        for raw in (b'{"csr":' + b"[" * 1000 + b"]" * 1000 + b"}", b'{"csr":"\\ud800x"}', b'{"notAfter":NaN}'):
            _assert_refusal(post("/1.0/sign", raw))
    finally:
        for c in conn:
            c.close()
    assert proc.poll() is None, "cirrus up stopped"
    log = log_path.read_text()
    assert "unhandled error" not in log and "Traceback" not in log, log[-3000:]
