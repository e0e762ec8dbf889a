"""A provisioner's webhooks around one issuance: ENRICHING before templating, AUTHORIZING before handing out.

As in step-ca: every ENRICHING hook of the certificate type runs, in config order, before the
template renders; each must allow, and its `data` becomes `.Webhooks.<name>`. Every AUTHORIZING
hook then sees the certificate and must allow. The hook's URL is a template over the same data.

One difference in timing, not in outcome: step-ca asks AUTHORIZING hooks before its CAS signs;
Cirrus asks them right after `sign_certificate` and before the record is written, so the hook sees
the exact certificate (serial, key identifiers, the CA's own extensions) rather than a
reconstruction. A denied certificate is never recorded nor returned: an orphan signature nobody
received, as after any failure between signing and recording (see `shared.authority`).

A registration authority (`shared.ra`) signs nothing itself: it asks its AUTHORIZING hooks before
it forwards the request, over the certificate it asks the upstream for
(`authorize_x509_request`), so a denied request never reaches the upstream.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509

from shared.clock import Clock
from shared.errors import CAError, Forbidden
from shared.provisioners.base import SignAuthorization
from shared.templates import TemplateError
from shared.templates.provisioner import with_webhooks
from shared.webhooks.body import (
    Caller,
    encode_body,
    go_time,
    ssh_certificate_body,
    ssh_request_body,
    x509_certificate_body,
    x509_request_body,
)
from shared.webhooks.certificate import certificate_json
from shared.webhooks.config import AUTHORIZING, ENRICHING, Webhook, check_url
from shared.webhooks.wiring import provisioner_webhooks as provisioner_webhooks  # its home before the split

if TYPE_CHECKING:
    from shared.ssh.certificate import SSHCertificate
    from shared.ssh.options import SSHSignAuthorization
    from shared.ssh.wire import SSHPublicKey
    from shared.validity import Window
    from shared.webhooks.client import Answer

log = logging.getLogger("cirrus.webhooks")


class WebhookCaller(Protocol):
    """Sends one signed request body to one hook (`shared.webhooks.client.WebhookClient`)."""

    def call(self, hook: Webhook, url: str, body: bytes, *, request_id: str = "") -> Answer:
        """The hook's allowing answer; raises a CAError otherwise."""
        ...


