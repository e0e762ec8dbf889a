"""The rendered JSON of a certificate template: decoded, and its fields checked for type.

step-ca decodes a rendered template into `x509util.Certificate` / `sshutil.Certificate`; a field of
the wrong JSON type is an error there (Go's json.Unmarshal), unknown fields are ignored. This
module does the same check so a bad template is refused with a clear message, before any key is
used. Field names and shapes: reference section 4.4 (X.509) and 4.5 (SSH).
"""

from __future__ import annotations

import json
from typing import Any

from shared.templates.errors import TemplateError

# Accepted JSON shapes per field: "str", "num", "bool", "obj", "list", "strs" (a string or a list of
# strings), "null" is always accepted (Go leaves the zero value).
X509_FIELDS: dict[str, tuple[str, ...]] = {
    "version": ("num",), "subject": ("obj", "str"), "rawSubject": ("str",), "issuer": ("obj", "str"),
    "serialNumber": ("num", "str"), "dnsNames": ("strs",), "emailAddresses": ("strs",),
    "ipAddresses": ("strs",), "uris": ("strs",), "sans": ("list",), "notBefore": ("str",), "notAfter": ("str",),
    "extensions": ("list",), "keyUsage": ("strs",), "extKeyUsage": ("strs",), "unknownExtKeyUsage": ("strs",),
    "subjectKeyId": ("str",), "authorityKeyId": ("str",), "ocspServer": ("strs",),
    "issuingCertificateURL": ("strs",), "crlDistributionPoints": ("strs",), "policyIdentifiers": ("strs",),
    "basicConstraints": ("obj",), "nameConstraints": ("obj",), "signatureAlgorithm": ("str",),
}
SSH_FIELDS: dict[str, tuple[str, ...]] = {
    "type": ("str",), "keyId": ("str",), "principals": ("list",), "extensions": ("obj",),
    "criticalOptions": ("obj",), "serial": ("num",), "nonce": ("str",), "reserved": ("str",),
}  # sshutil.Certificate's validAfter/validBefore are `json:"-"`: ignored, whatever their type


def _matches(value: Any, shape: str) -> bool:
    if shape == "str":
        return isinstance(value, str)
    if shape == "num":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if shape == "bool":
        return isinstance(value, bool)
    if shape == "obj":
        return isinstance(value, dict)
    if shape == "list":
        return isinstance(value, list)
    if shape == "strs":
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(x, str) for x in value))
    return False


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def decode_rendered(text: str, *, ssh: bool, name: str = "template") -> dict[str, Any]:
    """The rendered template as a JSON object, with each known field of the right type."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"rendered template is not valid JSON: {exc.msg} (output line {exc.lineno})", 0,
                            name) from None
    except (ValueError, RecursionError) as exc:
        raise TemplateError(f"rendered template is not valid JSON: {exc}", 0, name) from None
    if not isinstance(value, dict):
        raise TemplateError("rendered template must be a JSON object", 0, name)
    fields = SSH_FIELDS if ssh else X509_FIELDS
    for key, item in value.items():
        shapes = fields.get(key)
        if shapes is None or item is None:
            continue
        if not any(_matches(item, shape) for shape in shapes):
            kinds = " or ".join({"str": "a string", "num": "a number", "bool": "true/false", "obj": "an object",
                                 "list": "a list", "strs": "a string or a list of strings"}[s] for s in shapes)
            raise TemplateError(f"field {key!r} must be {kinds}, not {_json_kind(item)}", 0, name)
    return value


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"
