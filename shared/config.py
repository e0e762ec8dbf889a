"""Typed settings: the only reader of `os.environ`, validated once at start.

`config.json` mirrors step-ca's `ca.json` where the concept is shared (`root`,
`crt`, `key`, `address`, `dnsNames`, `authority.provisioners`,
`authority.claims`, `authority.backdate`, `crl`), so a step-ca provisioner
block loads unchanged. Cirrus-only settings sit beside them: `store` (store
URL), `blobs` (object storage URL), `passwordFile` (for softkms keys),
`events` (sinks), `externalURL` and `ocsp` (the delegated OCSP responder's
key URI and certificate lifetime).

Relative paths are resolved against the config file's folder. In the
serverless shape the functions read `CIRRUS_CONFIG` (a path to config.json
shipped in the bundle) and `CIRRUS_STORE` / `CIRRUS_BLOBS` / `CIRRUS_KEY` /
`CIRRUS_EVENTS` / `CIRRUS_OCSP_KEY` override the file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.alert_windows import DEFAULT_HORIZON, AlertWindows
from shared.authority_settings import AuthoritySettings, parse_authorities
from shared.durations import parse_duration
from shared.errors import ConfigError

MAX_BODY_BYTES = 64 * 1024
DEFAULT_ADDRESS = "127.0.0.1:9443"
ZERO_AUTHORITY_ID = "00000000-0000-0000-0000-000000000000"


def _resolve(base: Path, value: str) -> str:
    """Resolve a relative file path (or the path inside a softkms URI) against `base`."""
    if value.startswith("softkms:path="):
        inner = value[len("softkms:path=") :]
        return "softkms:path=" + str((base / inner).resolve()) if not inner.startswith("/") else value
    if value.startswith("sqlite:"):
        inner = value[len("sqlite:") :]
        return "sqlite:" + str((base / inner).resolve()) if not inner.startswith("/") else value
    if value.startswith("file:"):
        inner = value[len("file:") :]
        return "file:" + str((base / inner).resolve()) if not inner.startswith("/") else value
    if ":" in value.split("/", 1)[0]:
        return value
    return str((base / value).resolve())



def environment_value(name: str) -> str | None:
    """One environment variable, for a backend whose secret comes from the environment.

    The PKCS#11 PIN and the webhook secret are read this way, so this module
    stays the only reader of `os.environ` and secrets never pass through config files.
    """
    return os.environ.get(name)

@dataclass(frozen=True, slots=True)
class CRLSettings:
    """`crl` block (step-ca names plus Cirrus's sharding and URL)."""

    enabled: bool = True
    cache_duration: dt.timedelta = dt.timedelta(hours=24)
    publish_interval: dt.timedelta = dt.timedelta(hours=1)
    shards: int = 0
    base_url: str = ""
    ocsp_url: str = ""
    ca_issuers_url: str = ""
    publish_on_revoke: bool = False


@dataclass(frozen=True, slots=True)
class OCSPSettings:
    """`ocsp` block: the delegated OCSP responder (standards.md OCSP-05).

    `responder_key` is the KeyManager URI of the responder's own key; empty
    means the issuing CA key signs OCSP responses (the pre-delegation
    behaviour). `responder_lifetime` is the validity of each responder
    certificate; it is renewed at half-life, so it must be at least twice the
    CRL validity, else a response (whose nextUpdate is the CRL's) could outlive
    the certificate that signed it.
    """

    responder_key: str = ""
    responder_lifetime: dt.timedelta = dt.timedelta(hours=72)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the composition root needs, validated."""

    base_dir: Path
    roots: tuple[Path, ...]
    intermediate: Path
    key: str
    password_file: Path | None
    address: str
    dns_names: tuple[str, ...]
    common_name: str
    authority_id: str
    provisioners: tuple[Mapping[str, Any], ...]
    global_claims: Mapping[str, Any]
    backdate: dt.timedelta
    store: str
    blobs: str
    crl: CRLSettings
    ocsp: OCSPSettings = field(default_factory=OCSPSettings)
    events: Mapping[str, Any] = field(default_factory=dict)
    event_sinks: tuple[str, ...] = ()
    external_url: str = ""
    issuer_url: str = ""
    alert_windows: AlertWindows = field(default_factory=AlertWindows)
    max_body_bytes: int = MAX_BODY_BYTES
    raw: Mapping[str, Any] = field(default_factory=dict)
    authorities: tuple[AuthoritySettings, ...] = ()  # further issuing authorities (shared.authorities)

    @classmethod
    def load(cls, path: Path, *, overrides: Mapping[str, str] | None = None) -> Settings:
        """Read and validate `config.json`.

        Raises:
            ConfigError: unreadable file or invalid settings.
        """
        try:
            raw = json.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config {path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
        if not isinstance(raw, dict):
            raise ConfigError("config must be a JSON object")
        return cls.from_mapping(raw, base_dir=path.parent.resolve(), overrides=overrides or {})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings for a Cloud Function from environment variables.

        Raises:
            ConfigError: `CIRRUS_CONFIG` missing or invalid.
        """
        env = os.environ if environ is None else environ
        path = env.get("CIRRUS_CONFIG")
        if not path:
            raise ConfigError("CIRRUS_CONFIG must name the config.json to load")
        overrides = {
            k: env[v]
            for k, v in (
                ("store", "CIRRUS_STORE"),
                ("blobs", "CIRRUS_BLOBS"),
                ("key", "CIRRUS_KEY"),
                ("externalURL", "CIRRUS_EXTERNAL_URL"),
                ("eventSinks", "CIRRUS_EVENTS"),
                ("issuerURL", "CIRRUS_ISSUER_URL"),
                ("ocspResponderKey", "CIRRUS_OCSP_KEY"),
                ("sshUserKey", "CIRRUS_SSH_USER_KEY"),
                ("sshHostKey", "CIRRUS_SSH_HOST_KEY"),
            )
            if env.get(v)
        }
        return cls.load(Path(path), overrides=overrides)

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any], *, base_dir: Path, overrides: Mapping[str, str] | None = None
    ) -> Settings:
        """Validate a parsed config object.

        Raises:
            ConfigError: a required key is missing or a value is invalid.
        """
        merged = dict(raw)
        merged.update(overrides or {})

        def req_str(key: str) -> str:
            value = merged.get(key)
            if not isinstance(value, str) or not value:
                raise ConfigError(f"config: {key!r} must be a non-empty string")
            return value

        roots_raw = merged.get("root")
        roots_list = [roots_raw] if isinstance(roots_raw, str) else roots_raw
        if not isinstance(roots_list, list) or not roots_list or not all(isinstance(r, str) for r in roots_list):
            raise ConfigError("config: 'root' must be a path or a list of paths")
        authority = merged.get("authority") or {}
        if not isinstance(authority, dict):
            raise ConfigError("config: 'authority' must be an object")
        provisioners = authority.get("provisioners") or []
        if not isinstance(provisioners, list) or not all(isinstance(p, dict) for p in provisioners):
            raise ConfigError("config: 'authority.provisioners' must be a list of objects")
        names = [p.get("name") for p in provisioners]
        if len(set(names)) != len(names):
            raise ConfigError("config: provisioner names must be unique")
        claims = authority.get("claims") or {}
        if not isinstance(claims, dict):
            raise ConfigError("config: 'authority.claims' must be an object")
        try:
            backdate = parse_duration(str(authority.get("backdate") or "1m"))
        except ValueError as exc:
            raise ConfigError(f"config: authority.backdate: {exc}") from exc
        dns_names = merged.get("dnsNames") or ["localhost", "127.0.0.1", "::1"]
        if not isinstance(dns_names, list) or not all(isinstance(d, str) and d for d in dns_names):
            raise ConfigError("config: 'dnsNames' must be a list of names")
        password_file = merged.get("passwordFile")
        store = str(merged.get("store") or "sqlite:db/cirrus.db")
        blobs = str(merged.get("blobs") or "file:published")
        crl = _crl_settings(merged.get("crl") or {})
        ocsp = _ocsp_settings(merged.get("ocsp") or {}, base_dir, merged.get("ocspResponderKey"), crl)
        events = merged.get("events") or {}
        if not isinstance(events, dict):
            raise ConfigError("config: 'events' must be an object")
        sinks_raw = merged.get("eventSinks", events.get("sinks", []))
        if isinstance(sinks_raw, str):  # CIRRUS_EVENTS: comma-separated
            sinks_raw = [x.strip() for x in sinks_raw.split(",") if x.strip()]
        if not isinstance(sinks_raw, list) or not all(isinstance(x, str) for x in sinks_raw):
            raise ConfigError("config: 'events.sinks' must be a list of sink URLs")
        authority_id = str(authority.get("authorityId") or ZERO_AUTHORITY_ID)
        authorities = parse_authorities(merged.get("authorities"), resolve=lambda v: _resolve(base_dir, v),
                                        default_id=authority_id, default_provisioners=provisioners)
        if authorities and ("ra" in merged or merged.get("issuerURL")):
            raise ConfigError("config: 'authorities' needs a signing deployment (not with 'ra' or 'issuerURL')")
        return cls(
            base_dir=base_dir,
            roots=tuple(Path(_resolve(base_dir, r)) for r in roots_list),
            intermediate=Path(_resolve(base_dir, req_str("crt"))),
            key=_resolve(base_dir, req_str("key")) if "ra" not in merged else "",  # an RA holds no key (shared.ra)
            password_file=Path(_resolve(base_dir, password_file)) if password_file else None,
            address=str(merged.get("address") or DEFAULT_ADDRESS),
            dns_names=tuple(dns_names),
            common_name=str(merged.get("commonName") or "Cirrus Online CA"),
            authority_id=authority_id,
            provisioners=tuple(provisioners),
            global_claims=claims,
            backdate=backdate,
            store=_resolve(base_dir, store),
            blobs=_resolve(base_dir, blobs),
            crl=crl,
            ocsp=ocsp,
            events=events,
            event_sinks=tuple(sinks_raw),
            external_url=str(merged.get("externalURL") or ""),
            issuer_url=str(merged.get("issuerURL") or ""),
            alert_windows=_alert_windows(merged.get("alerts") or {}, provisioners),
            raw=merged,
            authorities=authorities,
        )


