"""The generations of an authority's intermediate: what one is, when it issues, where they are recorded.

`shared.rotation` explains the rules and keeps the running view; this module
holds the plain parts: `Generation`, the switch rule (`choose_active`), the
config's `intermediates` list, and the store document `intermediates/<authority
id>` that `cirrus ca stage-intermediate`, `activate` and `retire-intermediate`
change with compare-and-set (so two operators never lose each other's change).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.errors import BackendError, ConfigError

COLLECTION = "intermediates"
DEFAULT_RECHECK = 5.0  # seconds between reads of the store document, per instance
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class Documents(Protocol):
    """The store's versioned documents (`shared.store.base.DocumentStore`), as much as rotation uses."""

    def create_document(self, collection: str, doc_id: str, data: dict[str, Any], *,
                        expires_at: dt.datetime | None = None) -> bool: ...  # fmt: skip

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None: ...

    def update_document(self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int,
                        expires_at: dt.datetime | None = None) -> bool: ...  # fmt: skip


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 of the certificate's DER, hex: how generations are named and activated."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True, slots=True)
class Generation:
    """One intermediate an authority may issue with.

    `chain` is the intermediate and any certificates above it up to (not
    including) the root: exactly what `certChain` carries for its leaves.
    """

    chain: tuple[x509.Certificate, ...]
    key_uri: str
    crl_id: str
    not_before: dt.datetime | None = None  # scheduled switch time; None: only by activation
    activations: tuple[dt.datetime, ...] = ()
    base: bool = False
    fingerprint: str = field(init=False)  # SHA-256 hex of the intermediate, computed once (a per-request key)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", fingerprint(self.chain[0]))

    @property
    def certificate(self) -> x509.Certificate:
        """The intermediate itself."""
        return self.chain[0]

    def switch_time(self, now: dt.datetime) -> dt.datetime | None:
        """When this generation last became the one to issue with (None: not yet)."""
        base = (_EPOCH,) if self.base else ()
        times = [t for t in (*base, self.not_before, *self.activations) if t is not None and t <= now]
        return max(times) if times else None


def generation_crl_id(authority_id: str, certificate: x509.Certificate) -> str:
    """A staged generation's CRL id: fixed by its certificate, so it never changes under its leaves."""
    return f"{authority_id}-{fingerprint(certificate)[:16]}"


def choose_active(generations: Sequence[Generation], now: dt.datetime) -> Generation:
    """The generation to issue with at `now` (see the module docstring)."""
    best: Generation | None = None
    best_time: dt.datetime | None = None
    for gen in generations:
        at = gen.switch_time(now)
        if at is not None and (best_time is None or at >= best_time):
            best, best_time = gen, at
    if best is None:
        raise ConfigError("no intermediate is active")
    return best


# ------------------------------------------------------------------ the store document
def _parse_time(value: object, what: str) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{what}: expected an RFC 3339 time")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"{what}: expected an RFC 3339 time") from exc
    if parsed.tzinfo is None:
        raise ConfigError(f"{what}: the time needs a UTC offset")
    return parsed.astimezone(dt.UTC)


def _load_chain(pem: bytes, what: str) -> tuple[x509.Certificate, ...]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ConfigError(f"{what}: not PEM certificates") from exc
    if not certs:
        raise ConfigError(f"{what}: no certificate")
    return tuple(certs)


