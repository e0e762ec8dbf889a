"""Builds the SSH authority for a `Services` (lazily, the first time an SSH route is used)."""

from __future__ import annotations

from typing import Any

from shared.errors import ConfigError
from shared.keys.registry import KeyManagers
from shared.ssh.add_user import DEFAULT_ADD_USER_COMMAND, DEFAULT_ADD_USER_PRINCIPAL
from shared.ssh.authority import SSHAuthority
from shared.ssh.keys import open_ssh_signers, ssh_key_uris
from shared.webhooks.issuance import provisioner_webhooks


def ssh_authority(services: Any) -> SSHAuthority | None:
    """The SSH authority of these services, or None when the config names no SSH keys.

    Raises:
        ConfigError: the `ssh` block is malformed or a key cannot be opened.
    """
    settings = services.settings
    uris = ssh_key_uris(settings.raw, settings.base_dir)
    if uris is None:
        return None
    signers = open_ssh_signers(uris, KeyManagers(password_file=settings.password_file))
    block = settings.raw.get("ssh") or {}
    principal = block.get("addUserPrincipal") or DEFAULT_ADD_USER_PRINCIPAL
    command = block.get("addUserCommand") or DEFAULT_ADD_USER_COMMAND
    if not isinstance(principal, str) or not isinstance(command, str):
        raise ConfigError("config: ssh.addUserPrincipal and ssh.addUserCommand must be strings")
    return SSHAuthority(
        authority_id=settings.authority_id,
        signers=signers,
        provisioners=services.provisioners,
        audiences=services.audiences,
        store=services.store,
        clock=services.clock,
        backdate=settings.backdate,
        sinks=services.sinks,
        add_user_principal=principal,
        add_user_command=command,
        webhooks=provisioner_webhooks(services.provisioners.webhooks, roots=services.roots, clock=services.clock),
        inventories=services.store,  # provisioners' `options.inventory` (every store backend keeps inventories)
    )
