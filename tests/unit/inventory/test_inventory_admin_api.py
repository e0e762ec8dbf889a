"""`/admin/inventories` (issue 15 item 4): the admin API behind an admin token, step-ca's admin error JSON.

Through the full WSGI app with the authority's real SQLite store; the token is one
`cirrus dashboard token` would print. The hostile part draws methods, paths, headers and
bodies with hypothesis (derandomized): never a 5xx, never the generic 500 handler.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from shared.dashboard.session import issue_admin_token
from shared.runtime import Services

BASE = "/admin/inventories"
LONG = os.environ.get("CIRRUS_LONG_PROPERTIES") == "1"
RUNS = [
    pytest.param(150, id="ci"),
    pytest.param(3000, id="long",
                 marks=[pytest.mark.slow, pytest.mark.skipif(not LONG, reason="set CIRRUS_LONG_PROPERTIES=1")]),
]


@pytest.fixture
def token(services: Services) -> str:
    return issue_admin_token(services.store, services.clock.now())


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _admin_error(r: Any, status: int, typ: str) -> str:
    assert r.status_code == status, r.text
    body = r.get_json()
    assert set(body) >= {"type", "detail", "message"} and body["type"] == typ, body
    return str(body["message"])


def _inventory_events(services: Services) -> list[dict[str, Any]]:
    return [dict(e.data) for e in services.store.list_events(limit=1000) if e.type == "dev.cirrus.inventory.changed"]


def test_manage_an_inventory_over_http(api: Client, services: Services, token: str) -> None:
    h = _h(token)
    r = api.put(f"{BASE}/hosts", json={"kind": "hosts"}, headers=h)
    assert r.status_code == 201 and r.get_json()["kind"] == "hosts"
    _admin_error(api.put(f"{BASE}/hosts", json={"kind": "hosts"}, headers=h), 409, "conflict")
    csv = "key,workload\nvm-1,billing\nvm-2,web\n"
    r = api.post(f"{BASE}/hosts/entries", data=csv, content_type="text/csv", headers=h)
    assert r.status_code == 200 and r.get_json() == {"imported": 2}
    r = api.post(f"{BASE}/hosts/entries", json={"a/b": {"workload": "slashed"}}, headers=h)
    assert r.get_json() == {"imported": 1}
    assert api.get(f"{BASE}/hosts/entries/a%2Fb", headers=h).get_json() == {"workload": "slashed"}
    assert api.put(f"{BASE}/hosts/entries/vm-3", json={"workload": "db"}, headers=h).get_json() == {"status": "ok"}
    assert api.get(f"{BASE}/hosts/entries/vm-3", headers=h).get_json() == {"workload": "db"}
    page = api.get(f"{BASE}/hosts?limit=2", headers=h).get_json()
    assert [e["key"] for e in page["entries"]] == ["a/b", "vm-1"] and page["nextCursor"] == "vm-1"
    page = api.get(f"{BASE}/hosts?limit=2&cursor=vm-1", headers=h).get_json()
    assert [e["key"] for e in page["entries"]] == ["vm-2", "vm-3"] and page["nextCursor"] == ""
    assert [i["name"] for i in api.get(BASE, headers=h).get_json()["inventories"]] == ["hosts"]
    assert api.delete(f"{BASE}/hosts/entries/vm-3", headers=h).get_json() == {"status": "ok"}
    _admin_error(api.delete(f"{BASE}/hosts/entries/vm-3", headers=h), 404, "notFound")
    _admin_error(api.get(f"{BASE}/hosts/entries/vm-3", headers=h), 404, "notFound")
    assert api.delete(f"{BASE}/hosts", headers=h).get_json() == {"status": "ok"}
    _admin_error(api.get(f"{BASE}/hosts", headers=h), 404, "notFound")
    events = _inventory_events(services)
    assert [e["action"] for e in events] == ["created", "imported", "imported", "set", "entryDeleted", "deleted"]
    assert all(e["actor"] == "admin-api" for e in events)


def test_a_bad_import_writes_nothing_and_lists_every_bad_row(api: Client, services: Services, token: str) -> None:
    h = _h(token)
    api.put(f"{BASE}/people", json={"kind": "people"}, headers=h)
    csv = "key,uid\nalice@example.com,alice\n,x\nalice@example.com,dup\n"
    r = api.post(f"{BASE}/people/entries", data=csv, content_type="text/csv", headers=h)
    _admin_error(r, 400, "badRequest")
    assert r.get_json()["problems"] == ["line 3: entry key must be a non-empty string",
                                        "line 4: duplicate key 'alice@example.com' (first at line 2)"]
    assert api.get(f"{BASE}/people", headers=h).get_json()["entries"] == []
    _admin_error(api.post(f"{BASE}/ghost/entries", json={"k": {}}, headers=h), 404, "notFound")
    _admin_error(api.put(f"{BASE}/people/entries/k", json=[1], headers=h), 400, "badRequest")
    _admin_error(api.put(f"{BASE}/people/entries/k", data="{", content_type="application/json", headers=h),
                 400, "badRequest")
    _admin_error(api.put(f"{BASE}/people/entries/k", json={"x": "y" * 9000}, headers=h), 400, "badRequest")
    _admin_error(api.put(f"{BASE}/Bad!", json={"kind": "hosts"}, headers=h), 400, "badRequest")
    _admin_error(api.put(f"{BASE}/cars", json={"kind": "cars"}, headers=h), 400, "badRequest")
    _admin_error(api.get(f"{BASE}/people?limit=101", headers=h), 400, "badRequest")
    assert [e["action"] for e in _inventory_events(services)] == ["created"]


def test_every_route_needs_a_current_admin_token(api: Client, services: Services, token: str) -> None:
    expired = issue_admin_token(services.store, services.clock.now() - dt.timedelta(days=2),
                                lifetime=dt.timedelta(hours=1))
    forged = "cdt_" + "A" * 43
    for headers in ({}, _h(expired), _h(forged), {"Authorization": token}, {"Authorization": f"Basic {token}"}):
        for method, path in (("GET", BASE), ("PUT", f"{BASE}/hosts"), ("DELETE", f"{BASE}/hosts"),
                             ("POST", f"{BASE}/hosts/entries"), ("GET", f"{BASE}/hosts/entries/k")):
            r = api.open(path, method=method, json={"kind": "hosts"}, headers=headers)
            assert "admin token" in _admin_error(r, 401, "unauthorized")
    assert list(services.store.list_inventories()) == []


_SEGMENT = st.one_of(
    st.sampled_from(["hosts", "entries", "", "..", "%2F", "vm-1", "a%00b", "%E2%80%AE", "x" * 300, "Hosts"]),
    st.text(min_size=0, max_size=20),
)
_BODY = st.one_of(
    st.binary(max_size=300),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=12).map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"key,x\n,1\n", b"key\n" + b"k\n" * 5, b'{"k": {"a": 1}}', b'[{"key": "z"}]', b"\xff\xfe"]),
)


@pytest.mark.hostile
@pytest.mark.parametrize("examples", RUNS)
def test_hostile_requests_never_answer_5xx(api: Client, services: Services, token: str, examples: int) -> None:
    api.put(f"{BASE}/hosts", json={"kind": "hosts"}, headers=_h(token))

    @settings(max_examples=examples, derandomize=not LONG, database=None, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"]),
           segments=st.lists(_SEGMENT, max_size=4), body=_BODY,
           content_type=st.sampled_from(["application/json", "text/csv", "text/plain", ""]),
           authorized=st.booleans(), query=st.sampled_from(["", "?limit=x", "?limit=5&cursor=vm", "?cursor=%00"]))
    def run(method: str, segments: list[str], body: bytes, content_type: str, authorized: bool, query: str) -> None:
        path = BASE + "".join("/" + s for s in segments) + query
        try:
            r = api.open(path, method=method, data=body, content_type=content_type or None,
                         headers=_h(token) if authorized else {})
        except ValueError:  # a path werkzeug's test client itself cannot build
            return
        assert r.status_code < 500, (method, path, r.status_code, r.text)
        if r.status_code >= 400 and method != "HEAD":
            assert {"type", "detail", "message"} <= set(r.get_json()), r.text

    run()
