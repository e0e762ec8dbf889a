"""Dashboard sign-in with an OIDC provisioner: the authorization-code flow with PKCE.

Who may sign in: a person the provisioner names in `admins` (an e-mail address or a
group), checked by the provisioner's own ID-token verification (issuer, audience,
signature from the discovered JWKS, expiry, verified e-mail). The flow's state,
nonce and PKCE verifier travel in a short-lived HMAC-signed cookie (SameSite=Lax,
because the provider's redirect back is a cross-site navigation), so any instance
can finish a sign-in another started. Why hand-written rather than an OAuth client
library: the provisioner already does discovery and ID-token checks; what is left
is two redirects and one form POST.

The callback answers with a small page that continues to the dashboard instead of
a redirect: the session cookie is SameSite=Strict, which a browser does not send on
a navigation the provider's site started (a redirect chain included).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

from shared.dashboard import session
from shared.dashboard.html import BASE, e, page, redirect, respond
from shared.errors import CAError
from shared.provisioners.oidc import OIDCProvisioner
from shared.provisioners.tokens import peek

if TYPE_CHECKING:
    from shared.runtime import Services

FLOW_COOKIE = "__Host-cirrus-dashboard-oidc"
FLOW_SECONDS = 600
TOKEN_TIMEOUT = 10.0
MAX_TOKEN_RESPONSE = 64 * 1024


def providers(s: Services) -> list[OIDCProvisioner]:
    """The OIDC provisioners that name admins (only admins may use the dashboard)."""
    return [p for p in s.provisioners if isinstance(p, OIDCProvisioner) and p.admins]


def _redirect_uri(request: Request, s: Services) -> str:
    origin = s.settings.external_url.rstrip("/") or request.host_url.rstrip("/")
    return f"{origin}{BASE}/oidc/callback"


def _refused(message: str, status: int = 401) -> Response:
    return page("Sign-in refused", f'<p class="error" role="alert">{e(message)}</p>'
                f'<p><a href="{e(BASE)}/signin">Back to sign-in</a></p>', signed_in=False, status=status)


def start(request: Request, s: Services, key: bytes) -> Response:
    """Send the browser to the provider's authorization endpoint."""
    name = request.args.get("provisioner", "")
    found = next((p for p in providers(s) if p.ref.name == name), None)
    if found is None:
        return _refused("No such sign-in provider.", 404)
    try:
        endpoint = found.discovery().get("authorization_endpoint")
    except CAError:
        return _refused("The sign-in provider does not answer; try again later.", 503)
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        return _refused("The sign-in provider's discovery document has no authorization endpoint.", 503)
    state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    now = int(s.clock.now().timestamp())
    flow = session.sign_blob(key, "oidc", {"p": found.ref.name, "state": state, "nonce": nonce, "v": verifier,
                                          "exp": now + FLOW_SECONDS})
    query = urllib.parse.urlencode({
        "response_type": "code", "client_id": found.client_id, "redirect_uri": _redirect_uri(request, s),
        "scope": "openid email", "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    response = redirect(f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", status=303)
    response.set_cookie(FLOW_COOKIE, flow, max_age=FLOW_SECONDS, path="/", secure=True, httponly=True, samesite="Lax")
    return response


def _redeem(found: OIDCProvisioner, token_endpoint: str, form: dict[str, str]) -> str:
    """POST the code to the token endpoint; the ID token, or raise `ValueError`."""
    if not token_endpoint.startswith(("https://", "http://")):
        raise ValueError("bad token endpoint")
    body = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(token_endpoint, data=body, headers={  # noqa: S310 - scheme checked above
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TOKEN_TIMEOUT) as resp:  # noqa: S310
            raw = resp.read(MAX_TOKEN_RESPONSE + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise ValueError("token endpoint failed") from exc
    if len(raw) > MAX_TOKEN_RESPONSE:
        raise ValueError("token response too large")
    doc: Any = json.loads(raw)
    token = doc.get("id_token") if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise ValueError("no id_token")
    return token


def callback(request: Request, s: Services, key: bytes) -> Response:
    """Check the state, redeem the code, verify the ID token, and start a session for an admin."""
    now = s.clock.now()
    flow = session.read_blob(key, "oidc", request.cookies.get(FLOW_COOKIE), now)
    state = request.args.get("state", "")
    if flow is None or not hmac.compare_digest(str(flow.get("state", "")).encode(), state.encode()):
        return _refused("The sign-in expired or did not start here; start again.", 400)
    found = next((p for p in providers(s) if p.ref.name == flow.get("p")), None)
    code = request.args.get("code", "")
    if found is None or not code or len(code) > 2048:
        return _refused("The provider did not return a sign-in code.", 400)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": _redirect_uri(request, s),
            "client_id": found.client_id, "code_verifier": str(flow.get("v", ""))}
    secret = found.public_json().get("clientSecret")
    if isinstance(secret, str) and secret:
        form["client_secret"] = secret
    try:
        token_endpoint = found.discovery().get("token_endpoint")
        id_token = _redeem(found, str(token_endpoint or ""), form)
        claims, admin = found.verify_id_token(peek(id_token), now)
    except (CAError, ValueError):
        return _refused("The provider's answer could not be verified.")
    if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), str(flow.get("nonce", "")).encode()):
        return _refused("The provider's answer could not be verified.")
    if not admin:
        return _refused("This account is not an administrator of this authority.", 403)
    subject = str(claims.get("email") or claims.get("sub"))
    _sess, cookie = session.new_session(key, f"{found.ref.name}:{subject}", now)
    target = f"{BASE}/endpoints"
    response = respond(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={e(target)}"><title>Signed in - Cirrus CA</title></head>'
        f'<body><main><h1>Signed in</h1><p><a href="{e(target)}">Continue to the dashboard</a></p></main></body></html>'
    )
    response.set_cookie(session.SESSION_COOKIE, cookie, max_age=int(session.SESSION_LIFETIME.total_seconds()),
                        path="/", secure=True, httponly=True, samesite="Strict")
    response.delete_cookie(FLOW_COOKIE, path="/", secure=True, httponly=True, samesite="Lax")
    return response
