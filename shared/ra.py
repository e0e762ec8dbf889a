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

The HTTP client is the standard library's `urllib` (as `shared.issuer_link`):
one POST per issuance with a pinned CA file needs no HTTP framework. The chain
is checked signature by signature with `cryptography` rather than its
`x509.verification` verifiers, which impose a server/client EKU and hostname
policy on the leaf that the upstream's templates decide, not the RA.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import secrets
import ssl
import stat
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from shared.authority import Authority, AuthorityStores
from shared.clock import Clock
from shared.errors import BadRequest, ConfigError, Forbidden, Unavailable
from shared.jose import thumbprint
from shared.keys.adapter import as_private_key
from shared.keys.base import PublicKey
from shared.validity import Window
from shared.x509.names import SANs, common_name_of, split_sans
from shared.x509.profile import Issuer

if TYPE_CHECKING:
    from shared.config import Settings
    from shared.events.base import EventSink
    from shared.policy.issuance import IssuancePolicies
    from shared.provisioners.registry import Provisioners
    from shared.store.base import Store

log = logging.getLogger("cirrus.ra")

DEFAULT_TIMEOUT = 10.0
TOKEN_LIFETIME = dt.timedelta(minutes=5)
MAX_RESPONSE_BYTES = 1 << 20
_UPSTREAM_MESSAGE_CHARS = 300

# (url, body, ssl context, timeout) -> (status, body); tests never replace it: they run a real upstream.
Transport = Callable[[str, bytes, ssl.SSLContext, float], tuple[int, bytes]]


@dataclass(frozen=True, slots=True)
class RASettings:
    """The `"ra"` config block."""

    upstream: str
    provisioner: str
    key: Path
    roots: tuple[Path, ...]
    timeout: float = DEFAULT_TIMEOUT


def ra_settings(raw: object, *, base_dir: Path, default_roots: Sequence[Path]) -> RASettings:
    """Validate the `"ra"` block; `root` defaults to the config's own roots (upstream's root).

    Raises:
        ConfigError: a missing or invalid field.
    """
    if not isinstance(raw, dict):
        raise ConfigError("config: 'ra' must be an object")
    upstream = raw.get("upstream")
    if not isinstance(upstream, str) or not upstream.startswith("https://"):
        raise ConfigError("config: 'ra.upstream' must be an https:// URL")
    provisioner = raw.get("provisioner")
    if not isinstance(provisioner, str) or not provisioner:
        raise ConfigError("config: 'ra.provisioner' must name the JWK provisioner at the upstream")
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        raise ConfigError("config: 'ra.key' must be the path of that provisioner's private JWK")
    root = raw.get("root")
    roots: tuple[Path, ...]
    if root is None:
        roots = tuple(default_roots)
    elif isinstance(root, str) and root:
        roots = (base_dir / root,)
    else:
        raise ConfigError("config: 'ra.root' must be the path of the upstream root certificate")
    timeout = raw.get("timeout", DEFAULT_TIMEOUT)
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 < timeout <= 120:
        raise ConfigError("config: 'ra.timeout' must be a number of seconds in (0, 120]")
    return RASettings(
        upstream=upstream.rstrip("/"), provisioner=provisioner, key=base_dir / key, roots=roots, timeout=float(timeout)
    )


def load_private_jwk(path: Path) -> dict[str, Any]:
    """Read the RA's credential at the upstream: a private JWK readable by the owner only.

    Raises:
        ConfigError: unreadable, group/world-readable, or not a private JWK.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the RA's upstream key {path}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and os.name == "posix":
        raise ConfigError(f"the RA's upstream key {path} must not be readable by group or others (chmod 600)")
    try:
        jwk = json.loads(text)
        if not isinstance(jwk, dict) or "d" not in jwk:
            raise ValueError("not a private JWK")
        jwt.PyJWK(jwk)
    except (ValueError, jwt.PyJWKError) as exc:
        raise ConfigError(f"the RA's upstream key {path} is not a private JWK") from exc
    return jwk


def _algorithm(jwk: dict[str, Any]) -> str:
    alg = jwk.get("alg")
    if isinstance(alg, str) and alg:
        return alg
    if jwk.get("kty") == "EC":
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(str(jwk.get("crv")), "ES256")
    if jwk.get("kty") == "OKP":
        return "EdDSA"
    return "RS256"


class _KeylessSigner:
    """The upstream intermediate's public key, with no private half: an RA never signs."""

    def __init__(self, public_key: PublicKey) -> None:
        self._public = public_key

    def public_key(self) -> PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        raise Unavailable("this registration authority holds no signing key")


def keyless_issuer(intermediate: x509.Certificate) -> Issuer:
    """An `Issuer` for the upstream's intermediate (mTLS and chain answers need it; signing refuses)."""
    public = intermediate.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ConfigError("the upstream intermediate's key type is not supported")
    return Issuer.of(intermediate, as_private_key(_KeylessSigner(public)))


def registration_authority(
    settings: Settings,
    upstream: UpstreamCA,
    *,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    provisioners: Provisioners,
    store: Store,
    clock: Clock,
    sinks: Sequence[EventSink],
    policy: IssuancePolicies,
) -> Authority:
    """The RA's `Authority`: this instance's provisioners and store, upstream's certificates, no key.

    `crt` names the upstream intermediate (mTLS renewals and `/intermediates` need it);
    CRL/OCSP/AIA URLs are upstream's business, so none are put in (the leaf is upstream's).
    """
    return Authority(
        authority_id=settings.authority_id,
        issuer=keyless_issuer(intermediates[0]),
        intermediates=intermediates,
        roots=roots,
        provisioners=provisioners,
        stores=AuthorityStores(issuance=store, revocations=store, endpoints=store),
        clock=clock,
        backdate=settings.backdate,
        sinks=sinks,
        policy=policy,
        upstream=upstream,
    )


def upstream_server_certificate(
    upstream: UpstreamCA, key: ec.EllipticCurvePrivateKey, names: Sequence[str]
) -> x509.Certificate:
    """`cirrus up` at an RA: its TLS certificate for `dnsNames` comes from the upstream too.

    Raises:
        CAError: as `UpstreamCA.issue` (the server does not start without upstream).
    """
    sans = split_sans([n.strip("[]") for n in names])
    cn = next((d for d in sans.dns if len(d) <= 64), "")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName(sans.general_names()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert, _ = upstream.issue(csr, common_name=cn, sans=sans, window=None)  # upstream's default lifetime
    return cert


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
