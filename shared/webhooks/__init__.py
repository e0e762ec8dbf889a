"""step-ca-compatible provisioner webhooks (reference section 5): ENRICHING and AUTHORIZING.

A provisioner's `options.webhooks` lists outside services asked at issuance: an ENRICHING hook
answers data that templates read as `.Webhooks.<name>` (so an inventory can live in an outside
service), an AUTHORIZING hook allows or denies the certificate about to be signed. Requests carry
step-ca's body, its `X-Smallstep-Signature` HMAC and `X-Smallstep-Webhook-ID` headers, so a
webhook server written for step-ca works unchanged.

This is not the event sink of the same name (`shared.events.webhook`): that one tells a receiver
what happened; these ask a server before anything happens.
"""

from __future__ import annotations

from shared.webhooks.config import Webhook, load_webhooks

__all__ = ["Webhook", "load_webhooks"]
