"""`cirrus up` answers ACME and `POST /sign` straight from the WSGI environ; the Functions go through Werkzeug.

Both entries must give the same answers: status, headers (but the fresh nonce
and request id) and body, for good and bad requests alike.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from shared.api import app as app_module
from shared.api.app import CirrusApp
from shared.api.mounts import default_direct_mounts, default_mounts
from shared.runtime import Services
from tests.helpers import make_csr

VOLATILE = {"replay-nonce", "x-request-id"}


def _both(app: CirrusApp, **request: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(direct answer, Werkzeug answer) for the same request."""

    def direct() -> tuple[Any, ...]:
        environ = EnvironBuilder(**request).get_environ()
        started: list[Any] = []

        def no_werkzeug(*args: Any) -> Any:
            raise AssertionError("the direct entry built a Werkzeug request")

        saved, app_module.Request = app_module.Request, no_werkzeug  # type: ignore[assignment]
        try:
            body = b"".join(app(environ, lambda status, headers, exc=None: started.extend([status, headers])))
        finally:
            app_module.Request = saved  # type: ignore[misc]
        return _normal(int(started[0].split()[0]), started[1], body)

    def werkzeug() -> tuple[Any, ...]:
        response = app.handle(Request(EnvironBuilder(**request).get_environ()))
        return _normal(response.status_code, response.headers.to_wsgi_list(), response.get_data())

    return direct(), werkzeug()


def _normal(status: int, headers: list[tuple[str, str]], body: bytes) -> tuple[Any, ...]:
    kept = sorted((k.lower(), v) for k, v in headers if k.lower() not in VOLATILE)
    return status, kept, body


@pytest.fixture
def app(services: Services) -> CirrusApp:
    return CirrusApp(services, mounts=default_mounts(services), direct=default_direct_mounts(services))


@pytest.mark.parametrize(
    "request_",
    [
        {"method": "GET", "path": "/acme/acme/directory"},
        {"method": "HEAD", "path": "/acme/acme/new-nonce"},
        {"method": "GET", "path": "/2.0/acme/acme/new-nonce"},
        {"method": "GET", "path": "/acme/nosuch/directory"},
        {"method": "POST", "path": "/acme/acme/new-account", "data": b"{}", "content_type": "application/json"},
        {"method": "POST", "path": "/acme/acme/new-account", "data": b"not json", "content_type": "application/jose+json"},
        {"method": "POST", "path": "/acme/acme/new-order", "data": b"x" * 70000, "content_type": "application/jose+json"},
        {"method": "PUT", "path": "/acme/acme/new-order"},
        {"method": "POST", "path": "/1.0/sign", "data": b"[1]", "content_type": "application/json"},
        {"method": "POST", "path": "/sign", "data": b"x" * 70000, "content_type": "application/json"},
        {"method": "POST", "path": "/1.0/sign", "json": {"csr": "garbage", "ott": "garbage"}},
    ],
)
def test_direct_and_werkzeug_entries_answer_alike(app: CirrusApp, request_: dict[str, Any]) -> None:
    direct, werkzeug = _both(app, **request_)
    assert direct == werkzeug
    assert direct[0] in (200, 204, 400, 401, 404, 405, 413, 415)


def test_a_signature_from_the_direct_entry_is_the_same_signature_response(app: CirrusApp, authority_dir) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import mint_token, sign_claims

    csr, _ = make_csr("direct.example.com")
    token = mint_token(authority_dir, sign_claims("direct.example.com", ["direct.example.com"]))
    environ = EnvironBuilder(method="POST", path="/1.0/sign", json={"csr": csr, "ott": token}).get_environ()
    started: list[Any] = []
    body = b"".join(app(environ, lambda status, headers, exc=None: started.extend([status, headers])))
    assert started[0].startswith("201")
    assert ("Content-Type", "application/json") in started[1]
    assert any(k == "X-Request-Id" for k, _ in started[1])
    answer = json.loads(body)
    assert set(answer) == {"crt", "ca", "certChain", "tlsOptions"}
    assert answer["certChain"][0] == answer["crt"]
