"""A VM's cloud instance identity, fetched as the step CLI fetches it, for `cirrus bootstrap`.

GCP: the identity token from the metadata server (`Metadata-Flavor: Google`, `format=full`).
AWS: the instance identity document and its signature from IMDS (v2 with a session token, then
v1, as the provisioner's `imdsVersions` allow), wrapped in step's HS256 token. Azure: the managed
identity's access token from IMDS (`Metadata: true`). The endpoints follow the clouds' own
override variables, so the same code runs against the loopback fakes in tests:
`GCE_METADATA_HOST` (Google's client libraries), `AWS_EC2_METADATA_SERVICE_ENDPOINT` (AWS SDKs),
and `CIRRUS_AZURE_IMDS_ENDPOINT`. The standard library's urllib is the HTTP client: these are a
handful of small requests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DETECT_TIMEOUT = 1.0
TIMEOUT = 30.0
GCP_IDENTITY = "/computeMetadata/v1/instance/service-accounts/default/identity"


class BootstrapError(Exception):
    """A failure with a one-line message for the user."""


def http_request(
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
    ctx: ssl.SSLContext | None = None,
    timeout: float = TIMEOUT,
) -> tuple[bytes, Mapping[str, str]]:
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))  # noqa: S310
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:  # noqa: S310
            return resp.read(1024 * 1024), {k.lower(): v for k, v in resp.headers.items()}
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("message", "")
        except (ValueError, AttributeError):
            detail = ""
        suffix = f": {detail}" if detail else ""
        raise BootstrapError(f"{urlsplit(url).netloc} refused the request ({exc.code}){suffix}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise BootstrapError(f"cannot reach {urlsplit(url).netloc}: {getattr(exc, 'reason', exc)}") from exc


def _gcp_base() -> str:
    return "http://" + os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")


def _aws_base() -> str:
    return os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254").rstrip("/")


def _azure_base() -> str:
    return os.environ.get("CIRRUS_AZURE_IMDS_ENDPOINT", "http://169.254.169.254").rstrip("/")


def detect_cloud() -> str:
    """Which cloud's metadata server answers here.

    Raises:
        BootstrapError: none does.
    """
    try:
        _, headers = http_request(_gcp_base() + "/", headers={"Metadata-Flavor": "Google"}, timeout=DETECT_TIMEOUT)
        if headers.get("metadata-flavor") == "Google":
            return "gcp"
    except BootstrapError:
        pass
    try:
        http_request(
            _aws_base() + "/latest/api/token", method="PUT", data=b"",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}, timeout=DETECT_TIMEOUT,
        )
        return "aws"
    except BootstrapError:
        pass
    try:
        http_request(
            _azure_base() + "/metadata/instance?api-version=2021-02-01", headers={"Metadata": "true"},
            timeout=DETECT_TIMEOUT,
        )
        return "azure"
    except BootstrapError:
        pass
    raise BootstrapError("no cloud metadata server answers here; give --cloud")


@dataclass(frozen=True)
class Identity:
    """A cloud identity token and the names the VM asks for by default."""

    token: str
    common_name: str
    sans: tuple[str, ...]


def _unverified_claims(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise BootstrapError("the metadata server returned no token") from exc
    if not isinstance(claims, dict):
        raise BootstrapError("the metadata server returned no token")
    return claims


def gcp_identity(audience: str) -> Identity:
    """The instance identity token (`format=full`) and the instance's internal DNS names.

    Raises:
        BootstrapError: the metadata server fails.
    """
    query = urllib.parse.urlencode({"audience": audience, "format": "full", "licenses": "FALSE"})
    raw, _ = http_request(f"{_gcp_base()}{GCP_IDENTITY}?{query}", headers={"Metadata-Flavor": "Google"})
    token = raw.decode().strip()
    engine = (_unverified_claims(token).get("google") or {}).get("compute_engine") or {}
    name, project, zone = engine.get("instance_name"), engine.get("project_id"), engine.get("zone")
    if not all(isinstance(v, str) and v for v in (name, project, zone)):
        raise BootstrapError("the identity token has no compute_engine block")
    return Identity(token, str(name), (f"{name}.c.{project}.internal", f"{name}.{zone}.c.{project}.internal"))


def _imds_get(path: str, versions: tuple[str, ...]) -> bytes:
    """Read an IMDS path the way the step CLI does: each version in turn (v2: session token first)."""
    base = _aws_base()
    last: BootstrapError | None = None
    for version in versions:
        headers: dict[str, str] = {}
        try:
            if version == "v2":
                token, _ = http_request(
                    base + "/latest/api/token", method="PUT", data=b"",
                    headers={"X-aws-ec2-metadata-token-ttl-seconds": "30"},
                )
                headers["X-aws-ec2-metadata-token"] = token.decode().strip()
            body, _ = http_request(base + path, headers=headers)
            return body
        except BootstrapError as exc:
            last = exc
    raise last or BootstrapError("no instance metadata service version to try")


def aws_token(document: bytes, signature: bytes, *, subject: str, audience: str, provisioner: str) -> str:
    """The HS256 token `step ca token` builds on EC2: the HMAC key is the document's signature."""
    import time

    import jwt

    now = int(time.time())
    claims = {
        "iss": "ec2.amazonaws.com",
        "sub": subject,
        "aud": audience,
        "exp": now + 300,
        "nbf": now,
        "iat": now,
        "jti": hashlib.sha256(f"aws/{provisioner}.{json.loads(document)['instanceId']}".encode()).hexdigest(),
        "amazon": {
            "document": base64.b64encode(document).decode(),
            "signature": base64.b64encode(signature).decode(),
        },
    }
    return jwt.encode(claims, signature, algorithm="HS256", headers={"typ": "JWT"})


def aws_identity(audience: str, provisioner: str, versions: tuple[str, ...]) -> Identity:
    """The identity document and signature from IMDS, wrapped as the step CLI wraps them.

    Raises:
        BootstrapError: the metadata service fails or answers nonsense.
    """
    document = _imds_get("/latest/dynamic/instance-identity/document", versions)
    raw_sig = _imds_get("/latest/dynamic/instance-identity/signature", versions)
    try:
        signature = base64.b64decode(b"".join(raw_sig.split()), validate=True)
        doc = json.loads(document)
        private, region = str(doc["privateIp"]), str(doc["region"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BootstrapError("the metadata service returned no identity document") from exc
    dns = f"ip-{private.replace('.', '-')}.{region}.compute.internal"
    token = aws_token(document, signature, subject=dns, audience=audience, provisioner=provisioner)
    return Identity(token, dns, (dns, private))


def azure_identity(resource: str) -> Identity:
    """The managed identity's access token from IMDS; the VM name from its `xms_mirid`.

    Raises:
        BootstrapError: IMDS fails or the token names no VM.
    """
    query = urllib.parse.urlencode({"api-version": "2018-02-01", "resource": resource})
    raw, _ = http_request(f"{_azure_base()}/metadata/identity/oauth2/token?{query}", headers={"Metadata": "true"})
    try:
        token = str(json.loads(raw)["access_token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BootstrapError("the metadata service returned no access token") from exc
    mirid = str(_unverified_claims(token).get("xms_mirid") or "")
    name = mirid.rsplit("/", 1)[-1]
    if not name:
        raise BootstrapError("the access token names no virtual machine (xms_mirid)")
    return Identity(token, name, (name,))
