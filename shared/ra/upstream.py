"""The upstream issuing authority: one-time JWK tokens, `/1.0/sign` and `/1.0/revoke`, and the
checks every returned certificate passes before the RA records it.

The HTTP client is the standard library's `urllib` (as `shared.issuer_link`): one POST per
issuance with a pinned CA file needs no HTTP framework. The chain is checked signature by
signature with `cryptography` rather than its `x509.verification` verifiers, which impose a
server/client EKU and hostname policy on the leaf that the upstream's templates decide, not the RA.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from shared.clock import Clock
from shared.errors import BadRequest, ConfigError, Forbidden, Unavailable
from shared.jose import thumbprint
from shared.ra.settings import DEFAULT_TIMEOUT, RASettings, load_private_jwk
from shared.validity import Window
from shared.x509.names import SANs, common_name_of

log = logging.getLogger("cirrus.ra")

TOKEN_LIFETIME = dt.timedelta(minutes=5)
MAX_RESPONSE_BYTES = 1 << 20
_UPSTREAM_MESSAGE_CHARS = 300

# (url, body, ssl context, timeout) -> (status, body); tests never replace it: they run a real upstream.
Transport = Callable[[str, bytes, ssl.SSLContext, float], tuple[int, bytes]]

def _algorithm(jwk: dict[str, Any]) -> str:
    alg = jwk.get("alg")
    if isinstance(alg, str) and alg:
        return alg
    if jwk.get("kty") == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(str(jwk.get("crv")), "ES256")
    if jwk.get("kty") == "OKP":
        return "EdDSA"
    return "RS256"



def _urlopen(url: str, body: bytes, context: ssl.SSLContext, timeout: float) -> tuple[int, bytes]:
    request = urllib.request.Request(  # noqa: S310 - https:// only (ra_settings)
        url, data=body, method="POST", headers={"Content-Type": "application/json", "Accept": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as response:  # noqa: S310
            return int(response.status), response.read(MAX_RESPONSE_BYTES)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(MAX_RESPONSE_BYTES)


class UpstreamCA:
    """The upstream issuing authority as the RA's pipeline sees it: `issue` and `revoke`."""

    def __init__(
        self,
        *,
        url: str,
        provisioner: str,
        jwk: dict[str, Any],
        roots: Sequence[x509.Certificate],
        clock: Clock,
        timeout: float = DEFAULT_TIMEOUT,
        transport: Transport = _urlopen,
    ) -> None:
        if not roots:
            raise ConfigError("the RA needs the upstream root certificate")
        self._url = url.rstrip("/")
        self._provisioner = provisioner
        self._key = jwt.PyJWK(jwk).key
        self._alg = _algorithm(jwk)
        self._kid = str(jwk.get("kid") or thumbprint(jwk))
        self._roots = list(roots)
        self._clock = clock
        self._timeout = timeout
        self._transport = transport
        pem = "".join(r.public_bytes(serialization.Encoding.PEM).decode() for r in self._roots)
        self._tls = ssl.create_default_context(cadata=pem)

    @property
    def url(self) -> str:
        """The upstream's base URL."""
        return self._url

    @property
    def tls(self) -> ssl.SSLContext:
        """TLS to the upstream, pinned to its root."""
        return self._tls

    @property
    def timeout(self) -> float:
        """Seconds per upstream request."""
        return self._timeout

    @classmethod
    def from_settings(cls, settings: RASettings, *, clock: Clock) -> UpstreamCA:
        """Open the credential and pinned root a `RASettings` names.

        Raises:
            ConfigError: unreadable key or root.
        """
        roots: list[x509.Certificate] = []
        for path in settings.roots:
            try:
                roots += x509.load_pem_x509_certificates(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"cannot read the upstream root {path}") from exc
        return cls(
            url=settings.upstream,
            provisioner=settings.provisioner,
            jwk=load_private_jwk(settings.key),
            roots=roots,
            clock=clock,
            timeout=settings.timeout,
        )

    # ------------------------------------------------------------ issue
    def issue(
        self,
        csr: x509.CertificateSigningRequest | None,
        *,
        common_name: str,
        sans: SANs,
        window: Window | None,
    ) -> tuple[x509.Certificate, list[x509.Certificate]]:
        """Have upstream sign `csr` for exactly `common_name` and `sans`; return (leaf, intermediates).

        `window` is what the RA's claims allowed: its end is sent as `notAfter` (so the RA's
        provisioner lifetimes apply), its start only when in the future (backdating is the
        upstream's own); None leaves both to the upstream.

        Raises:
            Forbidden: no CSR to forward (a plain renew), or upstream refused the request (403).
            BadRequest: upstream found the request malformed (400).
            Unavailable: upstream unreachable, failing, refusing the RA's credential, or answering
                with a certificate that does not check out.
        """
        if csr is None:
            raise Forbidden("renewal through a registration authority needs a new key: use rekey")
        # Without a common name (an IP-only ACME order) the token's subject is the first SAN, and
        # upstream authorities (Cirrus, step-ca's default template) put the subject in the CN.
        subject = common_name or (sans.all[0] if sans.all else "")
        claims: dict[str, Any] = {"sub": subject, "sans": list(sans.all)}
        body: dict[str, Any] = {
            "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
            "ott": self._token("sign", claims),
        }
        if window is not None:
            body["notAfter"] = _rfc3339(window.not_after)
            if window.not_before > self._clock.now():
                body["notBefore"] = _rfc3339(window.not_before)
        answer = self._post("sign", body)
        try:
            pems = answer.get("certChain") or [answer["crt"], *([answer["ca"]] if answer.get("ca") else [])]
            certs = [x509.load_pem_x509_certificate(str(p).encode()) for p in pems]
        except (KeyError, TypeError, ValueError) as exc:
            log.error("upstream /sign answer has no readable certificate")
            raise Unavailable("the upstream authority gave an invalid answer") from exc
        leaf, chain = certs[0], certs[1:]
        try:
            check_upstream_certificate(
                leaf, chain, roots=self._roots, public_key=csr.public_key(), common_name=subject, sans=sans,
                now=self._clock.now(),
            )
        except (ValueError, TypeError, InvalidSignature) as exc:
            log.error("upstream certificate refused by the RA: %s", exc)
            raise Unavailable("the upstream authority gave a certificate this authority cannot accept") from exc
        return leaf, chain

    # ----------------------------------------------------------- revoke
    def revoke(self, serial: str, *, reason_code: int, reason: str) -> None:
        """Revoke `serial` at upstream with a revoke token the RA mints; already revoked there is fine.

        Raises:
            Forbidden, BadRequest, Unavailable: as for `issue`.
        """
        body = {
            "serial": serial,
            "ott": self._token("revoke", {"sub": serial}),
            "reasonCode": reason_code,
            "reason": reason,
            "passive": True,
        }
        try:
            self._post("revoke", body)
        except BadRequest as exc:
            if "already" not in exc.detail or "revoked" not in exc.detail:  # step-ca: "has already been revoked"
                raise

    # ---------------------------------------------------------- helpers
    def _token(self, operation: str, claims: dict[str, Any]) -> str:
        now = self._clock.now()
        payload = {
            "iss": self._provisioner,
            "aud": f"{self._url}/1.0/{operation}",
            "iat": now,
            "nbf": now,
            "exp": now + TOKEN_LIFETIME,
            "jti": secrets.token_hex(32),
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm=self._alg, headers={"kid": self._kid, "typ": "JWT"})

    def _post(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self._url}/1.0/{operation}"
        try:
            status, raw = self._transport(url, json.dumps(body).encode(), self._tls, self._timeout)
        except (OSError, TimeoutError, urllib.error.URLError) as exc:  # refused, reset, TLS, timeout
            log.warning("upstream %s unreachable: %s", operation, type(exc).__name__)
            raise Unavailable("the upstream authority is unavailable; retry later") from exc
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if 200 <= status < 300:
            return answer
        message = str(answer.get("message") or "")[:_UPSTREAM_MESSAGE_CHARS]
        if status >= 500 or status == 429:
            log.warning("upstream %s failed with %d", operation, status)
            raise Unavailable("the upstream authority is unavailable; retry later")
        if status == 401:
            # The RA's own credential (or clock) was refused: nothing the client can change.
            log.error("upstream refused the RA's %s token: %s", operation, message)
            raise Unavailable("the upstream authority refused this authority's credential")
        if status == 403:
            raise Forbidden(f"the upstream authority refused the request: {message}".rstrip(": "))
        if status == 400:
            raise BadRequest(f"the upstream authority refused the request: {message}".rstrip(": "))
        log.warning("upstream %s answered %d", operation, status)
        raise Unavailable("the upstream authority gave an unexpected answer")


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_upstream_certificate(
    leaf: x509.Certificate,
    chain: Sequence[x509.Certificate],
    *,
    roots: Sequence[x509.Certificate],
    public_key: object,
    common_name: str,
    sans: SANs,
    now: dt.datetime,
) -> None:
    """The certificate upstream returned is the one the RA authorized.

    Checks: each certificate signed by the next and the last by a pinned root
    (signatures and issuer names), all valid now, the leaf's public key is the
    CSR's, its CN is `common_name` and its SANs are exactly `sans`.

    Raises:
        ValueError: the first check that fails, for the log.
    """
    path = [leaf, *chain]
    for child, parent in itertools.pairwise(path):
        child.verify_directly_issued_by(parent)  # raises ValueError / InvalidSignature / TypeError
    last = path[-1]
    root_der = {r.public_bytes(serialization.Encoding.DER) for r in roots}
    if last.public_bytes(serialization.Encoding.DER) not in root_der:
        for root in roots:
            try:
                last.verify_directly_issued_by(root)
                break
            except Exception:  # noqa: S112 - try the next pinned root
                continue
        else:
            raise ValueError("the chain does not lead to the pinned upstream root")
    for cert in path:
        if not cert.not_valid_before_utc <= now + dt.timedelta(minutes=5) or now > cert.not_valid_after_utc:
            raise ValueError(f"certificate {cert.subject.rfc4514_string()} is not valid now")
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != public_key.public_bytes(*spki):  # type: ignore[attr-defined]
        raise ValueError("the leaf's public key is not the CSR's")
    if (common_name_of(leaf.subject) or "") != common_name:
        raise ValueError("the leaf's common name is not the authorized one")
    try:
        got = set(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        got = set()
    if got != set(sans.general_names()):
        raise ValueError("the leaf's subject alternative names are not the authorized ones")
