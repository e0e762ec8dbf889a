"""The `"ra"` config block and the RA's credential at the upstream (a private JWK, owner-only)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from shared.errors import ConfigError

DEFAULT_TIMEOUT = 10.0
ARL_SOURCES = ("upstream", "blobs")


@dataclass(frozen=True, slots=True)
class RASettings:
    """The `"ra"` config block."""

    upstream: str
    provisioner: str
    key: Path
    roots: tuple[Path, ...]
    timeout: float = DEFAULT_TIMEOUT
    #: Where the root's ARL is read for renewals (`shared.ra.arl`): "upstream" or "blobs".
    arl: str = "upstream"


def ra_settings(raw: object, *, base_dir: Path, default_roots: Sequence[Path]) -> RASettings:
    """Validate the `"ra"` block; `root` defaults to the config's own roots (upstream's root).

    Raises:
        ConfigError: a missing or invalid field.
    """
    if not isinstance(raw, dict):
        raise ConfigError("config: 'ra' must be an object")
    upstream = raw.get("upstream")
    if not isinstance(upstream, str) or not upstream.startswith("https://"):
        raise ConfigError("config: 'ra.upstream' must be an https:// URL")
    provisioner = raw.get("provisioner")
    if not isinstance(provisioner, str) or not provisioner:
        raise ConfigError("config: 'ra.provisioner' must name the JWK provisioner at the upstream")
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        raise ConfigError("config: 'ra.key' must be the path of that provisioner's private JWK")
    root = raw.get("root")
    roots: tuple[Path, ...]
    if root is None:
        roots = tuple(default_roots)
    elif isinstance(root, str) and root:
        roots = (base_dir / root,)
    else:
        raise ConfigError("config: 'ra.root' must be the path of the upstream root certificate")
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 120:
        raise ConfigError("config: 'ra.timeout' must be a number of seconds in (0, 120]")
    arl = raw.get("arl", "upstream")
    if arl not in ARL_SOURCES:
        raise ConfigError("config: 'ra.arl' must be \"upstream\" (its /crl/) or \"blobs\" (this deployment's storage)")
    return RASettings(
        upstream=upstream.rstrip("/"), provisioner=provisioner, key=base_dir / key, roots=roots, timeout=float(timeout),
        arl=str(arl),
    )


def load_private_jwk(path: Path) -> dict[str, Any]:
    """Read the RA's credential at the upstream: a private JWK readable by the owner only.

    Raises:
        ConfigError: unreadable, group/world-readable, or not a private JWK.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the RA's upstream key {path}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and os.name == "posix":
        raise ConfigError(f"the RA's upstream key {path} must not be readable by group or others (chmod 600)")
    try:
        jwk = json.loads(text)
        if not isinstance(jwk, dict) or "d" not in jwk:
            raise ValueError("not a private JWK")
        jwt.PyJWK(jwk)
    except (ValueError, jwt.PyJWKError) as exc:
        raise ConfigError(f"the RA's upstream key {path} is not a private JWK") from exc
    return jwk


