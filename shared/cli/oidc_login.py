"""Sign a person in for `cirrus certificate --provisioner <an OIDC provisioner>`.

The OAuth 2.0 authorization-code flow with PKCE (RFC 7636, S256) on a loopback
redirect (RFC 8252 s.7.3): a one-shot HTTP listener on 127.0.0.1 (or the
provisioner's `listenAddress`), the browser sent to the provider's
authorization endpoint (Python's `webbrowser`, which honours `$BROWSER`), the
code exchanged at the token endpoint with the verifier, and the ID token - whose
`nonce` must be the one sent; the CA uses it as the replay key - returned as the
one-time token. The provisioner's `clientID`, `clientSecret` (public, as
step-ca lists it), `configurationEndpoint` and `scopes` come from
`GET /provisioners`, as the step CLI reads them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

LOGIN_TIMEOUT = 300.0


class LoginError(Exception):
    """A sign-in failure with a one-line message."""


def _get_json(url: str, ctx: ssl.SSLContext | None = None, data: bytes | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if data is not None else {}
    req = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310 - http(s) URLs from the CA's config
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:  # noqa: S310
            doc = json.loads(resp.read(1024 * 1024))
    except urllib.error.HTTPError as exc:
        raise LoginError(f"{urllib.parse.urlsplit(url).netloc} refused the request ({exc.code})") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise LoginError(f"cannot reach {urllib.parse.urlsplit(url).netloc}: {getattr(exc, 'reason', exc)}") from exc
    if not isinstance(doc, dict):
        raise LoginError(f"unexpected answer from {urllib.parse.urlsplit(url).netloc}")
    return doc


def find_provisioner(ca_url: str, ctx: ssl.SSLContext, name: str) -> dict[str, Any] | None:
    """The named provisioner's block from `GET /provisioners`, or None."""
    cursor = ""
    for _ in range(100):
        query = urllib.parse.urlencode({"limit": 100, **({"cursor": cursor} if cursor else {})})
        page = _get_json(f"{ca_url}/1.0/provisioners?{query}", ctx)
        for p in page.get("provisioners") or []:
            if isinstance(p, dict) and p.get("name") == name:
                return p
        cursor = str(page.get("nextCursor") or "")
        if not cursor:
            return None
    return None


def _listener(address: str) -> tuple[HTTPServer, dict[str, str], threading.Event]:
    result: dict[str, str] = {}
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            if "code" not in query and "error" not in query:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            result.update({k: v[0] for k, v in query.items()})
            body = b"Signed in. You can close this window and go back to the terminal.\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            done.set()

    host, _, port = address.rpartition(":")
    try:
        server = HTTPServer((host.strip("[]") or "127.0.0.1", int(port or 0)), Handler)
    except (OSError, ValueError) as exc:
        raise LoginError(f"cannot listen on {address} for the sign-in redirect: {exc}") from exc
    return server, result, done


def id_token(provisioner: dict[str, Any]) -> str:
    """Run the authorization-code flow with PKCE and return the ID token.

    Raises:
        LoginError: the provider fails, the user declines, the state or nonce do not match.
    """
    discovery_url = str(provisioner.get("configurationEndpoint") or "")
    if not discovery_url.endswith("/.well-known/openid-configuration"):
        discovery_url = discovery_url.rstrip("/") + "/.well-known/openid-configuration"
    discovery = _get_json(discovery_url)
    auth_endpoint, token_endpoint = discovery.get("authorization_endpoint"), discovery.get("token_endpoint")
    if not isinstance(auth_endpoint, str) or not isinstance(token_endpoint, str):
        raise LoginError("the OpenID provider's discovery document lacks its endpoints")
    client_id = str(provisioner.get("clientID") or "")
    scopes = provisioner.get("scopes") or ["openid", "email"]
    server, result, done = _listener(str(provisioner.get("listenAddress") or "127.0.0.1:0"))
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    state, nonce = secrets.token_urlsafe(24), secrets.token_hex(32)
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": " ".join(str(s) for s in scopes), "state": state, "nonce": nonce,
              "code_challenge": challenge, "code_challenge_method": "S256"}
    url = f"{auth_endpoint}?{urllib.parse.urlencode(params)}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        print(f"Your browser will open to sign in; if it does not, visit:\n{url}", file=sys.stderr)
        webbrowser.open(url)
        if not done.wait(LOGIN_TIMEOUT):
            raise LoginError("no sign-in within five minutes")
    finally:
        server.shutdown()
        server.server_close()
    if result.get("error"):
        raise LoginError(f"sign-in refused: {result['error'][:100]}")
    if not secrets.compare_digest(result.get("state", ""), state):
        raise LoginError("the sign-in answer does not carry our state")
    form = {"grant_type": "authorization_code", "code": result.get("code", ""), "redirect_uri": redirect_uri,
            "client_id": client_id, "code_verifier": verifier}
    if provisioner.get("clientSecret"):
        form["client_secret"] = str(provisioner["clientSecret"])
    tokens = _get_json(token_endpoint, data=urllib.parse.urlencode(form).encode())
    token = tokens.get("id_token")
    if not isinstance(token, str) or token.count(".") != 2:
        raise LoginError("the OpenID provider returned no ID token")
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError as exc:
        raise LoginError("the OpenID provider returned a malformed ID token") from exc
    if not isinstance(claims, dict) or claims.get("nonce") != nonce:
        raise LoginError("the ID token does not carry our nonce")
    return token


def oidc_token(ca_url: str, ctx: ssl.SSLContext, provisioner: str | None) -> str | None:
    """An ID token when `provisioner` names an OIDC provisioner of the CA, else None.

    Raises:
        LoginError: the sign-in fails.
    """
    if not provisioner:
        return None
    block = find_provisioner(ca_url, ctx, provisioner)
    if block is None or str(block.get("type", "")).upper() != "OIDC":
        return None
    return id_token(block)
