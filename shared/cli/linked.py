"""`cirrus linked add|set-revoke|report|revoke-token`: register a linked authority and change its revoke
endpoint; report certificates to a central Cirrus; issue, list and withdraw the tokens a central Cirrus
revokes with."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.cli.ca_client import ca_url, ssl_context
from shared.cli.errors import CLIError
from shared.cli.files import load_chain, read
from shared.cli.folder import load_settings
from shared.clock import SystemClock
from shared.errors import BackendError, Conflict, NotFound
from shared.linked.client import batches, issued_item, post_report, revoked_item
from shared.linked.registry import LinkError, set_revoke_endpoint
from shared.linked.registry import register as register_link
from shared.linked.revoke_tokens import issue_revoke_token, list_revoke_tokens, withdraw_revoke_token
from shared.store.open import open_store

#: Files `cirrus linked report DIR` reads in a folder (others are skipped).
_CERT_SUFFIXES = (".crt", ".pem", ".cer", ".der")


def register(sub: Any) -> None:
    """Add `cirrus linked`."""
    p = sub.add_parser("linked", help="linked authorities: CAs you run that report to this one")
    lsub = p.add_subparsers(dest="linked_command", metavar="ACTION")
    ap = lsub.add_parser("add", help="register a linked authority; prints its token once")
    ap.add_argument("name", help="a name for it (lowercase letters, digits, '-')")
    ap.add_argument("--root", required=True, type=Path, action="append", help="its root certificate (PEM)")
    ap.add_argument("--intermediate", type=Path, action="append", default=[], help="its intermediate (PEM)")
    ap.add_argument("--client-certificate", type=Path,
                    help="a client certificate (issued by this authority) it may use over mTLS instead of the token")
    ap.add_argument("--revoke-url", default="",
                    help="where revocations made here of its certificates go (a linked Cirrus: https://HOST:PORT/revoke)")
    ap.add_argument("--revoke-token-file", type=Path,
                    help="file holding the token it accepts there (a linked Cirrus: `cirrus linked revoke-token`)")
    ap.add_argument("--dir", required=True, type=Path, help="this authority's folder (made by `cirrus init`)")
    ap.set_defaults(func=cmd_add)
    sp = lsub.add_parser("set-revoke", help="change where revocations of a linked authority's certificates go "
                                            "(a new revoke token from it)")  # fmt: skip
    sp.add_argument("name", help="the linked authority's name")
    sp.add_argument("--revoke-url", required=True, help="its revoke endpoint (a linked Cirrus: https://HOST:PORT/revoke)")
    sp.add_argument("--revoke-token-file", required=True, type=Path, help="file holding the token it accepts there")
    sp.add_argument("--dir", required=True, type=Path, help="this authority's folder (made by `cirrus init`)")
    sp.set_defaults(func=cmd_set_revoke)
    tp = lsub.add_parser("revoke-token", help="at a linked Cirrus: print a token a central Cirrus revokes with "
                                              "(or list them, or withdraw one)")  # fmt: skip
    tp.add_argument("--label", default="central", help="who holds it (kept with its hash)")
    what = tp.add_mutually_exclusive_group()
    what.add_argument("--list", action="store_true", help="list the tokens issued here (id, label, created, withdrawn)")
    what.add_argument("--withdraw", metavar="ID", help="withdraw the token with this id (rvk-...): refused from now on")
    tp.add_argument("--json", action="store_true", help="with --list or --withdraw: print JSON")
    tp.add_argument("--dir", required=True, type=Path, help="this authority's folder (made by `cirrus init`)")
    tp.set_defaults(func=cmd_revoke_token)
    rp = lsub.add_parser("report", help="report certificates from files or folders to a central Cirrus")
    rp.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR", help="certificates (PEM or DER)")
    rp.add_argument("--ca-url", required=True, help="the central Cirrus's URL (https://host:port)")
    rp.add_argument("--token-file", required=True, type=Path, help="file holding the token `linked add` printed")
    rp.add_argument("--root", type=Path, help="root certificate the central Cirrus's TLS chains to")
    rp.add_argument("--revoked", action="store_true", help="report them revoked (now), not issued")
    rp.add_argument("--reason-code", type=int, default=0, help="CRLReason code of --revoked (default 0)")
    rp.set_defaults(func=cmd_report, dir=None)


def cmd_add(args: argparse.Namespace) -> int:
    """Register a linked authority; print its token."""
    settings = load_settings(args.dir)
    roots = [c for path in args.root for c in load_chain(path)]
    intermediates = [c for path in args.intermediate for c in load_chain(path)]
    client = load_chain(args.client_certificate)[0] if args.client_certificate else None
    if bool(args.revoke_url) != bool(args.revoke_token_file):
        raise CLIError("--revoke-url and --revoke-token-file go together")
    revoke_token = ""
    if args.revoke_token_file:
        revoke_token = read(args.revoke_token_file, "revoke token file").decode("utf-8", "replace").strip()
    clock = SystemClock()
    store = open_store(settings.store, clock=clock)
    try:
        token = register_link(store, args.name, roots=roots, intermediates=intermediates, client_certificate=client,
                              revoke_url=args.revoke_url, revoke_token=revoke_token, now=clock.now())
    except LinkError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        store.close()
    print(token)
    return 0


def cmd_set_revoke(args: argparse.Namespace) -> int:
    """Replace a link's revoke URL and token (the central's half of rotating a revoke token)."""
    settings = load_settings(args.dir)
    token = read(args.revoke_token_file, "revoke token file").decode("utf-8", "replace").strip()
    clock = SystemClock()
    store = open_store(settings.store, clock=clock)
    try:
        set_revoke_endpoint(store, args.name, revoke_url=args.revoke_url, revoke_token=token)
    except LinkError as exc:
        raise CLIError(str(exc)) from exc
    finally:
        store.close()
    print(f"revocations of {args.name}'s certificates now go to {args.revoke_url}")
    return 0


def cmd_revoke_token(args: argparse.Namespace) -> int:
    """Print a new revoke token (this instance keeps only its hash)."""
    settings = load_settings(args.dir)
    clock = SystemClock()
    store = open_store(settings.store, clock=clock)
    try:
        if args.list:
            tokens = list_revoke_tokens(store)
            if args.json:
                print(json.dumps([t.as_json() for t in tokens], indent=2))
            for t in tokens if not args.json else ():
                state = f"withdrawn {t.withdrawn_at}" if t.withdrawn_at else "active"
                print(f"{t.id}  {state:<40} created {t.created_at}  label={t.label!r}")
        elif args.withdraw is not None:
            try:
                token = withdraw_revoke_token(store, args.withdraw, now=clock.now())
            except (NotFound, Conflict) as exc:
                raise CLIError(str(exc)) from None
            print(json.dumps(token.as_json()) if args.json else f"{token.id} withdrawn {token.withdrawn_at}")
        else:
            print(issue_revoke_token(store, label=args.label, now=clock.now()))
    finally:
        store.close()
    return 0


def _certificate_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in _CERT_SUFFIXES)
            if not found:
                raise CLIError(f"no certificate files ({', '.join(_CERT_SUFFIXES)}) in folder {path}")
            files += found
        elif not path.exists():
            raise CLIError(f"no such file or folder: {path}")
        else:
            files.append(path)
    return files


def _leaf(path: Path) -> bytes:
    """The DER of the first certificate in a PEM or DER file."""
    data = read(path, "certificate")
    try:
        if b"-----BEGIN" in data:
            cert = x509.load_pem_x509_certificates(data)[0]
        else:
            cert = x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise CLIError(f"{path} holds no PEM or DER certificate") from exc
    return cert.public_bytes(serialization.Encoding.DER)


def cmd_report(args: argparse.Namespace) -> int:
    """Post the certificates; print one line per certificate with what the central Cirrus did."""
    token = read(args.token_file, "token file").decode("utf-8", "replace").strip()
    if not token or any(c.isspace() for c in token):
        raise CLIError(f"{args.token_file} holds no token (the line `cirrus linked add` printed)")
    base = ca_url(args)
    ctx = ssl_context(args) if args.root else None
    files = _certificate_files(args.paths)
    now = dt.datetime.now(dt.UTC)
    items = [
        revoked_item(_leaf(f), revoked_at=now, reason_code=args.reason_code) if args.revoked else issued_item(_leaf(f))
        for f in files
    ]
    done = 0
    for batch in batches(items):
        try:
            results = post_report(base, token, batch, ctx=ctx)
        except BackendError as exc:
            raise CLIError(str(exc)) from exc
        for result in results:
            index = int(result.get("index", 0))
            print(f"{files[done + index]}: {result.get('status')} (serial {result.get('serial')})")
        done += len(batch)
    return 0