def _window(raw: Any, where: str, key: str) -> dt.timedelta | None:
    if not isinstance(raw, dict):
        raise ConfigError(f"config: {where} must be an object")
    value = raw.get(key)
    if value is None:
        return None
    try:
        window = parse_duration(str(value))
    except ValueError as exc:
        raise ConfigError(f"config: {where}.{key}: {exc}") from exc
    if window <= dt.timedelta(0):
        raise ConfigError(f"config: {where}.{key} must be positive")
    return window


def _alert_windows(raw: Any, provisioners: list[dict[str, Any]]) -> AlertWindows:
    """`alerts.expiringWithin` (all certificates), per provisioner `alerts.expiringWithin`,
    `alerts.horizon` (how far ahead the sweep looks); unset windows mean a third of the lifetime."""
    by_provisioner: dict[str, dt.timedelta] = {}
    for prov in provisioners:
        window = _window(prov.get("alerts") or {}, f"provisioner {prov.get('name')!r} alerts", "expiringWithin")
        if window is not None:
            by_provisioner[str(prov.get("name"))] = window
    horizon = _window(raw, "alerts", "horizon")
    return AlertWindows(
        default=_window(raw, "alerts", "expiringWithin"),
        by_provisioner=by_provisioner,
        horizon=horizon or DEFAULT_HORIZON,
    )