def config_generations(raw: object, *, base_dir: Path, authority_id: str) -> list[Generation]:
    """The config's `intermediates` list: `[{"crt": path, "key": uri, "notBefore": time}]`.

    Raises:
        ConfigError: not a list of such objects, or a file that cannot be read.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("config: intermediates must be a list")
    out = []
    for i, entry in enumerate(raw):
        what = f"config: intermediates[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("crt"), str) or not isinstance(
            entry.get("key"), str
        ):
            raise ConfigError(f"{what}: needs crt (a path) and key (a key URI)")
        path = base_dir / entry["crt"]
        try:
            chain = _load_chain(path.read_bytes(), what)
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {path}") from exc
        out.append(Generation(chain=chain, key_uri=entry["key"], crl_id=generation_crl_id(authority_id, chain[0]),
                              not_before=_parse_time(entry.get("notBefore"), f"{what}.notBefore")))  # fmt: skip
    return out


def rotation_recheck(raw: object) -> float:
    """`rotation.recheck` (a duration, default 5s): how stale an instance's view of the active intermediate may be.

    Why configurable: each recheck is one store read per instance; a deployment with many
    instances may trade a slower switch for fewer reads.
    """
    from shared.durations import parse_duration

    if raw is None:
        return DEFAULT_RECHECK
    if not isinstance(raw, dict) or set(raw) - {"recheck"}:
        raise ConfigError('config: rotation must be {"recheck": "<duration>"}')
    value = raw.get("recheck", "5s")
    if not isinstance(value, str):
        raise ConfigError('config: rotation.recheck must be a duration such as "5s"')
    try:
        seconds = parse_duration(value).total_seconds()
    except ValueError as exc:
        raise ConfigError(f"config: rotation.recheck: {exc}") from exc
    if not 0 < seconds <= 3600:
        raise ConfigError("config: rotation.recheck must be between 1ms and 1h")
    return seconds


def stored_generations(data: Mapping[str, Any], authority_id: str) -> list[Generation]:
    """The generations staged in the store document (malformed entries raise ConfigError)."""
    staged = data.get("staged")
    activations = data.get("activations")
    if not isinstance(staged, list) or not isinstance(activations, Mapping):
        raise ConfigError(f"{COLLECTION}/{authority_id}: malformed rotation record")
    out = []
    for entry in staged:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("chain"), str) or not isinstance(
            entry.get("key"), str
        ):
            raise ConfigError(f"{COLLECTION}/{authority_id}: malformed staged intermediate")
        chain = _load_chain(entry["chain"].encode(), "staged intermediate")
        not_before = _parse_time(entry.get("notBefore"), "staged intermediate notBefore")
        crl_id = generation_crl_id(authority_id, chain[0])
        out.append(Generation(chain=chain, key_uri=entry["key"], crl_id=crl_id, not_before=not_before))
    return out


def recorded_activations(data: Mapping[str, Any] | None) -> dict[str, tuple[dt.datetime, ...]]:
    """Fingerprint -> the times `cirrus ca activate` recorded for it."""
    if data is None:
        return {}
    found = data.get("activations")
    if not isinstance(found, Mapping):
        return {}
    out: dict[str, tuple[dt.datetime, ...]] = {}
    for fp, times in found.items():
        if isinstance(times, list):
            parsed = (_parse_time(t, "activation time") for t in times)
            out[str(fp)] = tuple(t for t in parsed if t is not None)
    return out


def stage(documents: Documents, authority_id: str, *, chain: Sequence[x509.Certificate], key_uri: str,
          not_before: dt.datetime | None) -> bool:  # fmt: skip
    """Add a generation to the store document; False if it was already staged.

    Compare-and-set on the document's version, retried, so two operators never lose each other's change.
    """
    entry = {
        "chain": "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain),
        "key": key_uri,
        "notBefore": not_before.isoformat() if not_before is not None else None,
    }
    fp = fingerprint(chain[0])

    def change(data: dict[str, Any]) -> bool:
        staged = data.setdefault("staged", [])
        for existing in staged:
            if fingerprint(_load_chain(existing["chain"].encode(), "staged")[0]) == fp:
                return False
        staged.append(entry)
        return True

    return _update(documents, authority_id, change)


def activate(documents: Documents, authority_id: str, *, fp: str, at: dt.datetime) -> None:
    """Record that generation `fp` issues from `at` on (the base is activated by its fingerprint too)."""

    def change(data: dict[str, Any]) -> bool:
        times = data.setdefault("activations", {}).setdefault(fp, [])
        times.append(at.isoformat())
        return True

    _update(documents, authority_id, change)


def retire(documents: Documents, authority_id: str, *, fp: str) -> bool:
    """Remove a staged generation and its activations; False if it was not staged."""

    def change(data: dict[str, Any]) -> bool:
        staged = data.get("staged", [])
        kept = [e for e in staged if fingerprint(_load_chain(e["chain"].encode(), "staged")[0]) != fp]
        if len(kept) == len(staged):
            return False
        data["staged"] = kept
        data.get("activations", {}).pop(fp, None)
        return True

    return _update(documents, authority_id, change)


def _update(documents: Documents, authority_id: str, change: Callable[[dict[str, Any]], bool]) -> bool:
    for _ in range(16):
        found = documents.get_document(COLLECTION, authority_id)
        if found is None:
            data: dict[str, Any] = {"staged": [], "activations": {}}
            if not change(data):
                return False
            if documents.create_document(COLLECTION, authority_id, data):
                return True
            continue
        data, version = found
        data.setdefault("staged", [])
        data.setdefault("activations", {})
        if not change(data):
            return False
        if documents.update_document(COLLECTION, authority_id, data, expected_version=version):
            return True
    raise BackendError("the rotation record kept changing; try again", transient=True)
