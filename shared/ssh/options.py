"""What an SSH sign request asks for, what its token allows, and the validity rules.

Follows step-ca's `sign_ssh_options.go`: the request body's options must
match the token's `step.ssh` claim (type equal, principals a subset, validity
equal when both are given, key id equal to the token subject); the
certificate takes the token's type, key id and principals (defaulting to a
user certificate for `sub`); validity defaults to now minus the backdate plus
the provisioner's default duration for the type, and must lie within the
claims' minimum and maximum (plus backdate).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.claims import Claims
from shared.durations import parse_time_duration
from shared.errors import BadRequest, Forbidden, Unauthorized
from shared.provisioners.base import ReplayClaim
from shared.ssh.certificate import CERT_TYPES, HOST_CERT, MAX_PRINCIPALS, MAX_TEXT, USER_CERT
from shared.ssh.wire import SSHPublicKey, WireError, b64decode_strict, parse_public_key

TimeValue = dt.datetime | dt.timedelta | None


@dataclass(frozen=True, slots=True)
class SSHOptions:
    """step-ca's SignSSHOptions: from a request body or a token's `step.ssh` claim."""

    cert_type: str = ""
    key_id: str = ""
    principals: tuple[str, ...] = ()
    valid_after: TimeValue = None
    valid_before: TimeValue = None


def parse_options(raw: Mapping[str, Any], *, now: dt.datetime, where: str) -> SSHOptions:
    """Validate SignSSHOptions fields.

    Raises:
        BadRequest: an unknown type, empty or non-string principals, bad times.
    """
    cert_type = raw.get("certType") or ""
    if not isinstance(cert_type, str) or (cert_type and cert_type not in CERT_TYPES):
        raise BadRequest(f"certType '{str(cert_type)[:32]}' is not valid")
    key_id = raw.get("keyID") or ""
    if not isinstance(key_id, str) or len(key_id) > MAX_TEXT:
        raise BadRequest(f"{where} keyID must be a string")
    principals_raw = raw.get("principals") or []
    if not isinstance(principals_raw, list) or len(principals_raw) > MAX_PRINCIPALS:
        raise BadRequest(f"{where} principals must be a list of strings")
    for p in principals_raw:
        if not isinstance(p, str) or len(p) > MAX_TEXT:
            raise BadRequest(f"{where} principals must be a list of strings")
        if not p:
            raise BadRequest("principals cannot contain empty values")
    try:
        after = parse_time_duration(raw.get("validAfter"), now=now)
        before = parse_time_duration(raw.get("validBefore"), now=now)
    except ValueError as exc:
        raise BadRequest(f"invalid validity: {exc}") from exc
    return SSHOptions(cert_type, key_id, tuple(principals_raw), after, before)


def parse_public_key_field(value: object, what: str = "publicKey") -> SSHPublicKey:
    """A base64 SSH public key from a request body.

    Raises:
        BadRequest: missing, not base64, not a supported or valid key (weak RSA included).
    """
    try:
        return parse_public_key(b64decode_strict(value, what))
    except WireError as exc:
        raise BadRequest(f"invalid {what}: {exc}") from exc


def _absolute(value: TimeValue, now: dt.datetime) -> int | None:
    if value is None:
        return None
    at = now + value if isinstance(value, dt.timedelta) else value
    return max(int(at.timestamp()), 0)


def match_token(want: SSHOptions, got: SSHOptions, subject: str) -> None:
    """The request must ask for no more than the token allows.

    Raises:
        Forbidden: type, principals, validity or key id differ.
    """
    if want.cert_type and got.cert_type and want.cert_type != got.cert_type:
        raise Forbidden(f"ssh certificate type does not match - got {got.cert_type}, want {want.cert_type}")
    if want.principals and got.principals and not set(got.principals) <= set(want.principals):
        raise Forbidden(
            f"ssh certificate principals does not match - got {list(got.principals)}, want {list(want.principals)}"
        )
    if want.valid_after is not None and got.valid_after is not None and want.valid_after != got.valid_after:
        raise Forbidden("ssh certificate validAfter does not match")
    if want.valid_before is not None and got.valid_before is not None and want.valid_before != got.valid_before:
        raise Forbidden("ssh certificate validBefore does not match")
    if want.key_id and got.key_id and got.key_id != want.key_id:
        raise Forbidden(f"ssh certificate key id does not match - got {got.key_id[:64]}, want {want.key_id[:64]}")
    if got.key_id and got.key_id != subject:
        raise Forbidden(f"ssh certificate key id does not match - got {got.key_id[:64]}, want {subject[:64]}")


@dataclass(frozen=True, slots=True)
class SSHSignAuthorization:
    """What a verified token lets the authority put in an SSH certificate."""

    provisioner_id: str
    provisioner_name: str
    provisioner_type: str
    claims: Claims
    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    valid_after: int | None
    valid_before: int | None
    replay: ReplayClaim
    renewal_enabled: bool
    # What the credential proves, as a template's `.Type`/`.KeyID`/`.Principals` (step-ca's
    # CreateTemplateData) when it differs from what is granted (instance identities, OIDC admins).
    template_identity: tuple[int, str, tuple[str, ...]] | None = None
    # What a cloud instance identity proves (`instanceID`, `account`): inventory lookup keys.
    identity: Mapping[str, str] = field(default_factory=dict)


def jwk_ssh_authorization(
    *,
    provisioner_id: str,
    provisioner_name: str,
    claims: Claims,
    token_claims: Mapping[str, Any],
    replay: ReplayClaim,
    request: SSHOptions,
    now: dt.datetime,
) -> SSHSignAuthorization:
    """step-ca's JWK `AuthorizeSSHSign` on a verified token.

    Raises:
        Unauthorized: SSH not enabled for the provisioner, or not an SSH token.
        BadRequest / Forbidden: the token's options are malformed or the request exceeds them.
    """
    if not claims.enable_ssh_ca:
        raise Unauthorized(f"sshCA is disabled for provisioner '{provisioner_name}'")
    step = token_claims.get("step")
    ssh = step.get("ssh") if isinstance(step, dict) else None
    if not isinstance(ssh, dict):
        raise Unauthorized("token must be an SSH provisioning token")
    want = parse_options(ssh, now=now, where="token")
    subject = str(token_claims.get("sub", ""))
    match_token(want, request, subject)
    cert_type = CERT_TYPES[want.cert_type] if want.cert_type else USER_CERT
    return SSHSignAuthorization(
        provisioner_id=provisioner_id,
        provisioner_name=provisioner_name,
        provisioner_type="JWK",
        claims=claims,
        cert_type=cert_type,
        key_id=want.key_id or subject,
        principals=want.principals or (subject,),
        valid_after=_absolute(want.valid_after, now),
        valid_before=_absolute(want.valid_before, now),
        replay=replay,
        renewal_enabled=not claims.disable_renewal,
    )


def resolve_validity(
    auth: SSHSignAuthorization, request: SSHOptions, *, now: dt.datetime, backdate: dt.timedelta
) -> tuple[int, int]:
    """(validAfter, validBefore) as step-ca computes and checks them.

    Request values first, the token's override them, then the defaults.

    Raises:
        BadRequest: inverted or in the past.
        Forbidden: shorter than the minimum or longer than the maximum (+ backdate).
    """
    after = _absolute(request.valid_after, now)
    before = _absolute(request.valid_before, now)
    if after and before and after > before:
        raise BadRequest("ssh certificate validAfter cannot be greater than validBefore")
    if auth.valid_after is not None:
        after = auth.valid_after
    if auth.valid_before is not None:
        before = auth.valid_before
    host = auth.cert_type == HOST_CERT
    default = auth.claims.default_host_ssh if host else auth.claims.default_user_ssh
    back = 0
    if not after:
        back = int(backdate.total_seconds())
        after = int(now.timestamp())
    if not before:
        before = after + int(default.total_seconds())
    if after > back:
        after -= back
    if before < int(now.timestamp()):
        raise BadRequest("ssh certificate validBefore cannot be in the past")
    if before < after:
        raise BadRequest("ssh certificate validBefore cannot be before validAfter")
    minimum = auth.claims.min_host_ssh if host else auth.claims.min_user_ssh
    maximum = auth.claims.max_host_ssh if host else auth.claims.max_user_ssh
    duration = dt.timedelta(seconds=before - after)
    if duration < minimum:
        raise Forbidden(
            f"requested duration of {duration} is less than minimum accepted duration"
            f" for selected provisioner of {minimum}"
        )
    if duration > maximum + backdate:
        raise Forbidden(
            "requested duration of "
            f"{duration} is greater than maximum accepted duration for selected provisioner of {maximum + backdate}"
        )
    return after, before
