"""Intermediate rotation: several generations of one authority's intermediate, one active.

A deployment issues with its configured intermediate (`crt` / `key`, the
*base* generation) until another generation takes over. Generations are
staged in two places, read together:

- the store document `intermediates/<authority id>` (what `cirrus ca
  stage-intermediate` and `cirrus ca activate` write): every instance of every
  function reads the same one, so a running `cirrus up` and Cloud Function
  instances switch without a restart or redeploy;
- the config's `intermediates` list (`{"crt", "key", "notBefore"}` entries),
  for deployments that stage through their configuration.

Which generation is active at `now`: each generation's switch time is the
latest of its `notBefore` and its explicit activations that are not in the
future; the generation with the latest switch time wins (the base's is the
beginning of time). So a scheduled switch happens on its own, `cirrus ca
activate` switches at once, and activating the previous generation again is
a rollback.

Why no failed request: the state is re-read at most every `recheck` seconds
(monotonic clock) by one thread while the others keep using the current
snapshot; each generation's `Authority` (its key opened once) is cached, and
a request uses one `Authority` from start to end, so its certificate and its
`certChain` are always the same generation's. A store read that fails keeps
the last snapshot (logged) instead of failing issuance.

CRLs: one CRL per signing intermediate. The base keeps the authority's CRL
(`crl/<authority id>.crl`, the distribution point its certificates carry);
each staged generation has its own id (`<authority id>-<16 hex digits of its
fingerprint>`), which its certificates name and its own key signs, so
`openssl verify -crl_check` finds, for every certificate, a CRL signed by the
key that signed the certificate, and the old key keeps signing its CRL until
its generation is removed (after its last certificate expired). Why not one
CRL signed by the newest key: a CRL must be signed by the certificate's
issuer (or be an indirect CRL, which few relying parties support). Revocations
are stored per authority, not per intermediate, so each generation's CRL
lists every revoked serial of the authority; serials are random 128-bit
numbers, so a relying party never matches another generation's entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.errors import BackendError, ConfigError

COLLECTION = "intermediates"
DEFAULT_RECHECK = 5.0  # seconds between reads of the store document, per instance
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_log = logging.getLogger(__name__)


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


def _stored_generations(data: Mapping[str, Any], authority_id: str) -> list[Generation]:
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


def _activations(data: Mapping[str, Any] | None) -> dict[str, tuple[dt.datetime, ...]]:
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


# ------------------------------------------------------------------ the running view
@dataclass
class _Snapshot:
    generations: list[Generation]
    read_at: float


@dataclass
class IntermediateRotation:
    """Which generation issues now, re-read from the store at most every `recheck` seconds.

    `build` turns a generation into its issuing object (an `Authority` in the
    runtime); it is called once per generation and instance. `verify` checks a
    staged chain before it is ever used (it must reach a configured root).
    """

    authority_id: str
    base: Generation
    documents: Documents
    clock_now: Callable[[], dt.datetime]
    configured: Sequence[Generation] = ()
    verify: Callable[[Generation], None] | None = None
    recheck: float = DEFAULT_RECHECK
    monotonic: Callable[[], float] = time.monotonic
    _snapshot: _Snapshot | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _refreshing: bool = False
    _memo: tuple[list[Generation], dt.datetime, dt.datetime, Generation] | None = None

    def generations(self) -> list[Generation]:
        """Every known generation (base first), refreshed when the snapshot is older than `recheck`."""
        snap = self._snapshot
        now = self.monotonic()
        if snap is not None and now - snap.read_at < self.recheck:
            return snap.generations
        with self._lock:
            snap = self._snapshot
            if snap is not None and (self._refreshing or now - snap.read_at < self.recheck):
                return snap.generations  # another thread reads; this request keeps the current one
            self._refreshing = True
        try:
            generations = self._read()
        except (BackendError, ConfigError) as exc:
            if snap is None:
                raise
            _log.warning("rotation record not readable (%s); issuing with the last known intermediate", exc)
            generations = snap.generations
        finally:
            with self._lock:
                self._refreshing = False
        self._snapshot = _Snapshot(generations, now)
        return generations

    def active(self) -> Generation:
        """The generation to issue with now.

        The choice is kept until the snapshot changes or the next switch time comes (it
        is asked for on every request).
        """
        generations = self.generations()
        now = self.clock_now()
        memo = self._memo
        if memo is not None and memo[0] is generations and memo[1] <= now < memo[2]:
            return memo[3]
        chosen = choose_active(generations, now)
        upcoming = [t for g in generations for t in (g.not_before, *g.activations) if t is not None and t > now]
        self._memo = (generations, now, min(upcoming) if upcoming else dt.datetime.max.replace(tzinfo=dt.UTC), chosen)
        return chosen

    def issuer_of(self, certificate: x509.Certificate) -> Generation | None:
        """The known generation whose key signed `certificate`, if any."""
        for gen in self.generations():
            if gen.certificate.subject != certificate.issuer:
                continue
            try:
                certificate.verify_directly_issued_by(gen.certificate)
            except Exception:  # noqa: S112 - any failure means "not this generation"
                continue
            return gen
        return None

    def _read(self) -> list[Generation]:
        found = self.documents.get_document(COLLECTION, self.authority_id)
        data = found[0] if found is not None else None
        staged = _stored_generations(data, self.authority_id) if data is not None else []
        activations = _activations(data)
        known: dict[str, Generation] = {}
        for gen in (self.base, *self.configured, *staged):
            if gen.fingerprint in known:
                continue
            if not gen.base and self.verify is not None:
                try:
                    self.verify(gen)
                except ConfigError as exc:
                    _log.warning("staged intermediate %s ignored: %s", gen.fingerprint[:16], exc)
                    continue
            known[gen.fingerprint] = gen
        out = []
        for fp, gen in known.items():
            acts = activations.get(fp, ())
            out.append(Generation(chain=gen.chain, key_uri=gen.key_uri, crl_id=gen.crl_id, not_before=gen.not_before,
                                  activations=acts, base=gen.base))  # fmt: skip
        return out


T = TypeVar("T")


class RotatingIssuer(Generic[T]):
    """The active generation's issuing object, each built once (its key opened once) per instance."""

    def __init__(self, rotation: IntermediateRotation, build: Callable[[Generation], T]) -> None:
        self.rotation = rotation
        self._build = build
        self._built: dict[str, T] = {}
        self._last: T | None = None
        self._lock = threading.Lock()

    @property
    def opened(self) -> list[str]:
        """Fingerprints of the generations whose issuing object (and key) this instance has built."""
        return list(self._built)

    def current(self) -> T:
        """The issuing object of the generation active now.

        If that generation cannot be built here (its key cannot be opened: a missing
        permission on the new KMS key, say), issuance stays with the last generation
        that worked and the failure is logged at each attempt, rather than every
        request failing from the switch on.
        """
        gen = self.rotation.active()
        try:
            built = self.for_generation(gen)
        except (ConfigError, BackendError) as exc:
            last = self._last
            if last is None:
                raise
            _log.error("intermediate %s cannot issue here (%s); staying with the previous one", gen.crl_id, exc)
            return last
        self._last = built
        return built

    def for_generation(self, gen: Generation) -> T:
        """The issuing object of `gen` (built on first use)."""
        built = self._built.get(gen.fingerprint)
        if built is not None:
            return built
        with self._lock:
            built = self._built.get(gen.fingerprint)
            if built is None:
                built = self._built[gen.fingerprint] = self._build(gen)
        return built


class RevokedCheck(Protocol):
    """`shared.intermediate_revocation.RevokedIntermediates`, as the renewal check uses it."""

    def is_revoked(self, intermediate: x509.Certificate) -> bool: ...


def issuer_revoked(
    rotation: IntermediateRotation, revoked: Callable[[], RevokedCheck]
) -> Callable[[x509.Certificate], bool]:
    """A check for `Authority`: was the certificate signed by a generation the root's ARL lists?

    `revoked` is called on first use (it opens the blob store).
    """
    opened: list[RevokedCheck] = []

    def check(certificate: x509.Certificate) -> bool:
        if not opened:
            opened.append(revoked())
        arl = opened[0]
        if not any(arl.is_revoked(g.certificate) for g in rotation.generations()):
            return False  # the usual case: nothing revoked, no signature to check
        gen = rotation.issuer_of(certificate)
        return gen is not None and arl.is_revoked(gen.certificate)

    return check
