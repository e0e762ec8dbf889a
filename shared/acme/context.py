"""Per-request context, shared services and the reply type for ACME handlers."""

from __future__ import annotations

import concurrent.futures
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from shared.acme.config import ACMEProvisionerConfig
from shared.acme.finalize import Finalizer, Revoker
from shared.acme.jws import JWS
from shared.acme.nonces import NonceService, PendingNonce
from shared.acme.repo import Repo
from shared.acme.validations import ValidationRunner
from shared.clock import Clock
from shared.store.base import CertificateReader, RevocationReader

# Characters `quote` leaves alone: ids and tokens (base64url) are made of them, so they need no quoting.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_UNRESERVED_PATH = re.compile(r"[A-Za-z0-9_.~/-]*")


def _segment(part: str) -> str:
    return part if _UNRESERVED.fullmatch(part) else quote(part, safe="")


@dataclass(frozen=True, slots=True)
class Services:
    """What handlers depend on (built once by `ACMEServer`)."""

    clock: Clock
    repo: Repo
    nonces: NonceService
    finalizer: Finalizer
    revoker: Revoker
    certificates: CertificateReader
    revocations: RevocationReader | None
    validations: ValidationRunner = field(default_factory=ValidationRunner)
    issuance: concurrent.futures.Executor | None = None  # where finalize issues after the answer


@dataclass(frozen=True, slots=True)
class ACMERequest:
    """What the ACME server reads of a request.

    Built from Werkzeug's `Request` (the Functions, tests) or straight from
    the WSGI environ (`cirrus up`, which skips Werkzeug's request and
    response objects on this hot path). `path` is decoded as Werkzeug
    decodes it; `read(n)` returns at most `n` bytes of the body; `origin` is
    `scheme://host` as the client addressed us.
    """

    method: str
    path: str
    origin: str
    mimetype: str
    content_length: int | None
    read: Callable[[int], bytes]
    after_response: list[Callable[[], None]] | None = None
    remote_addr: str = ""  # the peer's address, for per-client limits
    forwarded_for: str = ""  # X-Forwarded-For as received (used only with trusted proxies configured)
    refusal: str | None = None  # why the request's headers were refused at the boundary (answered 400)


@dataclass(frozen=True, slots=True)
class Ctx:
    """One request: who it is for and how to build URLs back to us.

    `origin` is scheme://host[:port] as the client sees us; `prefix` is the
    URL-quoted mount (`/acme/{provisioner}` or `/2.0/acme/{provisioner}`).
    """

    request: ACMERequest
    prov: ACMEProvisionerConfig
    origin: str
    prefix: str

    @property
    def after_response(self) -> list[Callable[[], None]] | None:
        """Where work may be left for after the answer is written (None when the server
        cannot: then handlers finish before answering)."""
        return self.request.after_response

    def url(self, *parts: str) -> str:
        """Absolute URL of a resource under this provisioner."""
        return self.origin + self.prefix + "".join(["/" + _segment(p) for p in parts])

    @property
    def request_url(self) -> str:
        """The URL this request was sent to (what a JWS `url` must equal)."""
        path = self.request.path
        return self.origin + (path if _UNRESERVED_PATH.fullmatch(path) else quote(path, safe="/%"))


@dataclass(frozen=True, slots=True)
class Verified:
    """An authenticated POST: the JWS, its signer's key and account (if any).

    `nonce` is set when the request's nonce is left for its first document
    write to spend (see `nonces.PendingNonce`); the server spends it after
    the handler if no write did.
    """

    jws: JWS
    jwk: dict[str, Any]
    account_id: str | None
    account: dict[str, Any] | None
    nonce: PendingNonce | None = None
    prefetched: dict[tuple[str, str], tuple[dict[str, Any], int] | None] = field(default_factory=dict)

    def read(self, repo: Repo, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """`(data, version)` of a document, from the read that came with authentication if it was that one.

        The request's account and the document its URL names are read in one
        round trip (`Repo.get_many`); each prefetched document is handed out
        once, so a second read in the same request goes to the store again.
        """
        key = (collection, doc_id)
        if key in self.prefetched:
            return self.prefetched.pop(key)
        return repo.get_versioned(collection, doc_id)


@dataclass(slots=True)
class Reply:
    """A handler's answer before the server adds nonce and index headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    links: list[str] = field(default_factory=list)
    content_type: str = "application/json"
