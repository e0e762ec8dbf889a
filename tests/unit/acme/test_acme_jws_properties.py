"""Property: no JWS or payload, however mutated, gets a 5xx from the ACME app; every refusal is RFC 7807.

Requests are built from a valid one and then broken: header members dropped,
replaced or retyped (and re-signed with the account key, so only the rule is
wrong), payloads of any JSON shape sent to every resource, and raw
byte-level mutations of the whole body. Each answer must be a success or a
4xx `application/problem+json` whose `type` is an ACME error and whose
`status` equals the HTTP status. A fixed seed in CI; a longer, random run under `slow` with
CIRRUS_LONG_PROPERTIES=1.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.store.memory import MemoryStore
from tests.unit.acme.acme_support import (
    ACMETestClient,
    HTTP01Responder,
    TestCA,
    build_server,
    make_jws,
    provisioner,
    wsgi_app,
)
from tests.unit.acme.test_acme_flow import issue

pytestmark = pytest.mark.hostile  # a 500 from the generic handler fails these tests

P = "urn:ietf:params:acme:error:"

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["identifiers", "csr", "certificate", "reason", "status", "contact", "termsOfServiceAgreed",
          "onlyReturnExisting", "externalAccountBinding", "notBefore", "notAfter", "replaces", "account", "oldKey"]
PAYLOADS = st.one_of(
    st.none(),  # POST-as-GET
    JSON,
    st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=4),
    st.binary(max_size=40),
)


class Site:
    """One ACME app with an account, an order, its authorization and a challenge: real URLs to aim at."""

    def __init__(self, responder: HTTP01Responder) -> None:
        store = MemoryStore()
        ca = TestCA(store)
        prov = provisioner("acme", accountsPerMinute=0, http01Port=responder.port)
        self.app = wsgi_app(build_server(store, ca, [prov]))
        self.client = ACMETestClient(self.app)
        assert self.client.register().status_code == 201
        _, issued = issue(self.client, responder, [{"type": "ip", "value": "127.0.0.1"}])
        self.certificate = issued["certificate"]
        r = self.client.post(self.client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
        order = r.get_json()
        self.order_url = r.headers["Location"]
        authz = self.client.post(order["authorizations"][0], None).get_json()
        d = self.client.directory
        self.urls = [
            d["newAccount"], d["newOrder"], d["revokeCert"], d["keyChange"], str(self.client.kid),
            str(self.client.kid) + "/orders", self.order_url, order["finalize"], order["authorizations"][0],
            authz["challenges"][0]["url"], self.order_url.replace("/order/", "/certificate/"),
            self.certificate, self.certificate + "/1", d["newAccount"] + "/x",
        ]


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    responder = HTTP01Responder()
    yield Site(responder)
    responder.close()


def _assert_clean(r: Any) -> None:
    assert r.status_code < 500, (r.status_code, r.data)
    if r.status_code >= 400:
        assert r.mimetype == "application/problem+json", (r.status_code, r.data)
        body = r.get_json()
        assert isinstance(body, dict) and str(body.get("type", "")).startswith(P), body
        assert body.get("status") == r.status_code, body


HEADER_KEYS = st.sampled_from(["alg", "nonce", "url", "kid", "jwk", "crit", "b64", "x5c", "typ"])


@st.composite
def requests(draw: st.DrawFn, site: Site) -> tuple[str, bytes]:
    url = draw(st.sampled_from(site.urls))
    payload = draw(PAYLOADS)
    c = site.client
    kind = draw(st.sampled_from(["kid", "jwk"]))
    extra: dict[str, Any] = draw(st.dictionaries(HEADER_KEYS, JSON, max_size=2))
    jws = make_jws(
        c.key, url, payload, nonce=c.nonce(), kid=c.kid if kind == "kid" else None, extra=extra or None
    )
    drop = draw(st.lists(st.sampled_from(["protected", "payload", "signature"]), max_size=1))
    body: Any = {k: v for k, v in jws.items() if k not in drop}
    shape = draw(st.sampled_from(["object", "extra-member", "flattened-junk", "bytes-flip", "not-object"]))
    if shape == "extra-member":
        body["header"] = draw(JSON)
    elif shape == "flattened-junk":
        body[draw(st.sampled_from(["protected", "payload", "signature"]))] = draw(JSON)
    elif shape == "not-object":
        body = draw(JSON)
    raw = json.dumps(body).encode()
    if shape == "bytes-flip" and raw:
        i = draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([draw(st.integers(0, 255))]) + raw[i + 1 :]
    return url, raw


def _check(site: Site, data: st.DataObject) -> None:
    url, raw = data.draw(requests(site))
    _assert_clean(site.client.raw(url, raw))


@settings(max_examples=150, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_requests_never_5xx_and_every_refusal_is_a_problem_document(site: Site, data: st.DataObject) -> None:
    _check(site, data)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CIRRUS_LONG_PROPERTIES"), reason="a long run: set CIRRUS_LONG_PROPERTIES=1")
@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_requests_long_run(site: Site, data: st.DataObject) -> None:
    _check(site, data)


@settings(max_examples=60, derandomize=True, deadline=None)
@given(payload=PAYLOADS, target=st.integers(0, 13))
def test_validly_signed_payloads_of_any_shape_never_5xx(site: Site, payload: Any, target: int) -> None:
    url = site.urls[target]
    c = site.client
    kid = None if url == c.directory["newAccount"] else c.kid
    _assert_clean(c.raw(url, make_jws(c.key, url, payload, nonce=c.nonce(), kid=kid)))


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    index=st.one_of(
        st.text(min_size=1, max_size=12).filter(lambda t: "/" not in t),
        st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4),  # superscripts, Arabic-Indic: isdigit() says yes
        st.integers(0, 10**30).map(str),
    )
)
def test_any_alternate_chain_index_is_served_or_404(site: Site, index: str) -> None:
    c = site.client
    url = site.certificate + "/" + quote(index, safe="")
    r = c.raw(url, make_jws(c.key, url, None, nonce=c.nonce(), kid=c.kid))
    _assert_clean(r)
    assert r.status_code == (200 if index == "1" else 404), (index, r.data)


def test_the_site_is_real(site: Site) -> None:
    """The URLs the properties aim at exist: a POST-as-GET of the order reads it."""
    r = site.client.post(site.order_url, None)
    assert r.status_code == 200 and r.get_json()["identifiers"] == [{"type": "ip", "value": "127.0.0.1"}]
