"""A remote JSON Web Key Set (Google's, a tenant's, an OIDC issuer's), cached and refreshed.

The set is fetched on first use, kept for the `Cache-Control: max-age` the
server sends (bounded), and fetched again at most once per `min_refresh` when
a token names a `kid` the cached set lacks (key rotation) - so a stream of
tokens with made-up `kid`s cannot turn the CA into a request amplifier.
An unreachable or broken key server is `Unavailable` (503): the client may
retry, and the token was not judged. The standard library's urllib does the
fetch: one GET of a small JSON document does not warrant a client library,
and PyJWT's `PyJWKClient` neither bounds refreshes nor separates "outage"
(503) from "bad token" (401).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

import jwt

from shared.errors import ConfigError, Unauthorized, Unavailable

log = logging.getLogger("cirrus.provisioners.jwks")

MAX_DOCUMENT_BYTES = 256 * 1024
FETCH_TIMEOUT = 5.0
_MAX_AGE = re.compile(r"max-age=(\d{1,9})")

Fetch = Callable[[str], tuple[bytes, Mapping[str, str]]]


def http_get(url: str, headers: Mapping[str, str] | None = None) -> tuple[bytes, Mapping[str, str]]:
    """GET a small document over http(s) with a timeout.

    Raises:
        Unavailable: network error, non-2xx status, or a document over the size bound.
    """
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"not an http(s) URL: {url!r}")
    req = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310 - scheme checked above
    try:
        with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT) as resp:  # noqa: S310
            body = resp.read(MAX_DOCUMENT_BYTES + 1)
            resp_headers = {k.lower(): v for k, v in resp.headers.items()}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log.warning("fetching %s failed: %s", url, exc)
        raise Unavailable("identity key server unavailable; retry later") from exc
    if len(body) > MAX_DOCUMENT_BYTES:
        raise Unavailable("identity key server answered with an oversized document")
    return body, resp_headers


def fetch_json(url: str, fetch: Fetch | None = None) -> tuple[dict[str, Any], Mapping[str, str]]:
    """GET a JSON object.

    Raises:
        Unavailable: fetch failure or not a JSON object.
    """
    body, headers = (fetch or http_get)(url)
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise Unavailable("identity key server answered with invalid JSON") from exc
    if not isinstance(doc, dict):
        raise Unavailable("identity key server answered with invalid JSON")
    return doc, headers


class RemoteKeySet:
    """The public keys at a JWKS URL, by `kid`."""

    def __init__(
        self,
        url: str,
        *,
        fetch: Fetch | None = None,
        min_refresh: float = 60.0,
        default_ttl: float = 3600.0,
        max_ttl: float = 24 * 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._fetch = fetch
        self._min_refresh = min_refresh
        self._default_ttl = default_ttl
        self._max_ttl = max_ttl
        self._now = monotonic
        self._lock = threading.Lock()
        self._keys: dict[str, list[Any]] = {}
        self._fetched_at: float | None = None
        self._expires_at = 0.0

    @property
    def url(self) -> str:
        """Where the set is fetched from."""
        return self._url

    def keys_for(self, kid: object) -> list[Any]:
        """The public keys whose `kid` is `kid` (refreshing once when it is unknown).

        Raises:
            Unauthorized: no key has that `kid` (after a refresh, if one was due).
            Unavailable: the key server cannot be reached and no usable set is cached.
        """
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise Unauthorized("invalid token: missing or invalid kid")
        with self._lock:
            now = self._now()
            if self._fetched_at is None or now >= self._expires_at:
                self._refresh(now, keep_stale=self._fetched_at is not None)
            elif kid not in self._keys and now - self._fetched_at >= self._min_refresh:
                self._refresh(now, keep_stale=True)
            found = self._keys.get(kid)
        if not found:
            raise Unauthorized(f"invalid token: cannot find key for kid {kid[:64]}")
        return found

    def _refresh(self, now: float, *, keep_stale: bool) -> None:
        try:
            doc, headers = fetch_json(self._url, self._fetch)
            keys = self._parse(doc)
        except Unavailable:
            if keep_stale and self._keys:
                # An outage after a good fetch: keep serving the old set, try again after `min_refresh`.
                self._fetched_at = now
                self._expires_at = now + self._min_refresh
                return
            raise
        match = _MAX_AGE.search(headers.get("cache-control", ""))
        ttl = float(match.group(1)) if match else self._default_ttl
        self._keys = keys
        self._fetched_at = now
        self._expires_at = now + min(max(ttl, self._min_refresh), self._max_ttl)

    @staticmethod
    def _parse(doc: Mapping[str, Any]) -> dict[str, list[Any]]:
        raw = doc.get("keys")
        if not isinstance(raw, list):
            raise Unavailable("identity key server answered without a key set")
        keys: dict[str, list[Any]] = {}
        for entry in raw:
            if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or "d" in entry:
                continue
            if entry.get("use") not in (None, "sig") or entry.get("kty") not in ("RSA", "EC", "OKP"):
                continue  # public signature keys only: never a symmetric (`oct`) key
            try:
                key = jwt.PyJWK(entry).key
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # an unsupported key type does not spoil the others
            keys.setdefault(entry["kid"], []).append(key)
        return keys
