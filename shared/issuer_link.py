"""The link from internet-facing functions to the private `issuer` function.

In the serverless shape the public functions (`ca_api`, `acme`) may run
without any KMS permission: they forward every request that needs a signature
to the `issuer` function, which only their service accounts may invoke and
which alone holds `cloudkms.signerVerifier` on the intermediate key. The issuer
re-runs the whole pipeline (token, CSR, policy), so a compromised public
function cannot make it sign anything the provisioners would not allow.

Authentication is a Google-signed ID token for the issuer's URL (audience),
fetched from the metadata server by `google-auth`; for loopback URLs in local
mode and tests no token is sent.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from shared.errors import BackendError, Unavailable

AuthHeaders = Callable[[], dict[str, str]]
TIMEOUT = 30.0


def google_id_token_auth(audience: str) -> AuthHeaders:
    """Headers carrying an ID token for `audience` (imported and fetched lazily, cached by google-auth)."""

    def headers() -> dict[str, str]:
        import google.auth.transport.requests
        import google.oauth2.id_token

        token = google.oauth2.id_token.fetch_id_token(  # type: ignore[no-untyped-call]
            google.auth.transport.requests.Request(), audience
        )
        return {"Authorization": f"Bearer {token}"}

    return headers


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


class IssuerLink:
    """Forwards signing requests to the issuer function."""

    def __init__(self, url: str, *, auth: AuthHeaders | None = None) -> None:
        self._url = url.rstrip("/")
        if auth is None and not _is_loopback(url):
            auth = google_id_token_auth(self._url)
        self._auth = auth

    def call(
        self, path: str, body: bytes, *, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """POST `body` to the issuer's `path`; return its status, headers and body as they are.

        Raises:
            Unavailable: the issuer cannot be reached (the client may retry).
        """
        req = urllib.request.Request(self._url + path, data=body, method="POST")  # noqa: S310 - configured URL
        req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if self._auth is not None:
            try:
                for k, v in self._auth().items():
                    req.add_header(k, v)
            except Exception as exc:  # metadata server or google-auth failure
                raise Unavailable("the issuer cannot be reached") from BackendError(type(exc).__name__)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers.items()), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise Unavailable("the issuer cannot be reached") from BackendError(type(exc).__name__)

    def call_json(self, path: str, payload: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST JSON, parse the JSON answer."""
        status, _, body = self.call(path, json.dumps(payload).encode())
        try:
            value = json.loads(body or b"{}")
        except ValueError:
            value = {}
        return status, value if isinstance(value, dict) else {}
