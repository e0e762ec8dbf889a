"""Where a leaf comes from when this instance does not sign it: an upstream issuing authority.

Registration authority mode (`shared.ra`) hands the `Authority` an `UpstreamIssuer`; the
authority runs every check of its pipeline, then asks the upstream for the certificate
instead of signing, and records what comes back. Kept apart from `shared.authority` so the
pipeline names only this narrow contract, never the HTTP client behind it.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509

from shared.validity import Window
from shared.x509.names import SANs

#: The validity this instance's claims allowed, which the upstream is asked for.
UpstreamWindow = Window


class UpstreamIssuer(Protocol):
    """The signing step of an issuance, performed by another authority."""

    def issue(
        self,
        csr: x509.CertificateSigningRequest | None,
        *,
        common_name: str,
        sans: SANs,
        window: UpstreamWindow | None,
    ) -> tuple[x509.Certificate, list[x509.Certificate]]:
        """Forward the authorized request (for `window`); the checked leaf and upstream's chain.

        `csr` is None for a renewal without a new key, which an upstream cannot sign
        (its `/sign` needs a CSR signed by the key): implementations refuse it.
        """
        ...
