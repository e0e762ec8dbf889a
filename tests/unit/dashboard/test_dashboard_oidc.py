"""Dashboard sign-in with an OIDC provisioner (the loopback fake OpenID provider)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.dashboard.oidc import FLOW_COOKIE
from shared.runtime import build_services
from tests.fakes.oidc_issuer import FakeIssuer, serve_fake_issuer

BASE = "https://localhost"


@pytest.fixture
def issuer() -> Iterator[tuple[FakeIssuer, str]]:
    with serve_fake_issuer() as served:
        yield served


@pytest.fixture
def client(authority_dir: Path, issuer: tuple[FakeIssuer, str]) -> Iterator[Client]:
    cfg = json.loads((authority_dir / "config.json").read_text())
    cfg["authority"]["provisioners"].append(
        {"type": "OIDC", "name": "sso", "clientID": "cirrus-cli", "clientSecret": "public-secret",
         "configurationEndpoint": issuer[1], "admins": ["alice@example.com"]}
    )
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    services = build_services(Settings.load(authority_dir / "config.json"))
    yield Client(CirrusApp(services, mounts=default_mounts(services)))
    services.close()


def _provider_answer(location: str) -> str:
    """What the provider's authorization endpoint redirects the browser to (the callback URL)."""
    parts = urlsplit(location)
    conn = http.client.HTTPConnection(parts.netloc, timeout=10)
    conn.request("GET", f"{parts.path}?{parts.query}")
    answer = conn.getresponse()
    assert answer.status == 302, answer.read()
    target = answer.getheader("Location")
    conn.close()
    assert target
    return target


def _callback(client: Client) -> tuple[int, str]:
    start = client.get(f"{BASE}/dashboard/oidc/start?provisioner=sso")
    assert start.status_code == 303
    assert "SameSite=Lax" in start.headers["Set-Cookie"] and FLOW_COOKIE in start.headers["Set-Cookie"]
    target = urlsplit(_provider_answer(start.headers["Location"]))
    assert target.path == "/dashboard/oidc/callback"
    done = client.get(f"{BASE}{target.path}?{target.query}")
    return done.status_code, done.text


def test_admin_signs_in_with_oidc(client: Client, issuer: tuple[FakeIssuer, str]) -> None:
    assert "Sign in with sso" in client.get(f"{BASE}/dashboard/signin").text
    assert client.get(f"{BASE}/dashboard/endpoints").status_code == 303
    status, text = _callback(client)
    assert status == 200 and "Continue to the dashboard" in text
    assert client.get(f"{BASE}/dashboard/endpoints").status_code == 200
    assert issuer[0].codes == {}  # the code was redeemed with the PKCE verifier


def test_a_person_who_is_not_an_admin_is_refused(client: Client, issuer: tuple[FakeIssuer, str]) -> None:
    issuer[0].user = {**issuer[0].user, "email": "bob@example.com"}
    status, text = _callback(client)
    assert status == 403 and "not an administrator" in text
    assert client.get(f"{BASE}/dashboard/endpoints").status_code == 303


def test_callback_without_the_flow_cookie_or_with_another_state_is_refused(client: Client) -> None:
    start = client.get(f"{BASE}/dashboard/oidc/start?provisioner=sso")
    target = urlsplit(_provider_answer(start.headers["Location"]))
    forged = target.query.replace("state=", "state=x")
    assert client.get(f"{BASE}{target.path}?{forged}").status_code == 400
    client.delete_cookie(FLOW_COOKIE, domain="localhost")
    assert client.get(f"{BASE}{target.path}?{target.query}").status_code == 400
    assert client.get(f"{BASE}/dashboard/endpoints").status_code == 303
    assert client.get(f"{BASE}/dashboard/oidc/start?provisioner=nope").status_code == 404


def test_oidc_steps_run_off_the_event_loop(services: object) -> None:
    """`cirrus up` runs requests that wait on a remote host on its thread pool, not its event loop."""
    app = CirrusApp(services)  # type: ignore[arg-type]
    assert app.waits_on_network("GET", "/dashboard/oidc/callback")
    assert app.waits_on_network("GET", "/dashboard/oidc/start")
    assert not app.waits_on_network("GET", "/dashboard/endpoints")