class ProvisionerWebhooks:
    """The configured hooks of every provisioner, the client that calls them, and step-ca's bodies."""

    def __init__(self, *, hooks: Mapping[str, tuple[Webhook, ...]], client: WebhookCaller, clock: Clock) -> None:
        self._hooks = dict(hooks)
        self._client = client
        self._clock = clock

    def of(self, provisioner: str, cert_type: str) -> tuple[Webhook, ...]:
        """The hooks of `provisioner` that run for an "X509" or "SSH" issuance (empty: nothing to do)."""
        hooks = self._hooks.get(provisioner)
        if not hooks:
            return ()
        return tuple(h for h in hooks if h.applies_to(cert_type))

    def enrich(self, hooks: tuple[Webhook, ...], body: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """Ask every ENRICHING hook; their `data` by hook name (`.Webhooks`).

        Raises:
            Forbidden: a hook denied or answered wrongly (403).
            Unavailable: a hook could not be reached in time (503).
        """
        out: dict[str, Any] = {}
        for hook in hooks:
            if hook.kind == ENRICHING:
                out[hook.name] = self._ask(hook, body, data).data
        return out

    def authorize(self, hooks: tuple[Webhook, ...], body: dict[str, Any], data: Mapping[str, Any]) -> None:
        """Ask every AUTHORIZING hook; return only if all allow.

        Raises:
            Forbidden: a hook denied or answered wrongly (403).
            Unavailable: a hook could not be reached in time (503).
        """
        for hook in hooks:
            if hook.kind == AUTHORIZING:
                self._ask(hook, body, data)

    def _ask(self, hook: Webhook, body: dict[str, Any], data: Mapping[str, Any]) -> Answer:
        try:
            url = hook.url.render(data)
        except TemplateError:
            raise Forbidden(f"webhook {hook.name}: its url template failed") from None
        problem = check_url(url)
        if problem is not None:
            raise Forbidden(f"webhook {hook.name}: its url {problem}")
        body["timestamp"] = go_time(self._clock.now())
        try:
            return self._client.call(hook, url, encode_body(body))
        except CAError as exc:
            log.info("webhook refused the issuance", extra={"webhook": hook.name, "status": exc.status})
            raise

    def enrich_x509(self, hooks: tuple[Webhook, ...], auth: SignAuthorization,
                    csr: x509.CertificateSigningRequest | None, public_key: Any, data: dict[str, Any]) -> None:
        """Run the ENRICHING hooks and put their data in `data["Webhooks"]` (step-ca sets it only then)."""
        if any(h.kind == ENRICHING for h in hooks):
            body = x509_request_body(caller_of(auth), csr, public_key, self._clock.now())
            # step-ca's SetWebhook: added to a `Webhooks` object the provisioner's templateData set.
            data["Webhooks"] = with_webhooks(data.get("Webhooks"), self.enrich(hooks, body, data))

    def authorize_x509(self, hooks: tuple[Webhook, ...], auth: SignAuthorization, cert: x509.Certificate,
                       data: Mapping[str, Any]) -> None:
        """Run the AUTHORIZING hooks over the certificate about to be handed out."""
        if any(h.kind == AUTHORIZING for h in hooks):
            body = x509_certificate_body(caller_of(auth), certificate_json(cert), cert.public_key(),
                                         cert.not_valid_before_utc, cert.not_valid_after_utc, self._clock.now())
            self.authorize(hooks, body, data)

    def authorize_x509_request(self, hooks: tuple[Webhook, ...], auth: SignAuthorization,
                               certificate: Mapping[str, Any], public_key: Any, window: Window,
                               data: Mapping[str, Any]) -> None:  # fmt: skip
        """The AUTHORIZING hooks over a certificate another authority is about to be asked for
        (`shared.webhooks.certificate.requested_certificate_json`): a registration authority."""
        if any(h.kind == AUTHORIZING for h in hooks):
            body = x509_certificate_body(caller_of(auth), certificate, public_key, window.not_before,
                                         window.not_after, self._clock.now())  # fmt: skip
            self.authorize(hooks, body, data)


    def enrich_ssh(self, hooks: tuple[Webhook, ...], auth: SSHSignAuthorization, key: SSHPublicKey,
                   token: Mapping[str, Any], user: object) -> dict[str, Any]:
        """SSH ENRICHING hooks over `sshCertificateRequest`.

        Returns the data the hooks' URLs render over (sshutil's `.Type`, `.KeyID`, `.Principals`,
        `.Token`, `.Insecure.User`) with `.Webhooks` set when an ENRICHING hook ran; the SSH
        template, when the provisioner has one, reads `.Webhooks` from it.
        """
        from shared.ssh.certificate import CERT_TYPE_NAMES

        cert_type = CERT_TYPE_NAMES.get(auth.cert_type, str(auth.cert_type))
        data: dict[str, Any] = {
            "Type": cert_type, "KeyID": auth.key_id, "Principals": list(auth.principals), "Token": dict(token),
            "Insecure": {"User": dict(user) if isinstance(user, dict) else {}},
        }
        if any(h.kind == ENRICHING for h in hooks):
            body = ssh_request_body(Caller(auth.provisioner_name), key.blob, cert_type, auth.key_id, auth.principals,
                                    self._clock.now())
            data["Webhooks"] = self.enrich(hooks, body, data)
        return data

    def authorize_ssh(self, hooks: tuple[Webhook, ...], provisioner: str, cert: SSHCertificate,
                      data: Mapping[str, Any]) -> None:
        """SSH AUTHORIZING hooks over the signed certificate (`sshCertificate`), before it is recorded."""
        if any(h.kind == AUTHORIZING for h in hooks):
            self.authorize(hooks, ssh_certificate_body(Caller(provisioner), cert, self._clock.now()), data)


def caller_of(auth: SignAuthorization) -> Caller:
    """Who asks, as the request body names it."""
    return Caller(auth.provisioner.name, auth.authorization_crt, auth.authorization_principal)

