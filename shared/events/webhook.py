"""Event sink: an HTTPS webhook, one structured CloudEvent per POST, HMAC-signed.

Spec: `webhook:https://receiver.example/path`. Each event is POSTed as its
structured CloudEvents JSON (`application/cloudevents+json`), with:

- `X-Cirrus-Signature: t=<unix seconds>,v1=<hex>` where v1 is
  HMAC-SHA256(secret, "<t>." + body). The timestamp inside the MAC lets a
  receiver refuse replays older than its tolerance; the MAC over the exact
  bytes sent means no JSON re-encoding question arises.
- `ce-id` and `ce-type` headers, so a receiver can de-duplicate (delivery is at
  least once: a retry after a lost answer, or the sweep's re-delivery, may
  repeat an event) without parsing the body.

The secret comes from `CIRRUS_WEBHOOK_SECRET` or the file
`CIRRUS_WEBHOOK_SECRET_FILE` (never from the URL, which is logged and stored
in config). A receiver answering 2xx has taken the event; 408, 429 and 5xx or a
network failure are retried with exponential backoff within one deadline;
other 4xx are final (the receiver refuses it; retrying cannot help). What
still fails raises `BackendError`, and `shared.events.delivery` keeps it for
the sweep to re-deliver.

Written on `http.client` through `shared.webhooks.bounded_post`: one POST per
event needs no client library, and the whole POST, resolving the host name
included (`getaddrinfo`, which urllib calls, takes no timeout), ends by its timeout.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path

from shared.errors import BackendError, ConfigError
from shared.model import Event
from shared.webhooks import bounded_post
from shared.webhooks.resolve import Resolve, system_resolve

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
SIGNATURE_HEADER = "X-Cirrus-Signature"
SECRET_ENV = "CIRRUS_WEBHOOK_SECRET"  # noqa: S105 - the variable's name, not a secret
SECRET_FILE_ENV = "CIRRUS_WEBHOOK_SECRET_FILE"  # noqa: S105
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: bytes, header: str, body: bytes, *, now: int, tolerance: int = 300) -> bool:
    """What a receiver runs: the MAC matches (constant time) and the timestamp is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    stamp = parts.get("t", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12) or abs(now - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, int(stamp), body), f"t={stamp},v1={parts.get('v1', '')}")


def load_secret() -> bytes:
    """The shared secret from the environment (or the file it names).

    Raises:
        ConfigError: no secret, or one shorter than 16 bytes.
    """
    from shared.config import environment_value

    secret = (environment_value(SECRET_ENV) or "").encode()
    path = environment_value(SECRET_FILE_ENV)
    if not secret and path:
        try:
            secret = Path(path).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"webhook sink: cannot read {SECRET_FILE_ENV} ({path}): {exc.strerror}") from exc
    if len(secret) < 16:
        raise ConfigError(f"webhook sink: set {SECRET_ENV} (or {SECRET_FILE_ENV}) to a secret of 16+ bytes")
    return secret


class WebhookSink:
    """POSTs each event to one URL, signed, with bounded retries."""

    def __init__(
        self,
        *,
        url: str,
        secret: bytes,
        timeout: float = 3.0,
        deadline: float = 5.0,
        initial_delay: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall: Callable[[], float] = time.time,
        resolve: Resolve = system_resolve,
    ) -> None:
        """Check the URL (http(s), a host, no userinfo) and keep the settings.

        Args:
            url: the receiver.
            secret: the HMAC key shared with the receiver.
            timeout: seconds one POST may take.
            deadline: seconds all tries of one event may take.
            initial_delay: pause before the second try (doubles each time).
            resolve: the name resolver (a parameter so tests can give a slow one).
        """
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
            raise ConfigError("webhook sink URL must be http(s)://host/path without user info")
        self.url = url
        self._secret = secret
        self._timeout = timeout
        self._deadline = deadline
        self._initial_delay = initial_delay
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._resolve = resolve

    def publish(self, events: Sequence[Event]) -> None:
        """Deliver every event; raise `BackendError` naming how many were not taken."""
        failed = [event for event in events if not self._deliver(event)]
        if failed:
            raise BackendError(f"webhook sink: {len(failed)} of {len(events)} events not delivered", transient=True)

    def failed_of(self, events: Sequence[Event]) -> list[Event]:
        """Deliver every event and return those the receiver did not take (for delivery tracking)."""
        return [event for event in events if not self._deliver(event)]

    def _deliver(self, event: Event) -> bool:
        body = event.to_cloudevent_json().encode("utf-8")
        end = self._clock() + self._deadline
        delay = self._initial_delay
        while True:
            outcome = self._post(event, body)
            if outcome is not None:
                return outcome
            if self._clock() + delay >= end:
                return False
            self._sleep(delay)
            delay *= 2

    def _post(self, event: Event, body: bytes) -> bool | None:
        """True: taken; False: refused for good; None: worth another try."""
        headers = {
            "Content-Type": CONTENT_TYPE,
            SIGNATURE_HEADER: signature(self._secret, int(self._wall()), body),
            "ce-id": event.id,
            "ce-type": event.type,
            "ce-specversion": "1.0",
            "User-Agent": "cirrus-ca-webhook/1",
        }
        try:  # the name is resolved inside the timeout too (shared.webhooks.bounded_post)
            status = bounded_post.post(self.url, body, headers, timeout=self._timeout, resolve=self._resolve).status
        except bounded_post.PostFailed:
            return None
        if 200 <= status < 300:
            return True
        return None if status in _RETRYABLE_STATUS else False


def from_spec(spec: str) -> WebhookSink:
    """`webhook:URL` -> a sink with the secret from the environment."""
    return WebhookSink(url=spec.removeprefix("webhook:"), secret=load_secret())
