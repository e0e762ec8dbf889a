"""A registration authority refuses to renew what a revoked intermediate issued.

An RA forwards a rekey to the upstream as a fresh `/sign` (see `shared.ra`), and the upstream
cannot tell that fresh sign from a first issuance, so the upstream's own renewal check of its
root's ARL (`shared.intermediate_revocation`) never runs for it. The RA runs that check itself,
before forwarding: the presented certificate must not have been issued by an intermediate the
root's ARL lists.

Where the RA reads the ARL (`ra.arl` in the config):
- `"upstream"` (default): `GET <upstream>/crl/root-<fingerprint>.crl`, where a Cirrus upstream
  serves its published ARL, over the TLS pinned to the upstream root. A 404 means "none
  published" (a step-ca upstream publishes none): nothing is revoked.
- `"blobs"`: this deployment's own object storage (`blobs`), when the RA shares the upstream's
  bucket.
Either way the ARL counts only if the pinned root signed it, it is re-read at most every 30 s,
and a read that fails keeps the last good answer (`RevokedIntermediates`), so an upstream or
bucket outage does not turn into refused renewals.

Which intermediate issued a certificate is decided among the RA's configured intermediates
(`crt`): by issuer name and signature. A certificate from an intermediate the RA was not told
about (an upstream that rotated without the RA's config following) cannot be matched to an ARL
entry, so it is not refused here; the upstream's CRL and OCSP still show its status.

Written on `urllib.request` as `shared.ra.upstream` is: one GET needs no client library.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from shared.blobs.base import Blob
from shared.errors import BackendError
from shared.intermediate_revocation import CRL_CONTENT_TYPE

#: The largest ARL read (a root revokes few intermediates).
MAX_ARL_BYTES = 1 << 20


class RevokedCheck(Protocol):
    """`shared.intermediate_revocation.RevokedIntermediates`, as this check uses it."""

    def is_revoked(self, intermediate: x509.Certificate) -> bool:
        """Whether a root's ARL lists `intermediate`."""
        ...


class UpstreamARL:
    """The upstream's published objects under `/crl/`, read-only, as `ARLSource`."""

    def __init__(self, base_url: str, *, tls: ssl.SSLContext, timeout: float) -> None:
        self._base = base_url.rstrip("/")
        self._tls = tls
        self._timeout = timeout

    def read(self, name: str) -> Blob | None:
        """`GET <upstream>/<name>`; None on 404.

        Raises:
            BackendError: unreachable, or any other answer.
        """
        if not name.startswith("crl/") or ".." in name:
            raise BackendError("only published CRLs are read from the upstream")
        request = urllib.request.Request(f"{self._base}/{name}", method="GET")  # noqa: S310 - https:// (ra_settings)
        try:
            with urllib.request.urlopen(request, context=self._tls, timeout=self._timeout) as response:  # noqa: S310
                data = response.read(MAX_ARL_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise BackendError(f"the upstream answered {exc.code} for its ARL", transient=True) from None
        except (urllib.error.URLError, OSError) as exc:
            raise BackendError(f"the upstream's ARL is not readable: {type(exc).__name__}", transient=True) from None
        if len(data) > MAX_ARL_BYTES:
            raise BackendError("the upstream's ARL is too large")
        return Blob(name=name, data=data, generation=0, content_type=CRL_CONTENT_TYPE)


def issuer_revoked(
    intermediates: Sequence[x509.Certificate], revoked: Callable[[], RevokedCheck]
) -> Callable[[x509.Certificate], bool]:
    """The `Authority` check: was `certificate` issued by one of `intermediates` that the ARL lists?

    `revoked` is called on the first renewal (it opens the ARL source), not at start.
    """
    opened: list[RevokedCheck] = []

    def check(certificate: x509.Certificate) -> bool:
        if not opened:
            opened.append(revoked())
        arl = opened[0]
        for intermediate in intermediates:
            if certificate.issuer != intermediate.subject or not arl.is_revoked(intermediate):
                continue
            try:
                certificate.verify_directly_issued_by(intermediate)
            except (ValueError, TypeError, InvalidSignature):
                continue  # the same name, another key: not this one's
            return True
        return False

    return check
