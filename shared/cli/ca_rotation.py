"""`cirrus ca` steps for rotating and revoking intermediates (shared/rotation.py).

    cirrus ca stage-intermediate --dir DIR --cert int.crt --kms URI [--chain upper.crt] [--not-before TIME]
    cirrus ca install --stage ...            (the same as stage-intermediate)
    cirrus ca activate --dir DIR (--cert int.crt | --fingerprint HEX) [--at TIME]
    cirrus ca intermediates --dir DIR        (the generations and which one issues now)
    cirrus ca retire-intermediate --dir DIR (--cert int.crt | --fingerprint HEX)
    cirrus ca revoke-intermediate --root-kms URI --root root.crt --cert int.crt (--blobs URL | --dir DIR)
        [--reason N]

Staging and activating write the authority's store (the record every instance
re-reads within seconds), so a running `cirrus up` or deployed functions
switch without a restart. Revoking runs where the root key is and writes only
the root's ARL to the blob store.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509

from shared.ceremony import CeremonyError, verify_chain
from shared.clock import SystemClock
from shared.errors import BackendError

_REASONS = {"unspecified": 0, "keyCompromise": 1, "cACompromise": 2, "affiliationChanged": 3, "superseded": 4,
            "cessationOfOperation": 5, "privilegeWithdrawn": 9}  # fmt: skip


def register(steps: Any, *, key_options: Any) -> None:
    """Add the rotation steps to `cirrus ca` (`key_options` adds its --create/--password-file)."""
    p = steps.add_parser("stage-intermediate", help="stage a new intermediate; it issues once activated")
    stage_options(p)
    p.set_defaults(func=lambda a: _guard("stage-intermediate", a, run_stage))

    p = steps.add_parser("activate", help="switch issuance to a staged intermediate (or back)")
    p.add_argument("--dir", required=True, type=Path, help="the authority's folder (config.json)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--cert", type=Path, help="the intermediate certificate (PEM)")
    which.add_argument("--fingerprint", help="its SHA-256 fingerprint (hex, as `cirrus ca intermediates` shows)")
    p.add_argument("--at", help="switch time (RFC 3339, default now)")
    p.set_defaults(func=lambda a: _guard("activate", a, _activate))

    p = steps.add_parser("retire-intermediate", help="forget a staged intermediate once its certificates expired")
    p.add_argument("--dir", required=True, type=Path, help="the authority's folder (config.json)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--cert", type=Path, help="the intermediate certificate (PEM)")
    which.add_argument("--fingerprint", help="its SHA-256 fingerprint (hex)")
    p.set_defaults(func=lambda a: _guard("retire-intermediate", a, _retire))

    p = steps.add_parser("intermediates", help="list the intermediate generations and which one issues now")
    p.add_argument("--dir", required=True, type=Path, help="the authority's folder (config.json)")
    p.set_defaults(func=lambda a: _guard("intermediates", a, _list))

    p = steps.add_parser("revoke-intermediate", help="add an intermediate to the root's ARL and publish it")
    p.add_argument("--root-kms", required=True, metavar="URI", help="the root key")
    p.add_argument("--root", required=True, type=Path, help="the root certificate (PEM)")
    p.add_argument("--cert", type=Path, help="the intermediate to revoke (PEM); without it, re-sign the ARL")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--blobs", help="where CRLs are published (file:/abs/dir or gs://bucket[/prefix])")
    where.add_argument("--dir", type=Path, help="an authority's folder: its configured blob store")
    p.add_argument("--reason", choices=sorted(_REASONS), default="unspecified", help="CRLReason (RFC 5280)")
    p.add_argument("--days", type=int, default=365, help="ARL validity in days (default 365)")
    key_options(p)
    p.set_defaults(func=lambda a: _guard("revoke-intermediate", a, _revoke))


def stage_options(p: argparse.ArgumentParser) -> None:
    """What staging takes (shared with `cirrus ca install --stage`)."""
    p.add_argument("--dir", required=True, type=Path, help="the authority's folder (config.json)")
    p.add_argument("--cert", required=True, type=Path, help="the intermediate certificate (PEM)")
    p.add_argument("--kms", required=True, metavar="URI", help="the intermediate's key URI")
    p.add_argument("--chain", type=Path, help="certificates between it and the root, issuer order (PEM)")
    p.add_argument("--not-before", help="switch to it at this time (RFC 3339); default: at `cirrus ca activate`")
    p.add_argument("--password-file", type=Path, help="password of a softkms key (default: the authority's)")


def _parse_time(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CeremonyError(f"{value!r}: not an RFC 3339 time (e.g. 2026-12-08T00:00:00Z)") from exc
    if parsed.tzinfo is None:
        raise CeremonyError(f"{value!r}: the time needs a UTC offset (Z or +hh:mm)")
    return parsed.astimezone(dt.UTC)


def _authority(directory: Path) -> Any:
    from shared.cli.errors import CLIError
    from shared.cli.folder import load_settings

    try:
        return load_settings(directory)
    except CLIError as exc:
        raise CeremonyError(str(exc)) from exc


def run_stage(a: argparse.Namespace) -> int:
    """Check the intermediate (its key, its chain to the root) and add it to the rotation record."""
    from shared.rotation_record import fingerprint, stage

    settings = _authority(a.dir)
    cert = _read_pem_certs(a.cert)[0]
    chain = _read_pem_certs(a.chain) if a.chain else []
    not_before = _parse_time(a.not_before)
    roots = [c for path in settings.roots for c in _read_pem_certs(path)]
    if cert.issuer == cert.subject or cert in roots:
        raise CeremonyError("that certificate is a root, not an intermediate")
    if not any(_reaches(cert, chain, root) for root in roots):
        raise CeremonyError("the intermediate does not chain to the authority's root")
    uri = a.kms
    if uri.startswith("softkms:path=") and not uri.startswith("softkms:path=/"):
        uri = "softkms:path=" + str(settings.base_dir / uri.removeprefix("softkms:path="))
    password = a.password_file or settings.password_file
    signer = _keys(password if password is not None and password.exists() else None).signer(uri)
    if signer.public_key() != cert.public_key():
        raise CeremonyError("the key at the URI is not the one the certificate certifies")
    services = _services(settings)
    try:
        added = stage(services.store, settings.authority_id, chain=[cert, *chain], key_uri=uri,
                      not_before=not_before)  # fmt: skip
        _mirror(services)
    finally:
        services.close()
    fp = fingerprint(cert)
    print(f"{'staged' if added else 'already staged'}: {cert.subject.rfc4514_string()} (fingerprint {fp})")
    when = f"from {not_before.isoformat()}" if not_before else f"after `cirrus ca activate --fingerprint {fp}`"
    print(f"it issues {when}; running instances switch within seconds")
    return 0


def _reaches(cert: x509.Certificate, chain: list[x509.Certificate], root: x509.Certificate) -> bool:
    try:
        verify_chain(cert, chain, root)
    except CeremonyError:
        return False
    return True


def _fingerprint_arg(a: argparse.Namespace) -> str:
    from shared.rotation_record import fingerprint

    fp = fingerprint(_read_pem_certs(a.cert)[0]) if a.cert else (a.fingerprint or "").lower()
    if len(fp) != 64 or any(ch not in "0123456789abcdef" for ch in fp):
        raise CeremonyError("--fingerprint: expected 64 hex digits (SHA-256)")
    return fp


def _retire(a: argparse.Namespace) -> int:
    from shared.rotation_record import choose_active, retire

    settings = _authority(a.dir)
    fp = _fingerprint_arg(a)
    services = _services(settings)
    try:
        generations = services.rotating.rotation.generations()
        now = services.clock.now()
        found = next((g for g in generations if g.fingerprint == fp), None)
        if found is not None and found.base:
            raise CeremonyError("that is the configured intermediate (crt/key); `cirrus ca install` replaces it")
        if found is not None and choose_active(generations, now) is found:
            raise CeremonyError("that intermediate issues now: activate another one first")
        if not retire(services.store, settings.authority_id, fp=fp):
            raise CeremonyError("no such staged intermediate (one in config.json's intermediates is removed there)")
        _mirror(services)
        if found is not None and found.certificate.not_valid_after_utc > now:
            print(f"note: it is valid until {found.certificate.not_valid_after_utc.isoformat()}; certificates it "
                  "signed get no new CRL or OCSP answers from now on")  # fmt: skip
    finally:
        services.close()
    print(f"retired {fp[:16]}...")
    return 0


def _activate(a: argparse.Namespace) -> int:
    from shared.rotation_record import activate

    settings = _authority(a.dir)
    fp = _fingerprint_arg(a)
    at = _parse_time(a.at) or SystemClock().now()
    services = _services(settings)
    try:
        known = {g.fingerprint for g in services.rotating.rotation.generations()}
        if fp not in known:
            raise CeremonyError("no such intermediate: stage it first (`cirrus ca stage-intermediate`)")
        activate(services.store, settings.authority_id, fp=fp, at=at)
        _mirror(services)
    finally:
        services.close()
    print(f"activated {fp[:16]}... from {at.isoformat()}")
    return 0


def _mirror(services: Any) -> None:
    """Copy the record to the bucket for OCSP responders now (the next CRL publication would too)."""
    from shared.errors import ConfigError
    from shared.validation.rotation_mirror import mirror_rotation_record

    try:
        mirror_rotation_record(services)
    except (BackendError, ConfigError, OSError) as exc:
        print(f"note: the bucket copy for OCSP responders is updated at the next CRL publication ({exc})")


def _services(settings: Any) -> Any:
    from shared.runtime import build_services

    services = build_services(settings)
    if services.rotating is None:
        services.close()
        raise CeremonyError("this authority has no intermediate of its own (registration authority or issuer link)")
    return services


def _list(a: argparse.Namespace) -> int:
    from shared.rotation_record import choose_active

    settings = _authority(a.dir)
    services = _services(settings)
    try:
        now = services.clock.now()
        generations = services.rotating.rotation.generations()
        active = choose_active(generations, now)
        for gen in generations:
            mark = "*" if gen is active else " "
            since = gen.switch_time(now)
            state = "base" if gen.base else (f"since {since.isoformat()}" if since else "staged")
            if gen.not_before is not None and gen.not_before > now:
                state += f", scheduled {gen.not_before.isoformat()}"
            print(f"{mark} {gen.fingerprint}  {gen.certificate.subject.rfc4514_string()}  crl {gen.crl_id}  {state}")
    finally:
        services.close()
    return 0


def _revoke(a: argparse.Namespace) -> int:
    from shared.blobs.open import open_blobs
    from shared.intermediate_revocation import RevocationCeremonyError, revoke_intermediate

    root = _read_pem_certs(a.root)[0]
    inter = _read_pem_certs(a.cert)[0] if a.cert else None
    if not 1 <= a.days <= 3650:
        raise CeremonyError("--days must be between 1 and 3650")
    blobs_url = a.blobs if a.blobs else _authority(a.dir).blobs
    signer = _keys(a.password_file).signer(a.root_kms)
    if signer.public_key() != root.public_key():  # the inputs first, then the deployment
        raise CeremonyError("the root key does not match the root certificate")
    if a.dir and inter is not None:
        _refuse_if_issuing(_authority(a.dir), inter)
    try:
        published = revoke_intermediate(root_signer=signer, root=root, intermediate=inter, blobs=open_blobs(blobs_url),
                                        now=SystemClock().now(), reason_code=_REASONS[a.reason],
                                        validity=dt.timedelta(days=a.days))  # fmt: skip
    except (RevocationCeremonyError, BackendError) as exc:
        raise CeremonyError(str(exc)) from exc
    what = f"revoked intermediate {inter.serial_number}" if inter else "re-signed"
    print(f"{what}: {published.blob_name} (cRLNumber {published.number}, {len(published.revoked_serials)} listed)")
    return 0


def _refuse_if_issuing(settings: Any, intermediate: x509.Certificate) -> None:
    """Refuse to revoke an intermediate that signs now (the default's active generation or a further
    authority's certificate): its authority would stop issuing (503) until a successor is activated.

    Only `--dir` gives the command the deployment to check; with `--blobs` alone the
    online check (`Authority` refuses to sign under a listed intermediate) is what protects.
    """
    from shared.rotation_record import fingerprint

    fp = fingerprint(intermediate)
    for entry in settings.authorities:  # further authorities have one intermediate each, no rotation
        if any(fingerprint(c) == fp for c in _read_pem_certs(entry.chain)[:1]):
            raise CeremonyError(f"authority {entry.name!r} issues with that intermediate: give it a new one "
                                "in config.json's authorities first, then revoke this one")  # fmt: skip
    from shared.runtime import build_services

    services = build_services(settings)
    try:
        active = services.rotating.rotation.active() if services.rotating is not None else None
    finally:
        services.close()
    if active is not None and active.fingerprint == fp:
        raise CeremonyError("that intermediate issues now: stage and activate its successor first "
                            "(`cirrus ca stage-intermediate`, then `cirrus ca activate`), then revoke it")  # fmt: skip

# The ceremony steps' helpers (one clear line per mistake, PEM reading, key managers) live in
# shared.cli.ca, which imports this module; these reach them at call time.
def _guard(step: str, args: argparse.Namespace, action: Any) -> int:
    from shared.cli import ca

    return ca._guard(step, args, action)


def _read_pem_certs(path: Path) -> list[x509.Certificate]:
    from shared.cli import ca

    return ca._read_pem_certs(path)


def _keys(password_file: Path | None) -> Any:
    from shared.cli import ca

    return ca._keys(password_file)
