"""Dashboard sign-in: admin tokens, signed session cookies, CSRF tokens.

Why hand-written rather than a session library: a session here is three fields
(who, until when, a CSRF secret) signed with HMAC-SHA256; Werkzeug has no signed
cookies any more and itsdangerous would be a new dependency for twenty lines.

The HMAC key lives in the store (document `dashboard/session-key`), created once
with create-if-absent, so every instance (every Cloud Function instance, every
`cirrus up` worker) signs and checks with the same key and nothing is written
to disk beside the store. Admin tokens are random; only their SHA-256 is kept
(document `dashboard_tokens/<hash>` with an expiry), so a store dump does not
reveal a usable token. Every comparison of a secret is `hmac.compare_digest`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

KEY_COLLECTION = "dashboard"
KEY_ID = "session-key"
TOKEN_COLLECTION = "dashboard_tokens"  # noqa: S105 - a collection name
SESSION_COOKIE = "__Host-cirrus-dashboard"
SESSION_LIFETIME = dt.timedelta(hours=8)
TOKEN_LIFETIME = dt.timedelta(hours=12)
TOKEN_PREFIX = "cdt_"  # noqa: S105 - the visible prefix of every admin token


class Documents(Protocol):
    """The part of `shared.store.base.DocumentStore` sign-in needs."""

    def create_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expires_at: dt.datetime | None = None
    ) -> bool: ...

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None: ...


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in operator."""

    subject: str
    expires_at: int
    csrf: str


def session_key(store: Documents) -> bytes:
    """The shared HMAC key, created on first use (two instances racing both read the winner's)."""
    found = store.get_document(KEY_COLLECTION, KEY_ID)
    if found is None:
        store.create_document(KEY_COLLECTION, KEY_ID, {"key": secrets.token_hex(32)})
        found = store.get_document(KEY_COLLECTION, KEY_ID)
    if found is None or not isinstance(found[0].get("key"), str):
        raise RuntimeError("dashboard session key is missing from the store")
    return bytes.fromhex(found[0]["key"])


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_admin_token(store: Documents, now: dt.datetime, lifetime: dt.timedelta = TOKEN_LIFETIME) -> str:
    """A new admin sign-in token, valid for `lifetime`; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = now + lifetime
    store.create_document(
        TOKEN_COLLECTION, _token_digest(token), {"expiresAt": int(expires.timestamp())}, expires_at=expires
    )
    return token


def check_admin_token(store: Documents, token: str, now: dt.datetime) -> bool:
    """Whether `token` is a current admin token (looked up by its hash, so no timing oracle on the token)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128 or not token.isascii():
        return False
    found = store.get_document(TOKEN_COLLECTION, _token_digest(token))
    if found is None:
        return False
    expires = found[0].get("expiresAt")
    return isinstance(expires, int) and expires > now.timestamp()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, label: str, payload: str) -> str:
    return _b64(hmac.new(key, label.encode("ascii") + b"\x00" + payload.encode("ascii"), hashlib.sha256).digest())


def sign_blob(key: bytes, label: str, data: dict[str, Any]) -> str:
    """`payload.mac`: JSON `data` signed for one use (`label`: a session, an OIDC sign-in in progress)."""
    payload = _b64(json.dumps(data, separators=(",", ":")).encode("utf-8"))
    return f"{payload}.{_mac(key, label, payload)}"


def read_blob(key: bytes, label: str, cookie: str | None, now: dt.datetime) -> dict[str, Any] | None:
    """The data of a `sign_blob` value, or None when absent, forged, malformed or past its `exp`."""
    if not cookie or len(cookie) > 4096 or cookie.count(".") != 1 or not cookie.isascii():
        return None
    payload, mac = cookie.split(".")
    if not hmac.compare_digest(_mac(key, label, payload), mac):
        return None
    try:
        data = json.loads(_unb64(payload))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    exp = data.get("exp")
    if not isinstance(exp, int) or exp <= now.timestamp():
        return None
    return data


def new_session(key: bytes, subject: str, now: dt.datetime) -> tuple[Session, str]:
    """A fresh session and its cookie value."""
    expires = int((now + SESSION_LIFETIME).timestamp())
    session = Session(subject=subject, expires_at=expires, csrf=secrets.token_urlsafe(24))
    return session, sign_blob(key, "session", {"sub": subject, "exp": expires, "csrf": session.csrf})


def read_session(key: bytes, cookie: str | None, now: dt.datetime) -> Session | None:
    """The session a cookie carries, or None when absent, forged, malformed or expired."""
    data = read_blob(key, "session", cookie, now)
    if data is None:
        return None
    sub, exp, csrf = data.get("sub"), data.get("exp"), data.get("csrf")
    if not isinstance(sub, str) or not isinstance(exp, int) or not isinstance(csrf, str):
        return None
    return Session(subject=sub, expires_at=exp, csrf=csrf)


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Whether a form carried this session's CSRF token (constant-time)."""
    return bool(presented) and hmac.compare_digest(session.csrf.encode(), str(presented).encode())
