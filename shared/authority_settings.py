"""The `authorities` list: further issuing authorities beside the config's default one.

    "authorities": [
      {"name": "teams", "prefix": "teams", "crt": "certs/teams.crt",
       "key": "softkms:path=secrets/teams.key", "caIssuersURL": "http://.../teams.crt",
       "provisioners": [{"type": "JWK", "name": "teams-admin", ...}]}
    ]

Each entry is one issuing CA under the deployment's root(s): its own certificate
chain (`crt`, the issuing certificate first, then any intermediates up to but
excluding the root, as the top-level `crt`), its own key URI and its own
provisioners. `prefix` mounts the step-ca API for it under `/<prefix>/...`;
without one it is reached through its provisioners at the default mount.
`authorityId` (default: the name) keys its records, CRL and OCSP answers.

Only the shape is checked here (no file or key is read): names, ids and
prefixes unique and usable in a URL, a provisioner name belonging to one
authority. The chain and the key are checked when the services are built
(`shared.authorities`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ConfigError

# Usable as a blob name component (`crl/<id>.crl`) and as one URL path segment; matched with
# `fullmatch` (a `$` would let a trailing newline through).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_PREFIX = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# First path segments the deployment already serves: a prefix may not shadow them.
RESERVED_PREFIXES = frozenset({
    "acme", "admin", "crl", "dashboard", "federation", "health", "internal", "intermediates", "inventory",
    "linked", "ocsp", "provisioners", "re-sign", "rekey", "renew", "revoke", "root", "roots", "scep", "sign",
    "ssh", "version", "webhooks",
})


@dataclass(frozen=True, slots=True)
class AuthoritySettings:
    """One entry of `authorities` (paths resolved against the config's folder)."""

    name: str
    authority_id: str
    prefix: str
    chain: Path
    key: str
    provisioners: tuple[Mapping[str, Any], ...]
    ca_issuers_url: str = ""
    ocsp_url: str = ""


def parse_authorities(
    raw: object,
    *,
    resolve: Any,
    default_id: str,
    default_provisioners: Iterable[Mapping[str, Any]],
) -> tuple[AuthoritySettings, ...]:
    """Validate the `authorities` list.

    Args:
        raw: the config's `authorities` value (None or a list of objects).
        resolve: turns a relative path or softkms URI into one under the config's folder.
        default_id: the default authority's id (no entry may reuse it).
        default_provisioners: the default authority's provisioner blocks (names are unique overall).

    Raises:
        ConfigError: one line naming the first problem.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ConfigError("config: 'authorities' must be a list of objects")
    owners = {str(p.get("name")): "the default authority" for p in default_provisioners}
    ids, prefixes = {default_id}, set()
    parsed: list[AuthoritySettings] = []
    for index, entry in enumerate(raw):
        name = entry.get("name")
        where = f"authorities[{index}]"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"config: {where}.name must be 1-63 letters, digits, '-' or '_'")
        where = f"authority {name!r}"
        authority_id = entry.get("authorityId", name)
        if not isinstance(authority_id, str) or not _NAME.fullmatch(authority_id):
            raise ConfigError(f"config: {where}: authorityId must be 1-63 letters, digits, '-' or '_'")
        if authority_id in ids:
            raise ConfigError(f"config: {where}: authority name/id {authority_id!r} is used twice")
        ids.add(authority_id)
        prefix = entry.get("prefix", "")
        if not isinstance(prefix, str) or (prefix and not _PREFIX.fullmatch(prefix)):
            raise ConfigError(f"config: {where}: prefix must be one lowercase URL path segment")
        if prefix in RESERVED_PREFIXES:
            raise ConfigError(f"config: {where}: prefix {prefix!r} is a route the CA already serves")
        if prefix and prefix in prefixes:
            raise ConfigError(f"config: {where}: prefix {prefix!r} is used twice")
        prefixes.add(prefix)
        for key in ("crt", "key"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ConfigError(f"config: {where}: {key!r} must be a non-empty string")
        provisioners = entry.get("provisioners") or []
        if not isinstance(provisioners, list) or not all(isinstance(p, dict) for p in provisioners):
            raise ConfigError(f"config: {where}: 'provisioners' must be a list of objects")
        for p in provisioners:
            pname = str(p.get("name"))
            if pname in owners:
                raise ConfigError(f"config: {where}: provisioner {pname!r} already belongs to {owners[pname]}")
            owners[pname] = f"authority {name!r}"
        urls = {}
        for key in ("caIssuersURL", "ocspURL"):
            value = entry.get(key, "")
            if not isinstance(value, str) or (value and not value.startswith(("http://", "https://"))):
                raise ConfigError(f"config: {where}: {key} must be an http(s) URL")
            urls[key] = value
        parsed.append(AuthoritySettings(
            name=name,
            authority_id=authority_id,
            prefix=prefix,
            chain=Path(resolve(entry["crt"])),
            key=resolve(entry["key"]),
            provisioners=tuple(provisioners),
            ca_issuers_url=urls["caIssuersURL"],
            ocsp_url=urls["ocspURL"],
        ))
    return tuple(parsed)
