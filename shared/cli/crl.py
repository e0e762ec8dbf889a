"""`cirrus crl publish|show`: publish the CRLs now, or print what is published.

`run_publish(services, ...)` is the one code path shared with the scheduled
publisher inside `cirrus up` and the `crl_publish` Cloud Function: each builds
its `Services` and calls it. It also publishes the index of issued serials
(`shared.validation.serial_index`), the OCSP responder's other data source.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from shared.cli.errors import CLIError

if TYPE_CHECKING:
    from shared.runtime import Services
    from shared.validation.publisher import PublishResult
    from shared.validation.serial_index import IndexResult


def register(sub: Any) -> None:
    """Add `cirrus crl`."""
    p = sub.add_parser("crl", help="publish and inspect certificate revocation lists")
    csub = p.add_subparsers(dest="crl_command", metavar="ACTION")
    pub = csub.add_parser("publish", help="build, sign and publish the CRL(s) now")
    pub.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    pub.add_argument("--json", action="store_true", help="print the results as JSON")
    pub.set_defaults(func=cmd_publish)
    show = csub.add_parser("show", help="print a published CRL")
    show.add_argument("--dir", required=True, type=Path, help="authority folder made by `cirrus init`")
    show.add_argument("--shard", type=_shard, default=None, help="shard number (partitioned CRLs, 0..1023)")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--authority", metavar="ID", default=None,
                      help="a further issuing authority's id (`authorities`; default: the default authority)")
    show.set_defaults(func=cmd_show)


def _shard(text: str) -> int:
    """`--shard`: ASCII digits within the most shards a config may set."""
    if not text.isascii() or not text.isdigit() or int(text) >= 1024:
        raise argparse.ArgumentTypeError(f"must be a shard number from 0 to 1023, not {text!r}")
    return int(text)


def run_publish(services: Services, *, authority_id: str | None = None) -> list[PublishResult]:
    """Publish the configured CRLs with already-built services.

    This path holds the CA key, so it also renews the delegated OCSP responder
    certificate when due (at half-life, or at once after a responder key change).
    """
    from shared.ssh.publish import publish_krl
    from shared.validation.generations import lazy_name
    from shared.validation.rotation_mirror import mirror_rotation_record
    from shared.validation.wiring import crl_publisher, responder_rotator

    # The serial index, the responder certificate, the SSH KRL and the rotation mirror go
    # first, the CRLs last: a relying party that sees the new CRL then asks OCSP finds the
    # responder certificate and the index already there (with the CRL first, the very first
    # run answered tryLater in between). They are independent: one failing (say, an SSH key
    # this function cannot read) must not stop the others or the CRLs.
    failures: list[Exception] = []
    for step in (
        lambda: run_publish_index(services, authority_id=authority_id),
        lambda: _rotate_responder(services, responder_rotator),
        lambda: publish_krl(services),  # the SSH KRL beside the CRLs
        lambda: mirror_rotation_record(services),  # the intermediates, for OCSP without store access
    ):
        try:
            step()
        except Exception as exc:
            failures.append(exc)
    try:  # rebuilt when an intermediate generation is staged (shared.rotation)
        publisher = services.lazy(lazy_name(services, "crl_publisher"), crl_publisher)
        results: list[PublishResult] = publisher.publish(authority_id)
    except Exception as exc:
        _crl_failed(services, authority_id, exc)
        raise
    if failures:
        raise failures[0]
    return results


def _rotate_responder(services: Services, factory: Any) -> None:
    from shared.validation.generations import generation_responder_rotators, lazy_name

    rotator = services.lazy("ocsp_responder_rotator", factory)
    if rotator is not None:
        rotator.ensure()
    # One delegated responder certificate per staged intermediate generation (shared.rotation).
    for extra in services.lazy(lazy_name(services, "ocsp_generation_rotators"), generation_responder_rotators):
        extra.ensure()
    from shared.validation.wiring import further_responder_rotators

    # And one per further issuing authority (`authorities`), for the same responder key.
    for further in services.lazy("ocsp_further_rotators", further_responder_rotators):
        further.ensure()


def _crl_failed(services: Services, authority_id: str | None, exc: Exception) -> None:
    """Record and send `dev.cirrus.crl.failed` (best effort: the failure itself is what matters)."""
    import logging

    from shared.events.base import CRL_FAILED, authority_event, publish_to_sinks

    owner = authority_id or services.settings.authority_id
    data = {"authorityId": owner, "error": type(exc).__name__}
    event = authority_event(owner, CRL_FAILED, owner, services.clock.now(), data)
    try:
        services.store.append_events([event])
        publish_to_sinks(services.sinks, [event], log=logging.getLogger(__name__))
    except Exception:  # noqa: S110 - the store may be what failed; the caller re-raises the cause
        pass


def run_publish_index(services: Services, *, authority_id: str | None = None) -> list[IndexResult]:
    """Bring the published serial index up to date (incremental: cheap to run often)."""
    from shared.validation.wiring import serial_index_publisher

    publisher = services.lazy("serial_index_publisher", serial_index_publisher)
    if authority_id is not None and authority_id not in publisher.authority_ids:
        return []
    results: list[IndexResult] = publisher.publish(authority_id)
    return results


def _services(directory: Path) -> Services:
    from shared.cli.folder import load_settings
    from shared.runtime import build_services

    return build_services(load_settings(directory))


def cmd_publish(args: argparse.Namespace) -> int:
    """CLI entry for `cirrus crl publish`."""
    services = _services(args.dir)
    try:
        results = run_publish(services)
        index = run_publish_index(services)  # already current: reports what is published
    finally:
        services.close()
    rows = [
        {
            "authorityId": r.authority_id,
            "shard": r.shard,
            "object": r.blob_name,
            "crlNumber": r.number,
            "entries": r.entries,
            "bytes": r.size,
            "published": r.generation is not None,
            "supersededBy": r.superseded_by,
        }
        for r in results
    ]
    rows.extend(
        {"authorityId": r.authority_id, "object": r.blob_name, "serials": r.total, "segments": r.segments}
        for r in index
    )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            if "serials" in row:
                print(f"{row['object']}: {row['serials']} issued serials in {row['segments']} segments + tail")
                continue
            state = "published" if row["published"] else f"kept newer #{row['supersededBy']}"
            print(f"{row['object']}: #{row['crlNumber']} {row['entries']} entries {state}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """CLI entry for `cirrus crl show`."""
    from shared.validation.partition import blob_name
    from shared.validation.wiring import blobs

    services = _services(args.dir)
    try:
        authority_id = args.authority or services.settings.authority_id
        known = {services.settings.authority_id, *(a.authority_id for a in services.settings.authorities)}
        if authority_id not in known:
            raise CLIError(f"no authority {authority_id!r} in this deployment")
        store = blobs(services)
        blob = store.read(blob_name(authority_id, args.shard))
    finally:
        services.close()
    if blob is None:
        raise CLIError("no CRL published yet (cirrus crl publish makes one)")
    try:
        crl = x509.load_der_x509_crl(blob.data)
    except ValueError as exc:
        raise CLIError(f"the published CRL {blob_name(authority_id, args.shard)} is not DER") from exc
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    info = {
        "issuer": crl.issuer.rfc4514_string(),
        "crlNumber": number,
        "thisUpdate": crl.last_update_utc.isoformat(),
        "nextUpdate": crl.next_update_utc.isoformat() if crl.next_update_utc else None,
        "entries": len(crl),
        "generation": blob.generation,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0
