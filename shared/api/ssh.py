"""step-ca's SSH routes (reference s.1.4, 1.5), mounted at `/ssh` and `/1.0/ssh`.

`/ssh/sign`, `/ssh/renew`, `/ssh/rekey` answer 201 with `{"crt": <base64
certificate>}`; `/ssh/revoke` 200 `{"status":"ok"}`; `/ssh/roots` and
`/ssh/federation` the CA keys (404 when there are none); `/ssh/config`,
`/ssh/check-host`, `/ssh/hosts`, `/ssh/bastion` as step-ca. Without SSH keys
in the config the signing routes answer 501 "ssh certificate flows are not
enabled", as step-ca does. In the registration-authority shape the writes
go to the issuer function unchanged.
"""

from __future__ import annotations

import base64
from typing import Any

from werkzeug.wrappers import Request, Response

from shared.api.render import json_response, read_json_object
from shared.errors import BadRequest, NotFound, NotImplementedYet, PayloadTooLarge
from shared.runtime import Services
from shared.ssh.authority import SSHAuthority, SSHIssued
from shared.ssh.config_templates import host_templates, user_templates

_WRITES = {"/sign": "sign", "/renew": "renew", "/rekey": "rekey", "/revoke": "revoke"}
_GET = {"/roots", "/federation", "/hosts", "/get-hosts", "/krl"}
_POST = {*_WRITES, "/config", "/config/user", "/config/host", "/check-host", "/bastion"}


def _authority(services: Services) -> SSHAuthority | None:
    from shared.ssh.wiring import ssh_authority

    found: SSHAuthority | None = services.lazy("ssh_authority", ssh_authority)
    return found


def _required(services: Services) -> SSHAuthority:
    found = _authority(services)
    if found is None:
        raise NotImplementedYet("ssh certificate flows are not enabled")
    return found


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _issued(issued: SSHIssued) -> Response:
    body = {"crt": _b64(issued.certificate.blob)}
    if issued.add_user is not None:
        body["addUserCrt"] = _b64(issued.add_user.blob)
    return json_response(body, 201)


def _forward(request: Request, services: Services) -> Response:
    link = services.issuer_link
    assert link is not None
    limit = services.settings.max_body_bytes
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    status, _, payload = link.call(request.path, body)
    return Response(payload, status=status, mimetype="application/json")


def ssh(request: Request, services: Services, tail: str) -> Response:
    """Serve one `/ssh/...` request."""
    tail = tail.rstrip("/") or "/"
    if tail not in _GET and tail not in _POST:
        raise NotFound("The requested resource could not be found")
    allowed = "GET" if tail in _GET else "POST"
    if request.method != allowed and not (allowed == "GET" and request.method == "HEAD"):
        return json_response({"status": 405, "message": "method not allowed"}, 405)
    if allowed == "POST" and services.issuer_link is not None:
        return _forward(request, services)  # the issuer function holds the SSH keys
    if allowed == "GET":
        return _read(tail, services)
    body: dict[str, Any] = read_json_object(request, max_bytes=services.settings.max_body_bytes)
    if tail in _WRITES:
        authority = _required(services)
        op = _WRITES[tail]
        if op == "revoke":
            authority.revoke(body)
            if services.settings.crl.publish_on_revoke:
                _publish_krl(services)
            return json_response({"status": "ok"})
        return _issued(getattr(authority, op)(body))
    if tail.startswith("/config"):
        return _config(tail, body, services)
    if tail == "/check-host":
        if body.get("type") != "host":
            raise BadRequest("type must be host")
        principal = body.get("principal")
        if not isinstance(principal, str) or not principal or len(principal) > 1024:
            raise BadRequest("missing or empty principal")
        return json_response({"exists": _required(services).check_host(principal)})
    hostname = body.get("hostname")  # /bastion: no bastion is configured
    if not isinstance(hostname, str) or not hostname:
        raise BadRequest("missing or empty hostname")
    return json_response({"hostname": hostname})


def _read(tail: str, services: Services) -> Response:
    authority = _authority(services)
    if tail in ("/roots", "/federation"):
        if authority is None:
            raise NotFound("ssh keys were not found")
        return json_response({"userKey": [_b64(authority.user_key)], "hostKey": [_b64(authority.host_key)]})
    if authority is None:
        raise NotFound("ssh certificate flows are not enabled")
    if tail == "/krl":
        return _krl(services)
    return json_response({"hosts": authority.hosts()})


def _krl(services: Services) -> Response:
    """The published KRL (Cirrus's own route: relying parties may fetch it here or from the bucket)."""
    from shared.ssh.publish import KRL_CONTENT_TYPE, krl_blob_name
    from shared.validation.wiring import blobs

    blob = blobs(services).read(krl_blob_name(services.settings.authority_id))
    if blob is None:
        raise NotFound("no KRL has been published yet")
    return Response(blob.data, mimetype=KRL_CONTENT_TYPE)


def _publish_krl(services: Services) -> None:
    """`crl.publishOnRevoke` for SSH: republish the KRL now; a failure waits for the schedule."""
    import logging

    from shared.ssh.publish import publish_krl

    try:
        publish_krl(services)
    except Exception:
        logging.getLogger("cirrus.ssh").warning("KRL publish-on-revoke failed; the schedule will retry", exc_info=True)


def _config(tail: str, body: dict[str, Any], services: Services) -> Response:
    authority = _required(services)
    kind = tail[len("/config/") :] if tail.startswith("/config/") else body.get("type") or "user"
    data = body.get("data") or {}
    if not isinstance(data, dict):
        raise BadRequest("data must be an object")
    if kind == "user":
        return json_response({"userTemplates": user_templates(data, host_key=authority.host_key)})
    if kind == "host":
        return json_response({"hostTemplates": host_templates(data, user_key=authority.user_key)})
    raise BadRequest(f"unsupported type {str(kind)[:16]}")
