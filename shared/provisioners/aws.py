"""The AWS provisioner: EC2 instance identity documents (reference s.2.3).

The step CLI reads the instance identity document and its base64 RSA signature
from the instance metadata service and wraps them in an HS256 JWT whose HMAC
key is the raw signature bytes: `iss` `ec2.amazonaws.com`, `aud`
`https://<ca>/1.0/sign#aws/<name>`, `amazon: {document, signature}` (both
std-base64, Go's []byte encoding). The HMAC binds the claims to the document
(the key is only as secret as the document; trust comes from AWS's RSA
signature over the document, checked against AWS's public certificates shipped
in `data/aws_iid_certificates.pem` or the file `iidRoots` names, and from trust
on first use). HS256 is accepted on this path and nowhere else; it is verified
here with PyJWT's HMAC algorithm (a constant-time compare), never through the
asymmetric allowlist of `tokens.py`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidKeyError

from shared.claims import resolve_claims
from shared.errors import ConfigError, Unauthorized
from shared.model import ProvisionerRef
from shared.provisioners.base import RevokeAuthorization, RoutedProvisioner, SignAuthorization
from shared.provisioners.iid import (
    CSRNames,
    audience_matches,
    instance_age,
    private_ip,
    replay_claim,
    string_list,
)
from shared.provisioners.ssh_sign import SSHIdentity, iid_ssh_authorization
from shared.provisioners.tokens import MAX_TOKEN_LIFETIME, Audiences, PeekedToken, b64url_strict, check_times
from shared.ssh.options import SSHOptions, SSHSignAuthorization

AWS_ISSUER = "ec2.amazonaws.com"
IMDS_VERSIONS = ("v2", "v1")
MAX_DOCUMENT_BYTES = 16 * 1024
_HS256 = HMACAlgorithm(HMACAlgorithm.SHA256)


def load_iid_certificates(path: str | None) -> list[rsa.RSAPublicKey]:
    """AWS's IID signing keys: the shipped bundle, or the PEM file `iidRoots` names.

    Raises:
        ConfigError: unreadable file, or no RSA certificate in it.
    """
    try:
        if path:
            pem = Path(path).read_bytes()
        else:
            pem = resources.files("shared.provisioners").joinpath("data/aws_iid_certificates.pem").read_bytes()
        certs = x509.load_pem_x509_certificates(pem)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the AWS identity certificates {path or '(built in)'}") from exc
    keys = [c.public_key() for c in certs]
    rsa_keys = [k for k in keys if isinstance(k, rsa.RSAPublicKey)]
    if not rsa_keys:
        raise ConfigError("no RSA certificate among the AWS identity certificates")
    return rsa_keys


def _std_b64(value: object, what: str, limit: int) -> bytes:
    if not isinstance(value, str) or not value or len(value) > limit * 2:
        raise Unauthorized(f"invalid aws token: amazon.{what} is missing")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Unauthorized(f"invalid aws token: amazon.{what} is not base64") from exc
    if len(raw) > limit:
        raise Unauthorized(f"invalid aws token: amazon.{what} is too large")
    return raw


def _pending_time(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def internal_dns_name(private: str, region: str) -> str:
    """EC2's internal host name for a private IPv4 address."""
    return f"ip-{private.replace('.', '-')}.{region}.compute.internal"


