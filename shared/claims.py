"""Provisioner claims: certificate lifetimes and the renewal switches.

Resolution follows step-ca: a provisioner's value wins, else the authority's
global `claims`, else step-ca's defaults. If only a default is given and it
lies outside the min/max, min/max stretch to it. All durations must be
positive and min <= default <= max.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shared.durations import parse_duration
from shared.errors import ConfigError

_DEFAULTS: dict[str, str] = {
    "minTLSCertDuration": "5m",
    "maxTLSCertDuration": "24h",
    "defaultTLSCertDuration": "24h",
    "minUserSSHCertDuration": "5m",
    "maxUserSSHCertDuration": "24h",
    "defaultUserSSHCertDuration": "16h",
    "minHostSSHCertDuration": "5m",
    "maxHostSSHCertDuration": "720h",
    "defaultHostSSHCertDuration": "720h",
}
_BOOLS = ("enableSSHCA", "disableRenewal", "allowRenewalAfterExpiry", "disableSmallstepExtensions")


@dataclass(frozen=True, slots=True)
class Claims:
    """Resolved claims of one provisioner."""

    min_tls: dt.timedelta
    max_tls: dt.timedelta
    default_tls: dt.timedelta
    min_user_ssh: dt.timedelta
    max_user_ssh: dt.timedelta
    default_user_ssh: dt.timedelta
    min_host_ssh: dt.timedelta
    max_host_ssh: dt.timedelta
    default_host_ssh: dt.timedelta
    enable_ssh_ca: bool = False
    disable_renewal: bool = False
    allow_renewal_after_expiry: bool = False
    disable_smallstep_extensions: bool = False


def _duration(raw: Mapping[str, Any], key: str) -> dt.timedelta | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"claims.{key} must be a duration string")
    try:
        parsed = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"claims.{key}: {exc}") from exc
    if parsed <= dt.timedelta(0):
        raise ConfigError(f"claims.{key} must be positive")
    return parsed


def resolve_claims(
    provisioner: Mapping[str, Any] | None,
    global_claims: Mapping[str, Any] | None,
    *,
    renewal_default_disabled: bool = False,
) -> Claims:
    """Merge provisioner claims over global claims over step-ca's defaults.

    `renewal_default_disabled` is True for provisioner types whose renewal is
    off unless switched on (ACME, OIDC in the platform's grouping rules).

    Raises:
        ConfigError: a value is malformed or min <= default <= max fails.
    """
    prov = dict(provisioner or {})
    glob = dict(global_claims or {})
    values: dict[str, dt.timedelta] = {}
    for prefix in ("TLSCert", "UserSSHCert", "HostSSHCert"):
        trio: dict[str, dt.timedelta] = {}
        for kind in ("min", "max", "default"):
            key = f"{kind}{prefix}Duration"
            got = _duration(prov, key) or _duration(glob, key) or parse_duration(_DEFAULTS[key])
            trio[kind] = got
        explicit_default = _duration(prov, f"default{prefix}Duration") is not None
        if explicit_default:
            if _duration(prov, f"min{prefix}Duration") is None and trio["default"] < trio["min"]:
                trio["min"] = trio["default"]
            if _duration(prov, f"max{prefix}Duration") is None and trio["default"] > trio["max"]:
                trio["max"] = trio["default"]
        if not trio["min"] <= trio["default"] <= trio["max"]:
            raise ConfigError(f"claims: {prefix} durations must satisfy min <= default <= max")
        for kind, v in trio.items():
            values[f"{kind}{prefix}"] = v
    flags: dict[str, bool] = {}
    for key in _BOOLS:
        value = prov.get(key, glob.get(key))
        if value is None:
            value = renewal_default_disabled if key == "disableRenewal" else False
        if not isinstance(value, bool):
            raise ConfigError(f"claims.{key} must be true or false")
        flags[key] = value
    return Claims(
        min_tls=values["minTLSCert"],
        max_tls=values["maxTLSCert"],
        default_tls=values["defaultTLSCert"],
        min_user_ssh=values["minUserSSHCert"],
        max_user_ssh=values["maxUserSSHCert"],
        default_user_ssh=values["defaultUserSSHCert"],
        min_host_ssh=values["minHostSSHCert"],
        max_host_ssh=values["maxHostSSHCert"],
        default_host_ssh=values["defaultHostSSHCert"],
        enable_ssh_ca=flags["enableSSHCA"],
        disable_renewal=flags["disableRenewal"],
        allow_renewal_after_expiry=flags["allowRenewalAfterExpiry"],
        disable_smallstep_extensions=flags["disableSmallstepExtensions"],
    )
