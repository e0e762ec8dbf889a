"""The rendered JSON of a certificate template: decoded, and its fields checked for type.

step-ca decodes a rendered template into `x509util.Certificate` / `sshutil.Certificate`; a field of
the wrong JSON type is an error there (Go's json.Unmarshal), unknown fields are ignored. This
module does the same check so a bad template is refused with a clear message, before any key is
used. Field names and shapes: reference section 4.4 (X.509) and 4.5 (SSH).
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


# The Python types json.loads makes (exact types) each shape accepts, null always: a field is checked
# by one lookup and one membership test; a list where strings are expected is checked item by item.
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "num": (int, float), "bool": (bool,), "obj": (dict,),
                                       "list": (list,), "strs": (str,)}


def _accepted(fields: dict[str, tuple[str, ...]]) -> dict[str, frozenset[type]]:
    return {key: frozenset({type(None), *(t for shape in shapes for t in _TYPES[shape])})
            for key, shapes in fields.items()}


_X509_TYPES, _SSH_TYPES = _accepted(X509_FIELDS), _accepted(SSH_FIELDS)
_STRING_LISTS = frozenset(key for key, shapes in X509_FIELDS.items() if "strs" in shapes)  # SSH has none


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def decode_rendered(text: str, *, ssh: bool, name: str = "template") -> dict[str, Any]:
    """The rendered template as a JSON object, with each known field of the right type."""
    try:
        value = _decode(text)
    except json.JSONDecodeError as exc:
        raise TemplateError(f"rendered template is not valid JSON: {exc.msg} (output line {exc.lineno})", 0,
                            name) from None
    except (ValueError, RecursionError) as exc:
        raise TemplateError(f"rendered template is not valid JSON: {exc}", 0, name) from None
    if type(value) is not dict:
        raise TemplateError("rendered template must be a JSON object", 0, name)
    fields = _SSH_TYPES if ssh else _X509_TYPES
    for key, item in value.items():
        accepted = fields.get(key)
        if accepted is None or type(item) in accepted:  # unknown fields are ignored, as Go does
            continue
        if type(item) is list and not ssh and key in _STRING_LISTS and _all_strings(item):
            continue
        order = X509_FIELDS[key] if not ssh else SSH_FIELDS[key]
        kinds = " or ".join({"str": "a string", "num": "a number", "bool": "true/false", "obj": "an object",
                             "list": "a list", "strs": "a string or a list of strings"}[s] for s in order)
        raise TemplateError(f"field {key!r} must be {kinds}, not {_json_kind(item)}", 0, name)
    return value


def _all_strings(items: list[Any]) -> bool:
    """A loop, not all() over a generator: it runs for each list field of every rendered leaf."""
    for x in items:  # noqa: SIM110 - the loop is the point (see above)
        if type(x) is not str:
            return False
    return True


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)  # one decoder: json.loads with a hook builds one per call
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _decode(text: str) -> Any:
    """`_DECODER.decode(text)`: for a text that is one object from its first to its last character
    (a rendered certificate template), the decoder's scanner alone, without `decode`'s two Python
    frames and whitespace matches around it; anything else, or any failure, is `decode`'s (and so
    are its errors)."""
    if text[:1] == "{" and text[-1:] == "}":
        try:
            value, end = _SCAN(text, 0)
        except Exception:  # noqa: S110 - decode() below raises its own error for it
            pass
        else:
            if end == len(text):
                return value
    return _DECODER.decode(text)


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