class AWSProvisioner(RoutedProvisioner):
    """A step-ca `AWS` provisioner."""

    def __init__(self, *, config: Mapping[str, Any], global_claims: Mapping[str, Any], audiences: Audiences) -> None:
        name = config.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError("AWS provisioner needs a name")
        self._config = dict(config)
        self._accounts = frozenset(string_list(config, "accounts", name))
        self._instance_age = instance_age(config, name)
        versions = string_list(config, "imdsVersions", name) or IMDS_VERSIONS
        for v in versions:
            if v not in IMDS_VERSIONS:
                raise ConfigError(f"provisioner {name!r}: {v}: not a supported AWS Instance Metadata Service version")
        roots = config.get("iidRoots")
        if roots is not None and not isinstance(roots, str):
            raise ConfigError(f"provisioner {name!r}: iidRoots must be a file path")
        self._keys = load_iid_certificates(roots)
        self._disable_custom_sans = bool(config.get("disableCustomSANs", False))
        self._tofu = not bool(config.get("disableTrustOnFirstUse", False))
        self._token_id = f"aws/{name}"
        self._ref = ProvisionerRef(id=self._token_id, name=name, type="AWS")
        self._claims = resolve_claims(config.get("claims"), global_claims)
        self._audiences = audiences

    def _document_signed(self, document: bytes, signature: bytes) -> bool:
        for key in self._keys:
            try:
                key.verify(signature, document, padding.PKCS1v15(), hashes.SHA256())
                return True
            except InvalidSignature:
                continue
        return False

    def _verify(self, peeked: PeekedToken, now: dt.datetime) -> tuple[dict[str, Any], dict[str, Any], dt.datetime]:
        if peeked.header.get("alg") != "HS256":
            raise Unauthorized("invalid aws token: algorithm not allowed for this provisioner")
        claims = dict(peeked.claims)
        amazon = claims.get("amazon")
        if not isinstance(amazon, dict):
            raise Unauthorized("invalid aws token: amazon claim is missing")
        document = _std_b64(amazon.get("document"), "document", MAX_DOCUMENT_BYTES)
        signature = _std_b64(amazon.get("signature"), "signature", 1024)
        signing_input, _, sig_segment = peeked.raw.rpartition(".")
        try:
            mac = b64url_strict(sig_segment)
        except ValueError as exc:
            raise Unauthorized("invalid aws token") from exc
        try:
            valid = _HS256.verify(signing_input.encode(), _HS256.prepare_key(signature), mac)
        except InvalidKeyError as exc:
            raise Unauthorized("invalid aws token: signature does not verify") from exc
        if not valid:
            raise Unauthorized("invalid aws token: signature does not verify")
        if not self._document_signed(document, signature):
            raise Unauthorized("invalid aws token: invalid identity document signature")
        try:
            doc = json.loads(document)
        except ValueError as exc:
            raise Unauthorized("invalid aws token: identity document is not JSON") from exc
        if not isinstance(doc, dict):
            raise Unauthorized("invalid aws token: identity document is not JSON")
        for field in ("accountId", "instanceId", "privateIp", "region"):
            if not isinstance(doc.get(field), str) or not doc[field]:
                raise Unauthorized(f"invalid aws token: identity document {field} cannot be empty")
        if claims.get("iss") != AWS_ISSUER:
            raise Unauthorized("invalid aws token: invalid issuer")
        expires = check_times(claims, now, max_lifetime=MAX_TOKEN_LIFETIME)
        if not audience_matches(self._audiences, peeked.audiences, self._token_id):
            raise Unauthorized("invalid aws token: invalid audience claim (aud)")
        private = private_ip(doc["privateIp"])
        if not private:
            raise Unauthorized("invalid aws token: identity document privateIp is not an address")
        if self._disable_custom_sans and claims.get("sub") not in (
            doc["instanceId"], private, internal_dns_name(private, doc["region"])
        ):
            raise Unauthorized("invalid aws token: invalid subject claim (sub)")
        if self._accounts and doc["accountId"] not in self._accounts:
            raise Unauthorized("invalid aws identity document: accountId is not valid")
        if self._instance_age is not None:
            pending = _pending_time(doc.get("pendingTime"))
            if pending is None or now - pending > self._instance_age:
                raise Unauthorized("aws identity document pendingTime is too old")
        return claims, doc, expires

    def authorize_sign(self, peeked: PeekedToken, now: dt.datetime) -> SignAuthorization:
        """Verify an identity-document token; the CN must be `sub`, names as `iid.CSRNames`.

        Raises:
            Unauthorized: any token or document check fails (401).
        """
        claims, doc, expires = self._verify(peeked, now)
        sub = claims.get("sub")
        subject = sub if isinstance(sub, str) else ""
        private = private_ip(doc["privateIp"])
        forced = (internal_dns_name(private, doc["region"]), private) if self._disable_custom_sans else None
        return SignAuthorization(
            provisioner=self._ref,
            claims=self._claims,
            subject=subject,
            sans=(),
            replay=replay_claim(
                self._ref,
                token_id=self._token_id,
                instance_id=doc["instanceId"],
                raw_token=peeked.raw,
                tofu=self._tofu,
                now=now,
                token_expires=expires,
            ),
            token_claims=claims,
            authorization_principal=doc["instanceId"],  # step-ca's webhook `authorizationPrincipal`
            credential_id=doc["accountId"],
            renewal_enabled=not self._claims.disable_renewal,
            names_from_csr=CSRNames(common_names=(subject,), forced=forced, check_cn=True),
            identity={"instanceID": doc["instanceId"], "account": doc["accountId"]},
        )

    def authorize_ssh_sign(self, peeked: PeekedToken, now: dt.datetime, request: SSHOptions) -> SSHSignAuthorization:
        """Verify an identity-document token for `/ssh/sign`: a host certificate, key id the instance id.

        Raises:
            Unauthorized: as `authorize_sign`; Forbidden, BadRequest: the request.
        """
        _, doc, expires = self._verify(peeked, now)
        private = private_ip(doc["privateIp"])
        replay = replay_claim(
            self._ref, token_id=self._token_id, instance_id=doc["instanceId"], raw_token=peeked.raw,
            tofu=self._tofu, now=now, token_expires=expires,
        )
        return iid_ssh_authorization(
            SSHIdentity(self._ref, self._claims, replay,
                        {"instanceID": doc["instanceId"], "account": doc["accountId"]}),
            key_id=doc["instanceId"],
            principals=(private, internal_dns_name(private, doc["region"])),
            disable_custom_sans=self._disable_custom_sans,
            request=request,
        )

    def authorize_revoke(self, peeked: PeekedToken, now: dt.datetime) -> RevokeAuthorization:
        """AWS tokens cannot revoke (step-ca: not implemented for this type).

        Raises:
            Unauthorized: always.
        """
        raise Unauthorized("provisioner.AuthorizeRevoke not implemented")
