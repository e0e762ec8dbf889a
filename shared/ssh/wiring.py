"""Builds the SSH authority for a `Services` (lazily, the first time an SSH route is used)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography import x509

from shared.errors import ConfigError
from shared.keys.registry import KeyManagers
from shared.ssh.add_user import DEFAULT_ADD_USER_COMMAND, DEFAULT_ADD_USER_PRINCIPAL
from shared.ssh.authority import SSHAuthority
from shared.ssh.keys import open_ssh_signers, ssh_key_uris
from shared.webhooks.wiring import provisioner_webhooks

if TYPE_CHECKING:
    from shared.webhooks.identity import ClientIdentity
    from shared.x509.profile import Issuer


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
        webhooks=provisioner_webhooks(services.provisioners.webhooks, roots=services.roots, clock=services.clock,
                                      identity=lambda: webhook_identity(services)),
        inventories=services.store,  # provisioners' `options.inventory` (every store backend keeps inventories)
    )


def webhook_identity(services: Any) -> ClientIdentity | None:
    """The client certificate SSH webhooks are shown (`shared.webhooks.identity`), as X.509's: issued
    by the intermediate issuing at the time, or by the upstream of a registration authority; none
    for an instance without a signer of its own (it forwards to an issuer function)."""
    from shared.webhooks.identity import ClientIdentity, signed_by, unless_revoked

    settings = services.settings
    if services.ra_upstream is not None:
        from shared.ra.wiring import upstream_identity

        return upstream_identity(services.ra_upstream, settings.dns_names, services.clock)
    if services.authority_factory is None:
        return None

    def current() -> tuple[Issuer, list[x509.Certificate]]:
        authority = services.issuing()
        return authority.issuer, authority.intermediates

    def revoked(intermediate: x509.Certificate) -> bool:  # never sign under a revoked one
        view = services.rotating.revoked_view if services.rotating is not None else None
        return view is not None and view().is_revoked(intermediate)

    issue = signed_by(unless_revoked(current, revoked), common_name=settings.common_name, names=settings.dns_names,
                      clock=services.clock)  # fmt: skip
    return ClientIdentity(issue=issue, clock=services.clock)
