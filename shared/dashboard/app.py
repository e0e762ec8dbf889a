"""The dashboard mount (`/dashboard` in `cirrus up`, and the `dashboard` Cloud Function).

Routing, sign-in and CSRF checks; the pages are in `shared.dashboard.pages`.
Every page but the sign-in form and the stylesheet needs a session cookie; every
POST but sign-in needs the session's CSRF token as well.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from shared.dashboard import authority_page, inventory_pages, oidc, pages, session, usage_page
from shared.dashboard.html import BASE, STYLESHEET, e, page, redirect, respond, url
from shared.revocation import ALLOWED_REASONS

if TYPE_CHECKING:
    from shared.runtime import Services

MAX_FORM = 4096
# Endpoint ids and serials (decimal or 0x-hex) as they appear in paths; anything else is not looked up.
_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")


def _key(s: Services) -> bytes:
    key: bytes = s.lazy("dashboard_session_key", lambda svc: session.session_key(svc.store))
    return key


def _signin_form(s: Services, message: str = "", status: int = 200) -> Response:
    alert = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    sso = "".join(
        f'<li><a href="{url("/oidc/start", provisioner=p.ref.name)}">Sign in with {e(p.ref.name)}</a></li>'
        for p in oidc.providers(s)
    )
    body = (
        f"{alert}" + (f"<ul>{sso}</ul>" if sso else "")
        + "<p>Sign in with an admin token from <code>cirrus dashboard token</code>.</p>"
        f'<form method="post" action="{url("/signin")}"><label for="token">Admin token</label>'
        '<input id="token" name="token" type="password" autocomplete="off" required>'
        '<button type="submit">Sign in</button></form>'
    )
    return page("Sign in", body, signed_in=False, status=status)


def _signin(request: Request, s: Services) -> Response:
    if request.method != "POST":
        return _signin_form(s)
    token = request.form.get("token", "")
    now = s.clock.now()
    if not session.check_admin_token(s.store, token, now):
        return _signin_form(s, "That token is not valid or has expired.", status=401)
    _sess, cookie = session.new_session(_key(s), "admin", now)
    response = redirect(f"{BASE}/endpoints")
    response.set_cookie(
        session.SESSION_COOKIE, cookie, max_age=int(session.SESSION_LIFETIME.total_seconds()),
        path="/", secure=True, httponly=True, samesite="Strict",
    )
    return response


def dashboard(request: Request, s: Services, tail: str) -> Response:
    """Serve one dashboard request (the `Mount` signature of `shared.api.app`)."""
    request.max_content_length = MAX_FORM
    request.max_form_memory_size = MAX_FORM
    path = tail.rstrip("/") or "/"
    if path == "/static/style.css":
        response = respond(STYLESHEET, content_type="text/css; charset=utf-8")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response
    if path == "/signin":
        return _signin(request, s)
    if path == "/oidc/start" and request.method == "GET":
        return oidc.start(request, s, _key(s))
    if path == "/oidc/callback" and request.method == "GET":
        return oidc.callback(request, s, _key(s))
    sess = session.read_session(_key(s), request.cookies.get(session.SESSION_COOKIE), s.clock.now())
    if sess is None:
        if request.method == "GET":
            return redirect(f"{BASE}/signin", status=303)
        return page("Sign in required", "<p>Your session is missing or has expired.</p>", signed_in=False, status=401)
    if request.method == "POST":
        if not session.csrf_ok(sess, request.form.get("csrf")):
            return page("Refused", '<p class="error" role="alert">The form was not sent from this dashboard '
                        "(missing or wrong CSRF token).</p>", csrf=sess.csrf, status=403)
        return _post(request, s, path, sess)
    if request.method != "GET":
        return page("Method not allowed", "", csrf=sess.csrf, status=405)
    query = {k: v for k, v in request.args.items()}
    if path == "/":
        return redirect(f"{BASE}/endpoints", status=303)
    if path == "/endpoints":
        return pages.endpoints(s, query, sess.csrf)
    if path.startswith("/endpoints/") and _ID.fullmatch(path[len("/endpoints/"):]):
        return pages.endpoint(s, path[len("/endpoints/"):], sess.csrf)
    if path == "/certificates":
        return pages.certificates(s, query, sess.csrf)
    if path.startswith("/certificates/") and _ID.fullmatch(path[len("/certificates/"):]):
        return pages.certificate(s, path[len("/certificates/"):], sess.csrf)
    if path == "/authorities":
        return authority_page.authorities(s, sess.csrf)
    if path == "/provisioners":
        return pages.provisioners(s, query, sess.csrf)
    if path == "/events":
        return pages.events(s, query, sess.csrf)
    if path == "/usage":
        return usage_page.usage(s, query, sess.csrf)
    if path == "/inventories":
        return inventory_pages.inventories(s, query, sess.csrf)
    if path.startswith("/inventories/"):
        return inventory_pages.inventory(s, path[len("/inventories/"):], query, sess.csrf)
    return page("Not found", "<p>No such page.</p>", csrf=sess.csrf, status=404)


def _post(request: Request, s: Services, path: str, sess: session.Session) -> Response:
    if path == "/signout":
        response = redirect(f"{BASE}/signin")
        response.delete_cookie(session.SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
        return response
    serial = path[len("/certificates/"): -len("/revoke")]
    if path.startswith("/certificates/") and path.endswith("/revoke") and _ID.fullmatch(serial):
        raw = request.form.get("reason", "0")
        if not raw.isdigit() or int(raw) not in ALLOWED_REASONS:
            return page("Bad request", '<p class="error" role="alert">Unknown revocation reason.</p>',
                        csrf=sess.csrf, status=400)
        if request.form.get("confirm") != "yes":
            return pages.confirm_revoke(s, serial, int(raw), sess.csrf)
        return pages.revoke(s, serial, int(raw), sess.subject, sess.csrf)
    return page("Not found", "<p>No such action.</p>", csrf=sess.csrf, status=404)
