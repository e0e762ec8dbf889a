"""`cirrus ca install --authority NAME`: a further issuing authority into a deployment's config.

The ceremony's last step for one more issuing CA under the deployment's root
(shared.authorities): its certificate and the chain up to the root go to
`certs/authority-<name>.crt`, and the `authorities` entry of that name gets the
file, the key URI and (if given) the URL prefix. An existing entry keeps its
provisioners and other settings; a new one starts with none (add them to its
`provisioners` list). The root key is never needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.ceremony import CeremonyError, verify_chain
from shared.errors import ConfigError
from shared.keys.base import Signer


def install_authority(
    directory: Path,
    *,
    name: str,
    prefix: str | None,
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    key_uri: str,
    signer: Signer,
) -> Path:
    """Add or update the `authorities` entry `name`; return the certificate file written.

    Raises:
        CeremonyError: not an authority's folder, a key that is not the certificate's, or a
            chain that does not reach the deployment's root.
    """
    from shared.authority_settings import parse_authorities
    from shared.config import ZERO_AUTHORITY_ID

    config_path = directory / "config.json"
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise CeremonyError(f"{config_path}: not an authority's config.json") from exc
    if not isinstance(config, dict) or not isinstance(config.get("root"), str):
        raise CeremonyError(f"{config_path}: has no root entry")
    try:
        root = x509.load_pem_x509_certificates((directory / config["root"]).read_bytes())[0]
    except (OSError, ValueError, IndexError) as exc:
        raise CeremonyError(f"{directory / config['root']}: cannot read the deployment's root") from exc
    if signer.public_key() != certificate.public_key():
        raise CeremonyError("the key at the URI is not the one the certificate certifies")
    verify_chain(certificate, chain, root)
    entries: list[Any] = config.get("authorities") or []
    if not isinstance(entries, list):
        raise CeremonyError(f"{config_path}: 'authorities' is not a list")
    entry = next((e for e in entries if isinstance(e, dict) and e.get("name") == name), None)
    if entry is None:
        entry = {"name": name, "provisioners": []}
        entries.append(entry)
    relative = Path("certs") / f"authority-{name}.crt"
    entry.update({"crt": str(relative), "key": key_uri})
    if prefix is not None:
        entry["prefix"] = prefix
    config["authorities"] = entries
    authority = config.get("authority")
    authority = authority if isinstance(authority, dict) else {}
    try:  # the same checks `cirrus up` makes, before anything is written
        parse_authorities(entries, resolve=str, default_id=str(authority.get("authorityId") or ZERO_AUTHORITY_ID),
                          default_provisioners=authority.get("provisioners") or [])  # fmt: skip
    except ConfigError as exc:
        raise CeremonyError(str(exc).removeprefix("config: ")) from exc
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (certificate, *chain))
    _atomic_write(directory / relative, pem)
    _atomic_write(config_path, (json.dumps(config, indent=2) + "\n").encode())
    return directory / relative


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
