"""SSH certificate templates (step's `sshutil`, reference section 4.5): the data a template sees and
the certificate fields its rendered JSON sets.

The data is step-ca's `sshutil.TemplateData`, a plain dict so other parts of issuance can add keys
(`.Inventory`, `.Webhooks`) before rendering: `.Type`, `.KeyID`, `.Principals` (what the credential
proves), `.Extensions` (sshutil's DefaultExtensions: the five `permit-*` for a user certificate,
none for a host), `.Token` (the token's claims), the provisioner's `templateData` as top-level keys
(they may override the others, as Go's json.Unmarshal into the map does), and `.Insecure.CR` (the
request's own, unchecked type, key id and principals) and `.Insecure.User` (the request's
`templateData`, only when given). `.CriticalOptions` is absent unless a provisioner's identity adds
some, so `toJson .CriticalOptions` renders `null`, as in step-ca.

The rendered JSON is decoded as Go decodes it into `sshutil.Certificate`: `type` ("user"/"host",
any case), `keyId`, `principals` (strings), `extensions` and `criticalOptions` (string maps);
`validAfter`/`validBefore` are `json:"-"` there and are ignored here too (validity comes from the
request, the token and the claims). Cirrus assigns serials and nonces itself (records and KRLs key
on the serial), so a template setting `serial`, `nonce` or `reserved` is refused rather than
followed. Hand-written because no library models step's SSH template JSON.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from shared.errors import BadRequest, Forbidden
from shared.ssh.certificate import (
    CERT_TYPE_NAMES,
    CERT_TYPES,
    DEFAULT_USER_EXTENSIONS,
    MAX_PRINCIPALS,
    MAX_TEXT,
    USER_CERT,
)
from shared.ssh.options import SSHOptions, SSHSignAuthorization
from shared.ssh.wire import SSHPublicKey
from shared.templates.errors import TemplateError
from shared.templates.fields import decode_rendered
from shared.templates.provisioner import ProvisionerTemplate, with_webhooks
from shared.templates.values import GoStruct, GoTyped

MAX_OPTIONS = 64  # extensions or critical options one certificate may carry

# How Go's crypto/ssh types the request's key (`typeIs` / `%T` on `.Insecure.CR.Key`).
_GO_KEY_TYPES = {
    "ssh-ed25519": "ssh.ed25519PublicKey", "ssh-rsa": "*ssh.rsaPublicKey",
    "ecdsa-sha2-nistp256": "*ssh.ecdsaPublicKey", "ecdsa-sha2-nistp384": "*ssh.ecdsaPublicKey",
    "ecdsa-sha2-nistp521": "*ssh.ecdsaPublicKey",
}


@dataclass(frozen=True, slots=True)
class TemplatedSSH:
    """The certificate fields a rendered SSH template sets."""

    cert_type: int
    key_id: str
    principals: tuple[str, ...]
    extensions: dict[str, str]
    critical_options: dict[str, str]


def default_extensions(cert_type: int) -> dict[str, str] | None:
    """sshutil.DefaultExtensions: the `permit-*` set for user certificates, nil for hosts."""
    return dict(DEFAULT_USER_EXTENSIONS) if cert_type == USER_CERT else None


def _go_key(key: SSHPublicKey | None) -> GoTyped | None:
    if key is None:
        return None
    go_type = _GO_KEY_TYPES.get(key.key_type, "ssh.PublicKey")
    return GoTyped(go_type, "ptr", base64.b64encode(key.blob).decode(), "&{...}")


def certificate_request(*, cert_type: str, key_id: str, principals: Sequence[str],
                        key: SSHPublicKey | None) -> GoStruct:
    """sshutil.CertificateRequest (`.Insecure.CR`): Go field names, and no JSON tags, so toJson
    writes the same names."""
    return GoStruct("sshutil.CertificateRequest", [
        ("Key", "Key", False, _go_key(key)), ("Type", "Type", False, cert_type),
        ("KeyID", "KeyID", False, key_id), ("Principals", "Principals", False, list(principals) or None),
    ])


def ssh_template_data(*, cert_type: int, key_id: str, principals: Sequence[str],
                      token: Mapping[str, Any] | None, request: GoStruct, user: Any = None,
                      extra: Mapping[str, Any] | None = None,
                      critical_options: Mapping[str, str] | None = None) -> dict[str, Any]:
    """step-ca's SSH template data (see the module docstring); `request` is `certificate_request(...)`.

    `user` is the request body's `templateData`: an object becomes `.Insecure.User`, anything else an
    empty one (step-ca's choice); None leaves `.Insecure.User` unset.
    """
    data: dict[str, Any] = {
        "Type": CERT_TYPE_NAMES[cert_type], "KeyID": key_id, "Principals": list(principals),
        "Extensions": default_extensions(cert_type),
    }
    if critical_options:
        data["CriticalOptions"] = dict(critical_options)
    if token is not None:
        data["Token"] = dict(token)
    data.update(extra or {})
    insecure: dict[str, Any] = {"CR": request}
    if user is not None:
        insecure["User"] = dict(user) if isinstance(user, dict) else {}
    data["Insecure"] = insecure
    return data


def _fail(message: str) -> TemplateError:
    return TemplateError(message)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(f"field {field!r} must be a string")
    if len(value) > MAX_TEXT:
        raise _fail(f"field {field!r} is longer than {MAX_TEXT} characters")
    return value


def _options(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(f"field {field!r} must be an object of strings")
    if len(value) > MAX_OPTIONS:
        raise _fail(f"field {field!r} has more than {MAX_OPTIONS} entries")
    out: dict[str, str] = {}
    for name, text in value.items():
        if not name:
            raise _fail(f"field {field!r}: an option needs a name")
        if len(name) > MAX_TEXT:
            raise _fail(f"field {field!r}: option names are at most {MAX_TEXT} characters")
        out[name] = _text(text, f"{field}.{name[:64]}")
    return out


def templated_ssh(doc: Mapping[str, Any]) -> TemplatedSSH:
    """The certificate fields of a rendered (and decoded) SSH template.

    Raises:
        TemplateError: a field of the wrong type or size, an unknown certificate type, or a field
        only the CA sets (serial, nonce, reserved).
    """
    raw_type = doc.get("type")
    if not isinstance(raw_type, str) or raw_type.lower() not in CERT_TYPES:
        shown = raw_type[:32] if isinstance(raw_type, str) else raw_type
        raise _fail(f"field 'type' must be \"user\" or \"host\", not {shown!r}")
    key_id = _text(doc.get("keyId") or "", "keyId")
    raw_principals = doc.get("principals") or []
    if not isinstance(raw_principals, list):
        raise _fail("field 'principals' must be a list of strings")
    if len(raw_principals) > MAX_PRINCIPALS:
        raise _fail(f"field 'principals' has more than {MAX_PRINCIPALS} entries")
    principals = tuple(_text(p, "principals") for p in raw_principals)
    if "" in principals:
        raise _fail("field 'principals' cannot contain empty values")
    if doc.get("serial") not in (None, 0):
        raise _fail("field 'serial' cannot be set by a template: the CA assigns SSH serial numbers")
    for field in ("nonce", "reserved"):
        if doc.get(field) not in (None, ""):
            raise _fail(f"field {field!r} cannot be set by a template")
    return TemplatedSSH(
        cert_type=CERT_TYPES[raw_type.lower()], key_id=key_id, principals=principals,
        extensions=_options(doc.get("extensions"), "extensions"),
        critical_options=_options(doc.get("criticalOptions"), "criticalOptions"),
    )


def _merged(template_data: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The provisioner's templateData with what issuance adds: `.Inventory` (Cirrus's own) replaces a
    templateData key of that name; `.Webhooks` is added to a templateData `Webhooks` object, as
    step-ca's SetWebhook does."""
    merged = {**template_data, **extra}
    if "Webhooks" in extra:
        merged["Webhooks"] = with_webhooks(template_data.get("Webhooks"), extra["Webhooks"])
    return merged


def apply_ssh_template(configured: ProvisionerTemplate, auth: SSHSignAuthorization, *, request: SSHOptions,
                       key: SSHPublicKey, token: Mapping[str, Any], user: Any = None,
                       extra: Mapping[str, Any] | None = None) -> tuple[SSHSignAuthorization, TemplatedSSH]:
    """Render a provisioner's `options.ssh` template over step-ca's data for this request and return
    the authorization with the template's type, key id and principals, and the fields it set.

    `extra` holds keys other parts of issuance add to the data (`Inventory`, `Webhooks`).

    Raises:
        BadRequest: the template fails (`fail` answers with its own message), renders something that
        is not the JSON of an SSH certificate, or sets a field of the wrong type.
        Forbidden: an empty key id (step-ca's check) or no principals (a certificate without
        principals is valid for every user or host, which no template may grant by mistake).
    """
    cert_type, key_id, principals = auth.template_identity or (auth.cert_type, auth.key_id, auth.principals)
    data = ssh_template_data(
        cert_type=cert_type, key_id=key_id, principals=principals, token=token,
        request=certificate_request(cert_type=request.cert_type, key_id=request.key_id,
                                    principals=request.principals, key=key),
        user=user, extra=_merged(configured.data, extra or {}),
    )
    name = configured.template.name
    try:
        fields = templated_ssh(decode_rendered(configured.template.render(data), ssh=True, name=name))
    except TemplateError as exc:
        if exc.failed:
            raise BadRequest(exc.reason) from exc
        if exc.name != name:
            exc = TemplateError(exc.message, exc.line, name)
        raise BadRequest(f"certificate template: {exc}") from exc
    if not fields.key_id:
        raise Forbidden("ssh certificate key id cannot be empty")
    if not fields.principals:
        raise Forbidden("ssh certificate valid principals cannot be empty")
    granted = replace(auth, cert_type=fields.cert_type, key_id=fields.key_id, principals=fields.principals)
    return granted, fields
