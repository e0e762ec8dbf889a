"""The SSH CA keys: named by KeyManager URI in config, as the X.509 keys are.

`config.json` carries step-ca's block `"ssh": {"userKey": URI, "hostKey": URI}`
(a `cloudkms:` URI in the cloud, `softkms:path=...` on one machine; the Functions get them as
`CIRRUS_SSH_USER_KEY` / `CIRRUS_SSH_HOST_KEY`). The keys
are only ever used through `Signer.sign`. An authority created before SSH
support has no such block: `cirrus ssh init --dir DIR` adds the keys, and
until then the SSH routes answer step-ca's 501 "ssh certificate flows are not
enabled" (keys are never created on a request: a Function must not mint CA
keys as a side effect).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.errors import ConfigError
from shared.keys.base import KeyManager, KeyType, Signer

USER_KEY_FILE = "ssh_user_ca_key"
HOST_KEY_FILE = "ssh_host_ca_key"


@dataclass(frozen=True, slots=True)
class SSHKeyURIs:
    """Where the SSH user and host CA keys live."""

    user: str
    host: str


def ssh_key_uris(raw: Mapping[str, Any], base_dir: Path) -> SSHKeyURIs | None:
    """The `ssh` block of a config, with relative softkms paths resolved; None without one.

    Raises:
        ConfigError: the block is present but malformed.
    """
    block = raw.get("ssh")
    if block is None and not (raw.get("sshUserKey") or raw.get("sshHostKey")):
        return None
    if not isinstance(block, dict | None):
        raise ConfigError("config: 'ssh' must be an object")
    block = block or {}
    # CIRRUS_SSH_USER_KEY / CIRRUS_SSH_HOST_KEY (the Functions' `cloudkms:` URIs) win over the file.
    user = raw.get("sshUserKey") or block.get("userKey")
    host = raw.get("sshHostKey") or block.get("hostKey")
    if not isinstance(user, str) or not user or not isinstance(host, str) or not host:
        raise ConfigError("config: 'ssh' needs 'userKey' and 'hostKey' key URIs")
    from shared.config import _resolve  # the same path rules as the X.509 key

    return SSHKeyURIs(user=_resolve(base_dir, user), host=_resolve(base_dir, host))


@dataclass(frozen=True, slots=True)
class SSHSigners:
    """The opened SSH CA keys."""

    user: Signer
    host: Signer


def open_ssh_signers(uris: SSHKeyURIs, manager: KeyManager) -> SSHSigners:
    """Open both keys through the KeyManager."""
    return SSHSigners(user=manager.signer(uris.user), host=manager.signer(uris.host))


def create_ssh_keys(
    config: dict[str, Any], directory: Path, manager: KeyManager, key_type: KeyType = KeyType.EC_P256
) -> None:
    """Create the SSH user and host CA keys (softkms files under `secrets/`) and name them in `config`.

    Also switches SSH on the way `step ca init --ssh` does: `enableSSHCA` in the
    global claims and an `SSHPOP` provisioner for host renewal.

    Raises:
        ConfigError: the config already names SSH keys.
    """
    if config.get("ssh"):
        raise ConfigError("this authority already has SSH CA keys")
    for name in (USER_KEY_FILE, HOST_KEY_FILE):
        manager.create_key(f"softkms:path={directory}/secrets/{name}", key_type)
    config["ssh"] = {
        "userKey": f"softkms:path=secrets/{USER_KEY_FILE}",
        "hostKey": f"softkms:path=secrets/{HOST_KEY_FILE}",
    }
    authority = config.setdefault("authority", {})
    claims = authority.get("claims") or {}
    claims["enableSSHCA"] = True
    authority["claims"] = claims
    provisioners = authority.setdefault("provisioners", [])
    if not any(str(p.get("type", "")).upper() == "SSHPOP" for p in provisioners):
        provisioners.append({"type": "SSHPOP", "name": "sshpop", "claims": {"enableSSHCA": True}})


def add_ssh_to_authority(directory: Path) -> dict[str, Any]:
    """The upgrade path: add SSH CA keys to an existing authority folder and rewrite its config.

    Raises:
        ConfigError: no authority there, or it already has SSH keys.
    """
    from shared.keys.softkms import SoftKMS

    directory = directory.resolve()
    path = directory / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a JSON object")
    password_file = config.get("passwordFile")
    if not isinstance(password_file, str):
        raise ConfigError("the authority has no passwordFile for its softkms keys")
    pw_path = Path(password_file) if password_file.startswith("/") else directory / password_file
    create_ssh_keys(config, directory, SoftKMS(password_file=pw_path))
    path.write_text(json.dumps(config, indent=2) + "\n")
    return config
