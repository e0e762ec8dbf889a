"""The linked authorities an operator registered: trust anchors and a bearer-token hash.

One document per linked authority (collection `linked_authorities`, keyed by its
name). The token is `<name>.<secret>`: the name says which document to read (one
lookup, no scan), the secret is 256 random bits. Only SHA-256 of the whole token
is kept: a token with that much entropy needs no slow password hash, and a leaked
store then grants nothing. Tokens are compared in constant time.

Why the chain check is hand-written rather than `cryptography.x509.verification`:
that verifier enforces a TLS policy (extended key usage, validity at one instant),
and a report carries certificates of any use, often expired or revoked by the time
they are reported. What a report must prove is only that the anchor the operator
registered signed the certificate: one `verify_directly_issued_by` call.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from shared.errors import Unauthorized

COLLECTION = "linked_authorities"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\Z")
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]{1,512}\Z")
_BEARER = re.compile(r"Bearer ([a-z0-9][a-z0-9-]{0,62})\.([A-Za-z0-9_-]{43})\Z")


class LinkError(ValueError):
    """An operator's mistake registering a linked authority (the message says which)."""


class LinkDocuments(Protocol):
    """The document roles the registry uses (a narrow view of the store)."""

    def create_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expires_at: dt.datetime | None = None
    ) -> bool:
        """Create if absent."""
        ...

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return `(data, version)` or None."""
        ...


class LinkFinder(Protocol):
    """Finding every linked authority (the sweep's alerts)."""

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Documents whose top-level field equals value."""
        ...


@dataclass(frozen=True, slots=True)
class LinkedAuthority:
    """A registered linked authority."""

    name: str
    anchors: tuple[x509.Certificate, ...]
    revoke_url: str = ""
    revoke_token: str = field(default="", repr=False)

    @property
    def authority_id(self) -> str:
        """The `authority_id` of its certificates' records (apart from any Cirrus authority's)."""
        return authority_id_of(self.name)

    @property
    def provisioner_id(self) -> str:
        """The provisioner ref of its certificates: which link reported them."""
        return f"linked/{self.name}"

    def issuer_of(self, certificate: x509.Certificate) -> x509.Certificate | None:
        """The anchor that signed `certificate`, or None."""
        for anchor in self.anchors:
            if anchor.subject == certificate.issuer and _signed_by(certificate, anchor):
                return anchor
        return None


def authority_id_of(name: str) -> str:
    """The authority id a linked authority's records carry."""
    return f"linked-{name}"


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def token_hash(token: str) -> str:
    """What the store keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def register(
    documents: LinkDocuments,
    name: str,
    *,
    roots: Sequence[x509.Certificate],
    intermediates: Sequence[x509.Certificate] = (),
    client_certificate: x509.Certificate | None = None,
    revoke_url: str = "",
    revoke_token: str = "",
    now: dt.datetime,
) -> str:
    """Store a linked authority and return its bearer token (shown once, never stored).

    Every root must be a CA certificate; every intermediate a CA certificate signed by
    a root or an earlier intermediate, so each anchor is one the operator vouched for.
    `client_certificate` (optional) lets the linked authority authenticate with mTLS instead
    of its token: that certificate (pinned by its SHA-256; one the TLS server verifies, so one
    chaining to this authority's roots) then stands for it.

    `revoke_url` and `revoke_token` (optional, together): where a revocation made here of one
    of its certificates is delivered (`shared.linked.revoke`), e.g. a linked Cirrus's
    `https://host:port/revoke` and a token its `cirrus linked revoke-token` printed. The token is
    kept as given, since it is presented to the linked authority.

    Raises:
        LinkError: a bad name, anchors that are not CAs or do not chain, a name taken, a bad revoke endpoint.
    """
    check_revoke_endpoint(revoke_url, revoke_token)
    if not _NAME.match(name):
        raise LinkError(f"linked authority name {name!r}: use 1 to 63 lowercase letters, digits and '-'")
    if not roots:
        raise LinkError("a linked authority needs at least one root certificate")
    anchors: list[x509.Certificate] = []
    for root in roots:
        if not _is_ca(root):
            raise LinkError(f"root {root.subject.rfc4514_string()!r} is not a CA certificate")
        anchors.append(root)
    for inter in intermediates:
        if not _is_ca(inter):
            raise LinkError(f"intermediate {inter.subject.rfc4514_string()!r} is not a CA certificate")
        if not any(a.subject == inter.issuer and _signed_by(inter, a) for a in anchors):
            raise LinkError(f"intermediate {inter.subject.rfc4514_string()!r} is not signed by a given root")
        anchors.append(inter)
    token = f"{name}.{secrets.token_urlsafe(32)}"
    data = {
        "kind": "linked",  # what `linked_authority_ids` finds them by
        "name": name,
        "anchors": [a.public_bytes(serialization.Encoding.PEM).decode() for a in anchors],
        "tokenHash": token_hash(token),
        "createdAt": now.isoformat(),
    }
    if client_certificate is not None:
        data["clientCertSha256"] = certificate_pin(client_certificate)
    if revoke_url:
        data["revokeUrl"], data["revokeToken"] = revoke_url, revoke_token
    if not documents.create_document(COLLECTION, name, data):
        raise LinkError(f"a linked authority named {name!r} exists")
    return token


class LinkUpdates(LinkDocuments, Protocol):
    """Changing a registered link (its revoke endpoint)."""

    def update_document(self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int) -> bool:
        """Compare-and-set replace."""
        ...


def set_revoke_endpoint(documents: LinkUpdates, name: str, *, revoke_url: str, revoke_token: str,
                        attempts: int = 5) -> None:  # fmt: skip
    """Replace a link's revoke URL and token: rotating the revoke token the linked Cirrus issued.

    Deliveries still pending read the link at each attempt, so they go out with the new token.

    Raises:
        LinkError: no such link, a bad revoke endpoint, or the record kept changing.
    """
    check_revoke_endpoint(revoke_url, revoke_token)
    if not revoke_url:
        raise LinkError("give the revoke URL and the revoke token")
    for _ in range(attempts):
        found = documents.get_document(COLLECTION, name) if _NAME.match(name) else None
        if found is None:
            raise LinkError(f"no linked authority named {name!r}")
        data, version = found
        if documents.update_document(COLLECTION, name, {**data, "revokeUrl": revoke_url, "revokeToken": revoke_token},
                                     expected_version=version):  # fmt: skip
            return
    raise LinkError(f"the linked authority {name!r} kept changing; try again")


def check_revoke_endpoint(url: str, token: str) -> None:
    """An https URL of at most 2,000 characters and a token of printable ASCII without spaces, or neither.

    Raises:
        LinkError: one without the other, a URL that is not https://, or a malformed token.
    """
    if not url and not token:
        return
    if not url or not token:
        raise LinkError("give both a revoke URL and a revoke token, or neither")
    if not url.startswith("https://") or len(url) > 2000 or not url.isprintable() or " " in url:
        raise LinkError("the revoke URL must be an https:// URL")
    if not _TOKEN_TEXT.match(token):
        raise LinkError("the revoke token must be 1 to 512 printable ASCII characters without spaces")


def load(documents: LinkDocuments, name: str) -> LinkedAuthority | None:
    """The linked authority registered under `name`, or None."""
    found = documents.get_document(COLLECTION, name) if _NAME.match(name) else None
    return _linked(found[0]) if found else None


def certificate_pin(certificate: x509.Certificate) -> str:
    """The SHA-256 of a client certificate's DER, as kept for the mTLS option."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def _linked(data: dict[str, Any]) -> LinkedAuthority:
    anchors = tuple(x509.load_pem_x509_certificate(p.encode()) for p in data.get("anchors", []))
    return LinkedAuthority(name=str(data["name"]), anchors=anchors, revoke_url=str(data.get("revokeUrl", "")),
                           revoke_token=str(data.get("revokeToken", "")))  # fmt: skip


def authenticate_certificate(documents: LinkFinder, certificate: x509.Certificate) -> LinkedAuthority:
    """The linked authority whose pinned client certificate this is (mTLS, verified by the TLS server).

    Raises:
        Unauthorized: no linked authority pinned it.
    """
    pin = certificate_pin(certificate)
    found = [d for _, d, _ in documents.find_documents(COLLECTION, "clientCertSha256", pin, limit=2)]
    if len(found) != 1 or not hmac.compare_digest(str(found[0].get("clientCertSha256", "")), pin):
        raise Unauthorized("invalid or missing linked-authority token")
    return _linked(found[0])


def authenticate(documents: LinkDocuments, authorization: str) -> LinkedAuthority:
    """The linked authority whose bearer token this `Authorization` header carries.

    Raises:
        Unauthorized: no token, a malformed one, or one that no linked authority was given.
    """
    match = _BEARER.match(authorization or "")
    found = documents.get_document(COLLECTION, match.group(1)) if match else None
    # Compared even when nothing was found, so a miss costs what a wrong secret does.
    expected = str(found[0].get("tokenHash", "")) if found else "0" * 64
    presented = token_hash(authorization[len("Bearer ") :]) if match else ""
    same = hmac.compare_digest(expected, presented)
    if not (found and match and same):
        raise Unauthorized("invalid or missing linked-authority token")
    return _linked(found[0])


def linked_authority_ids(documents: LinkFinder, *, limit: int = 1000) -> list[str]:
    """The authority ids of every registered linked authority (for the sweep's expiry alerts)."""
    return [authority_id_of(str(data["name"])) for _, data, _ in documents.find_documents(COLLECTION, "kind", "linked",
                                                                                         limit=limit)]  # fmt: skip
