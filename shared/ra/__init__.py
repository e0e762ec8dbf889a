"""Registration authority mode: authorize here, have an upstream authority sign.

A Cirrus instance configured with an `"ra"` block instead of a signing `key`
runs the whole pipeline itself (its own provisioners, CSR checks, policy,
validity, endpoint grouping) and, at the one step that would sign, forwards the
client's original CSR to an upstream step-ca-compatible authority (another
Cirrus or step-ca) with a one-time JWK token it mints with its own credential
there. The certificate that comes back is checked (chains to the pinned
upstream root, carries the CSR's public key and exactly the names this RA
authorized) before it is recorded here in the same atomic write as a local
issuance, so the RA's store, endpoints and events describe what it forwarded.

Because nothing is recorded before upstream answered and the answer checked, an
upstream outage (connection refused, timeout, 5xx) is a 503 with no record.
Refusals by upstream map to 4xx (its own step-ca error message, which is meant
for clients) or, when the RA's credential itself is refused, to 503: the client
did nothing wrong and the operator must fix the RA's configuration.

Renewal: upstream `/renew` authenticates with the client's certificate key,
which the RA does not hold, and step-ca's `/sign` requires a CSR signed by the
certificate's key; so at an RA a rekey (new CSR) is forwarded as a fresh upstream
sign for the recorded names and attached to the same endpoint, and a plain renew
is refused with a 403 that says to rekey.

Modules: `settings` (the config block and credential), `upstream` (tokens, HTTP,
checks of what comes back), `wiring` (the keyless `Authority`, `cirrus up`'s TLS
certificate).
"""

from shared.ra.settings import RASettings, load_private_jwk, ra_settings
from shared.ra.upstream import UpstreamCA, check_upstream_certificate
from shared.ra.wiring import keyless_issuer, registration_authority, upstream_server_certificate

__all__ = [
    "RASettings",
    "UpstreamCA",
    "check_upstream_certificate",
    "keyless_issuer",
    "load_private_jwk",
    "ra_settings",
    "registration_authority",
    "upstream_server_certificate",
]
