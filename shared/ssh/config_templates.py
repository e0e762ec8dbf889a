"""`/ssh/config`: step-ca's default client and host configuration templates.

The six defaults of step-ca's `templates/values.go` (config.tpl,
step_includes.tpl, step_config.tpl, known_hosts.tpl for users;
sshd_config.tpl and ca.tpl for hosts), rendered here in Python for the
Unix branch of each template: they only substitute a few request values and
the CA keys, so they do not need the Go template engine. Output objects are
step-ca's (`name`, `type`, `path`, `comment`, `content` in base64).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from shared.errors import BadRequest


def _line(key_blob: bytes) -> str:
    from shared.ssh.wire import parse_public_key

    return parse_public_key(key_blob).authorized_key()


def _output(name: str, kind: str, path: str, content: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "path": path,
        "comment": "#",
        "content": base64.b64encode(content.encode()).decode(),
    }


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or any(c in value for c in "\r\n\"\0"):
        raise BadRequest(f"data.{key} must be a single-line string")
    return value


def known_hosts_line(host_key: bytes) -> str:
    """The known_hosts line trusting every host certificate the host CA signs."""
    return f"@cert-authority * {_line(host_key)}\n"


def user_templates(data: Mapping[str, Any], *, host_key: bytes) -> list[dict[str, Any]]:
    """The user's `~/.ssh/config` snippet, includes, step config and known_hosts."""
    step_path = _text(data, "StepPath")
    base = _text(data, "StepBasePath") or step_path
    context = _text(data, "Context")
    user = _text(data, "User")
    ctx = f" --context {context}" if context else ""
    step_config = f'Match exec "step ssh check-host{ctx} %h"\n'
    if user:
        step_config += f"\tUser {user}\n"
    step_config += (
        f'\tUserKnownHostsFile "{step_path}/ssh/known_hosts"\n'
        f"\tProxyCommand step ssh proxycommand{ctx} %r %h %p\n"
    )
    return [
        _output("config.tpl", "snippet", "~/.ssh/config", f'Host *\n\tInclude "{base}/ssh/includes"'),
        _output("step_includes.tpl", "prepend-line", "${STEPPATH}/ssh/includes", f'Include "{step_path}/ssh/config"'),
        _output("step_config.tpl", "file", "ssh/config", step_config),
        _output("known_hosts.tpl", "file", "ssh/known_hosts", known_hosts_line(host_key)),
    ]


def host_templates(data: Mapping[str, Any], *, user_key: bytes) -> list[dict[str, Any]]:
    """The host's sshd_config snippet and the `TrustedUserCAKeys` file.

    Raises:
        BadRequest: `Certificate` or `Key` missing (step-ca's `requires`).
    """
    for key in ("Certificate", "Key"):
        if not _text(data, key):
            raise BadRequest(f"template sshd_config.tpl requires {key}, please use `--set {key}=<value>` flag")
    sshd = (
        "Match all\n"
        "\tTrustedUserCAKeys /etc/ssh/ca.pub\n"
        f"\tHostCertificate /etc/ssh/{_text(data, 'Certificate')}\n"
        f"\tHostKey /etc/ssh/{_text(data, 'Key')}"
    )
    return [
        _output("sshd_config.tpl", "snippet", "/etc/ssh/sshd_config", sshd),
        _output("ca.tpl", "snippet", "/etc/ssh/ca.pub", _line(user_key) + "\n"),
    ]
