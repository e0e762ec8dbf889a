"""The `dashboard` Cloud Function through the Functions Framework test client."""

from __future__ import annotations

from pathlib import Path

import pytest
from functions_framework import create_app

from shared.api import functions as handlers
from shared.dashboard import session

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


@pytest.fixture
def client(authority_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CIRRUS_CONFIG", str(authority_dir / "config.json"))
    handlers.reset()
    app = create_app("dashboard", MAIN)
    yield app.test_client()
    handlers.reset()


def test_dashboard_function_signs_in_and_serves_pages(client) -> None:
    r = client.get("/dashboard/endpoints", base_url="https://fn.example")
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard/signin"
    assert client.get("/dashboard/signin", base_url="https://fn.example").status_code == 200
    s = handlers.services()
    token = session.issue_admin_token(s.store, s.clock.now())
    r = client.post("/dashboard/signin", data={"token": token}, base_url="https://fn.example")
    assert r.status_code == 303 and "HttpOnly" in r.headers["Set-Cookie"]
    page = client.get("/dashboard/authorities", base_url="https://fn.example")
    assert page.status_code == 200 and "Root certificates" in page.get_data(as_text=True)
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    # Only the dashboard: the step-ca API is not served by this function.
    assert client.get("/1.0/roots", base_url="https://fn.example").status_code in (303, 404)
