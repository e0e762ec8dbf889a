"""How the client commands reach the CA: its URL, the root they trust, one JSON request.

The same HTTP API the step CLI speaks, through the standard library's HTTPS client (no
extra dependency), trusting only the authority's root. Every failure becomes a
`ClientError` whose message names what to fix (the URL, the root file, the CA's answer).
"""

from __future__ import annotations

import argparse
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.cli.errors import CLIError
from shared.cli.folder import load_raw_config


class ClientError(CLIError):
    """A client-side failure with a message for the user."""


def config(args: argparse.Namespace) -> dict[str, Any]:
    """The authority's config.json (empty without --dir)."""
    if args.dir is None:
        return {}
    return load_raw_config(Path(args.dir))


def ca_url(args: argparse.Namespace) -> str:
    """The CA's base URL: --ca-url, else the address in DIR's config."""
    if args.ca_url:
        url = str(args.ca_url).rstrip("/")
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ClientError(f"--ca-url has an invalid port: {args.ca_url!r}") from None
        # http:// only for a CA without TLS of its own: the Functions Framework locally (docs/cloud-local.md).
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.query or parts.fragment:
            raise ClientError(f"--ca-url must look like https://HOST[:PORT], not {args.ca_url!r}")
        return url
    if args.dir is None:
        raise ClientError("give --ca-url or --dir")
    return url_for_address(str(config(args).get("address", "127.0.0.1:9443")))


def url_for_address(address: str) -> str:
    """`https://host:port` to reach a server listening on `address` (a wildcard host means this machine)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):  # noqa: S104
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def root_path(args: argparse.Namespace) -> Path:
    """The root certificate to trust."""
    if args.root:
        return Path(args.root)
    if args.dir:
        return Path(args.dir) / "certs" / "root_ca.crt"
    raise ClientError("give --root or --dir")


def ssl_context(args: argparse.Namespace, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """Trust only the CA's root; present a client certificate for mTLS (a checked pair)."""
    root = root_path(args)
    try:
        pem = root.read_text()
    except OSError as exc:
        raise ClientError(f"cannot read root certificate {root}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ClientError(f"{root} holds no PEM certificate to trust") from exc
    try:
        ctx = ssl.create_default_context(cadata=pem)
    except ssl.SSLError as exc:
        raise ClientError(f"{root} holds no certificate to trust") from exc
    if client is not None:
        try:
            ctx.load_cert_chain(str(client[0]), str(client[1]))
        except ssl.SSLError as exc:
            raise ClientError(f"cannot use {client[0]} with {client[1]} as a client certificate") from exc
    return ctx


def request(
    url: str, *, ctx: ssl.SSLContext, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST (with body) or GET a JSON endpoint; turn failures into `ClientError`."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")  # noqa: S310
    req.add_header("Content-Type", "application/json")
    req.add_header("User-Agent", "cirrus-cli/1.0")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:  # noqa: S310
            payload = json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("message", "")
        except (ValueError, AttributeError, OSError):
            detail = ""
        raise ClientError(f"the CA refused the request ({exc.code}): {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ClientError(f"cannot reach the CA at {url}: {reason}") from exc
    except ValueError as exc:  # not JSON
        raise ClientError(f"unexpected answer from the CA at {url}") from exc
    if not isinstance(payload, dict):
        raise ClientError("unexpected answer from the CA")
    return payload
