"""What the instance-identity provisioners (GCP, AWS, Azure) share.

* Routing and audience: their tokens carry `aud = https://<ca>/1.0/sign#<type>/<name>`; the part
  before `#` must be one of the CA's sign audiences and the fragment the provisioner's token id.
* Trust on first use (step-ca): the replay key of every token of one instance is
  SHA-256("<type>/<name>.<instance id>"), claimed in the same atomic write as the certificate and
  never released, so an instance gets one certificate from a token, ever; later ones come by
  renewal (mTLS). With `disableTrustOnFirstUse` the key is the token's hash instead.
* Names: the CSR's (step-ca's `DefaultIIDLeafTemplate`); with `disableCustomSANs` the CSR may only
  ask for the instance's own names, and the certificate gets exactly the forced SANs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from shared.durations import parse_duration
from shared.errors import ConfigError, Forbidden
from shared.model import ProvisionerRef
from shared.provisioners.base import ReplayClaim
from shared.provisioners.tokens import Audiences, token_hash
from shared.x509.names import common_name_of, sans_of, split_sans

# A trust-on-first-use claim is never released; the store needs an expiry, so a century.
TOFU_LIFETIME = dt.timedelta(days=36525)


def audience_matches(
    audiences: Audiences, token_audiences: Sequence[str], token_id: str, operation: str = "sign"
) -> bool:
    """True if some `aud` is an audience of this CA for `operation` with `#<token id>` as its fragment."""
    for aud in token_audiences:
        base, sep, fragment = aud.partition("#")
        if sep and fragment == token_id and audiences.matches([base], operation):
            return True
    return False


def replay_claim(
    ref: ProvisionerRef,
    *,
    token_id: str,
    instance_id: str,
    raw_token: str,
    tofu: bool,
    now: dt.datetime,
    token_expires: dt.datetime,
) -> ReplayClaim:
    """The single-use key: per instance under trust on first use, else per token."""
    if tofu:
        key = hashlib.sha256(f"{token_id}.{instance_id}".encode()).hexdigest()
        return ReplayClaim(namespace=f"ott:{ref.id}", key=key, expires_at=now + TOFU_LIFETIME)
    return ReplayClaim(namespace=f"ott:{ref.id}", key=token_hash(raw_token), expires_at=token_expires)


def instance_age(config: Mapping[str, Any], name: str) -> dt.timedelta | None:
    """`instanceAge` as a duration (None when unset or zero).

    Raises:
        ConfigError: not a Go duration, or negative.
    """
    raw = config.get("instanceAge")
    if raw in (None, "", 0):
        return None
    try:
        age = parse_duration(str(raw))
    except ValueError as exc:
        raise ConfigError(f"provisioner {name!r}: instanceAge: {exc}") from exc
    if age < dt.timedelta(0):
        raise ConfigError(f"provisioner {name!r}: instanceAge cannot be negative")
    return age or None


def string_list(config: Mapping[str, Any], key: str, name: str) -> tuple[str, ...]:
    """A list-of-strings config field (absent = empty).

    Raises:
        ConfigError: not a list of strings.
    """
    value = config.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"provisioner {name!r}: {key} must be a list of strings")
    return tuple(value)


def cirrus_options(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """The Cirrus-only `cirrus` block of a provisioner (stand-in URLs for tests and air gaps).

    Raises:
        ConfigError: not an object.
    """
    value = config.get("cirrus") or {}
    if not isinstance(value, dict):
        raise ConfigError(f"provisioner {name!r}: 'cirrus' must be an object")
    return value


@dataclass(frozen=True, slots=True)
class CSRNames:
    """Choose the certificate's names from the CSR, within what an instance identity allows.

    `forced` None: the CSR's CN and SANs as they are (custom SANs allowed). Otherwise the CSR's CN
    must be one of `common_names` (empty: the first of them is used), each kind of SAN the CSR
    lists must be exactly the forced set of that kind, and the certificate gets the forced SANs.
    `check_cn` checks the CN against `common_names` with custom SANs too (AWS: the CN is `sub`).
    """

    common_names: tuple[str, ...]
    forced: tuple[str, ...] | None
    check_cn: bool = False

    def __call__(self, csr: x509.CertificateSigningRequest) -> tuple[str, tuple[str, ...]]:
        """(common name, SANs) for the certificate.

        Raises:
            Forbidden: the CSR asks for a name the identity does not allow.
        """
        cn = common_name_of(csr.subject) or ""
        csr_sans = sans_of(csr)
        if cn and (self.forced is not None or self.check_cn) and cn not in self.common_names:
            raise Forbidden(
                f"certificate request does not contain the valid common name - got {cn},"
                f" want {list(self.common_names)}"
            )
        if self.forced is None:
            return cn or (self.common_names[0] if self.check_cn else ""), tuple(csr_sans)
        try:
            got = split_sans(csr_sans)
            want = split_sans(list(self.forced))
        except ValueError as exc:
            raise Forbidden(f"invalid subject alternative name: {exc}") from exc
        checks: tuple[tuple[str, set[str], set[str]], ...] = (
            ("dns", {d.lower() for d in got.dns}, {d.lower() for d in want.dns}),
            ("ip", {str(i) for i in got.ips}, {str(i) for i in want.ips}),
            ("email", set(got.emails), set(want.emails)),
            ("uri", set(got.uris), set(want.uris)),
        )
        for kind, have, allowed in checks:
            if have and have != allowed:
                raise Forbidden(
                    f"certificate request does not contain the valid {kind} names - got {sorted(have)},"
                    f" want {sorted(allowed)}"
                )
        return cn or self.common_names[0], self.forced


def private_ip(value: object) -> str:
    """A private IP from an identity document, canonical, or ''."""
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return ""
