"""`options.webhooks` of a provisioner, in step-ca's shape, checked when the configuration loads.

Each entry: `name`, `url` (a Go template over the template data, as in step-ca), `kind`
(ENRICHING or AUTHORIZING), `certType` (X509, SSH or ALL; empty = ALL), `secret` (base64, the
HMAC key), `bearerToken` or `basicAuth` (`{"username", "password"}`), `disableTLSClientAuth`,
an optional `id` (sent as `X-Smallstep-Webhook-ID`) and Cirrus's own `timeout` (seconds).

Differences from step-ca, on purpose:
- step-ca keeps secrets only in its admin database (`json:"-"`); Cirrus has no such database for
  provisioners, so the secret and credentials sit in the config block. They are kept out of
  `repr`, and every error here names the webhook, never its secret.
- `url` must be https, as in step-ca, except for a loopback address (127.0.0.0/8, ::1,
  `localhost`), which may use http: the traffic never leaves the machine.
- SCEPCHALLENGE and NOTIFYING hooks serve SCEP, which Cirrus does not implement: refused.
- With `disableTLSClientAuth: true` no TLS client certificate is presented; otherwise the
  authority's own (`shared.webhooks.identity`: step-ca shows its HTTPS server certificate, Cirrus
  one made for the purpose, since a Function has no server certificate).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.templates import Template

ENRICHING = "ENRICHING"
AUTHORIZING = "AUTHORIZING"
KINDS = frozenset({ENRICHING, AUTHORIZING})
CERT_TYPES = frozenset({"X509", "SSH", "ALL"})
DEFAULT_TIMEOUT = 5.0
MAX_TIMEOUT = 30.0
MAX_WEBHOOKS = 16
MIN_SECRET_BYTES = 16
MAX_URL = 2048
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HOST_PART = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*[/?#]")
# step-ca's webhook ids are UUIDs; one not given is derived from the provisioner and hook names,
# so it stays the same across restarts and instances (a receiver may key its secrets by it).
_ID_NAMESPACE = "5d4c7a50-8f0e-4b8e-9c52-6b1f1f3c2a11"


@dataclass(frozen=True, slots=True)
class Webhook:
    """One configured webhook. Secrets are not part of `repr`."""

    id: str
    name: str
    url: Template
    kind: str
    cert_type: str
    secret: bytes = field(repr=False)
    bearer_token: str = field(default="", repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    disable_tls_client_auth: bool = False
    timeout: float = DEFAULT_TIMEOUT

    def applies_to(self, cert_type: str) -> bool:
        """Whether the hook runs for an "X509" or an "SSH" issuance."""
        return self.cert_type in ("ALL", cert_type)


def default_id(provisioner: str, name: str) -> str:
    """The id of a hook configured without one."""
    import uuid  # only for configs with hooks: this module loads with every provisioner registry

    return str(uuid.uuid5(uuid.UUID(_ID_NAMESPACE), f"{provisioner}\x00{name}"))


def check_url(url: str) -> str | None:
    """Why `url` may not be called (None when it may): https, a host, no user info; http only to loopback."""
    if len(url) > MAX_URL or any(c.isspace() or not c.isprintable() for c in url):
        return f"must be at most {MAX_URL} printable characters without spaces"
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if not host:
        return "has no host"
    if parts.username is not None or parts.password is not None:
        return "may not contain a username or password"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _loopback(host):
        return None
    return "must use https (http only to a loopback address)"


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string")
    return value


def _secret(entry: Mapping[str, Any], where: str) -> bytes:
    raw = entry.get("secret")
    if not isinstance(raw, str) or not raw:
        raise ConfigError(f"{where}: secret (base64) is required")
    try:
        secret = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: secret must be standard base64") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"{where}: secret must decode to at least {MIN_SECRET_BYTES} bytes")
    return secret


def _credentials(entry: Mapping[str, Any], where: str) -> tuple[str, tuple[str, str] | None]:
    bearer = _text(entry, "bearerToken", where)
    basic = entry.get("basicAuth")
    if basic is None:
        return bearer, None
    if not isinstance(basic, Mapping):
        raise ConfigError(f"{where}: basicAuth must be an object with username and password")
    username, password = _text(basic, "username", where), _text(basic, "password", where)
    if not username and not password:
        return bearer, None
    if bearer:
        raise ConfigError(f"{where}: set bearerToken or basicAuth, not both")
    if ":" in username:
        raise ConfigError(f"{where}: basicAuth username may not contain ':'")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in username + password):
        raise ConfigError(f"{where}: basicAuth may not contain control characters")
    return "", (username, password)


def _timeout(entry: Mapping[str, Any], where: str) -> float:
    raw = entry.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw <= MAX_TIMEOUT:
        raise ConfigError(f"{where}: timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}]")
    return float(raw)


def load_one(provisioner: str, entry: Any, index: int) -> Webhook:
    """One `options.webhooks` entry.

    Raises:
        ConfigError: naming the provisioner and the webhook (never showing a secret).
    """
    where = f"provisioner {provisioner!r}: options.webhooks[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be an object")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: name is required (1-64 of A-Z a-z 0-9 _ . -)")
    where = f"provisioner {provisioner!r}: webhook {name!r}"
    kind = _text(entry, "kind", where).upper()
    if kind not in KINDS:
        raise ConfigError(f"{where}: kind must be ENRICHING or AUTHORIZING")
    cert_type = _text(entry, "certType", where).upper() or "ALL"
    if cert_type not in CERT_TYPES:
        raise ConfigError(f"{where}: certType must be X509, SSH or ALL")
    url_text = _text(entry, "url", where)
    if not url_text:
        raise ConfigError(f"{where}: url is required")
    # The scheme, host and port are fixed here: a template may shape only the path and query (and the
    # rendered URL is checked again), so request data can never choose which server the CA calls.
    static = url_text.split("{{", 1)[0]
    if "{{" in url_text:
        host_part = _HOST_PART.match(static)
        if host_part is None:
            raise ConfigError(f"{where}: url may use a template only after its scheme, host and port")
        static = host_part.group(0)
    problem = check_url(static)
    if problem is not None:
        raise ConfigError(f"{where}: url {problem}")
    from shared.templates import Template, TemplateError  # the engine, only when a provisioner has hooks

    try:
        url = Template(url_text, name=f"{name}.url")
    except TemplateError as exc:
        raise ConfigError(f"{where}: url: {exc}") from None
    hook_id = _text(entry, "id", where) or default_id(provisioner, name)
    if len(hook_id) > 128 or not hook_id.isprintable():
        raise ConfigError(f"{where}: id must be printable text of at most 128 characters")
    disable = entry.get("disableTLSClientAuth", False)
    if not isinstance(disable, bool):
        raise ConfigError(f"{where}: disableTLSClientAuth must be true or false")
    bearer, basic = _credentials(entry, where)
    return Webhook(
        id=hook_id, name=name, url=url, kind=kind, cert_type=cert_type, secret=_secret(entry, where),
        bearer_token=bearer, basic_auth=basic, disable_tls_client_auth=disable, timeout=_timeout(entry, where),
    )


def load_webhooks(configs: Iterable[Mapping[str, Any]]) -> dict[str, tuple[Webhook, ...]]:
    """Each provisioner's `options.webhooks`, keyed by provisioner name (those without none are absent).

    Raises:
        ConfigError: a malformed entry, or two hooks of one provisioner with the same name.
    """
    out: dict[str, tuple[Webhook, ...]] = {}
    for config in configs:
        name = str(config.get("name", ""))
        options = config.get("options")
        if not isinstance(options, Mapping) or options.get("webhooks") is None:
            continue
        entries = options["webhooks"]
        if not isinstance(entries, list):
            raise ConfigError(f"provisioner {name!r}: options.webhooks must be a list")
        if len(entries) > MAX_WEBHOOKS:
            raise ConfigError(f"provisioner {name!r}: at most {MAX_WEBHOOKS} webhooks")
        hooks = tuple(load_one(name, entry, i) for i, entry in enumerate(entries))
        names = [h.name for h in hooks]
        duplicate = next((n for n in names if names.count(n) > 1), None)
        if duplicate is not None:
            raise ConfigError(f"provisioner {name!r}: two webhooks are named {duplicate!r}")
        if hooks:
            out[name] = hooks
    return out


_LISTED = ("id", "name", "url", "kind", "certType", "disableTLSClientAuth")


def without_secrets(provisioner: Mapping[str, Any]) -> dict[str, Any]:
    """A provisioner block as `GET /provisioners` may show it: each webhook as step-ca lists one.

    step-ca keeps a hook's secret, bearer token and basic credentials out of its JSON (`json:"-"`);
    Cirrus's config block holds them, so the listing keeps only the fields step-ca shows (and
    the id a receiver is told in `X-Smallstep-Webhook-ID`).
    """
    out = dict(provisioner)
    options = out.get("options")
    if not isinstance(options, Mapping) or not isinstance(options.get("webhooks"), list):
        return out
    name = str(out.get("name", ""))
    listed = []
    for entry in options["webhooks"]:
        if isinstance(entry, Mapping):
            shown = {k: entry[k] for k in _LISTED if k in entry}
            if "id" not in shown and isinstance(entry.get("name"), str):
                shown["id"] = default_id(name, entry["name"])
            listed.append(shown)
    out["options"] = {**options, "webhooks": listed}
    return out
