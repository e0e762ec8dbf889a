"""Building an authority's webhooks from its provisioners' `options.webhooks`.

Apart from `shared.webhooks.issuance` because every authority calls this when it is built, and
most have no hooks: the issuance module brings the request bodies, the certificate-as-JSON
encoder and the Go-JSON writer (`shared.webhooks.body`, `.certificate`, `shared.templates.gojson`),
which a cold Cloud Function would otherwise import on its first `/sign` for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from cryptography import x509

from shared.clock import Clock
from shared.webhooks.config import Webhook

if TYPE_CHECKING:
    from shared.webhooks.identity import ClientIdentity
    from shared.webhooks.issuance import ProvisionerWebhooks


def provisioner_webhooks(hooks: Mapping[str, tuple[Webhook, ...]], *, roots: Sequence[x509.Certificate],
                         clock: Clock, identity: Callable[[], ClientIdentity | None] | None = None,
                         ) -> ProvisionerWebhooks | None:  # fmt: skip
    """The authority's webhooks with the default client (TLS trusting the CA's roots); None without hooks.

    `identity` gives the client certificate shown to hook servers that ask for one
    (`shared.webhooks.identity`); it is called only when some provisioner has hooks.
    """
    if not hooks:
        return None
    from shared.webhooks.client import WebhookClient  # http.client and ssl: only for authorities with hooks
    from shared.webhooks.issuance import ProvisionerWebhooks

    client = WebhookClient(roots=roots, identity=identity() if identity is not None else None)
    return ProvisionerWebhooks(hooks=hooks, client=client, clock=clock)