def _crl_settings(raw: Any) -> CRLSettings:
    if not isinstance(raw, dict):
        raise ConfigError("config: 'crl' must be an object")
    try:
        cache = parse_duration(str(raw.get("cacheDuration") or "24h"))
        interval = parse_duration(str(raw.get("publishInterval") or "1h"))
    except ValueError as exc:
        raise ConfigError(f"config: crl: {exc}") from exc
    shards = raw.get("shards", 0)
    if not isinstance(shards, int) or shards < 0 or shards > 1024:
        raise ConfigError("config: crl.shards must be an integer 0..1024")
    return CRLSettings(
        enabled=bool(raw.get("enabled", True)),
        cache_duration=cache,
        publish_interval=interval,
        shards=shards,
        base_url=str(raw.get("baseURL") or ""),
        ocsp_url=str(raw.get("ocspURL") or ""),
        ca_issuers_url=str(raw.get("caIssuersURL") or ""),
        publish_on_revoke=bool(raw.get("publishOnRevoke", False)),
    )


def _ocsp_settings(raw: Any, base_dir: Path, key_override: Any, crl: CRLSettings) -> OCSPSettings:
    if not isinstance(raw, dict):
        raise ConfigError("config: 'ocsp' must be an object")
    key = key_override or raw.get("responderKey") or ""
    if not isinstance(key, str):
        raise ConfigError("config: ocsp.responderKey must be a key URI")
    try:
        lifetime = parse_duration(str(raw.get("responderLifetime") or "72h"))
    except ValueError as exc:
        raise ConfigError(f"config: ocsp: {exc}") from exc
    if lifetime < dt.timedelta(hours=1):
        raise ConfigError("config: ocsp.responderLifetime must be at least 1h")
    if key and lifetime < 2 * crl.cache_duration:
        raise ConfigError("config: ocsp.responderLifetime must be at least twice crl.cacheDuration")
    return OCSPSettings(responder_key=_resolve(base_dir, key) if key else "", responder_lifetime=lifetime)
