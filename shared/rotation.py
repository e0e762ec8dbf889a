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
the last snapshot (logged) instead of failing issuance, and a generation whose
key cannot be opened here leaves issuance with the previous one (logged).
Why not re-read the config file instead: Cloud Function instances cannot see
a changed file without a redeploy; the store is what they all share.

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
OCSP follows the same split (`shared.validation.generations`): each
generation's answers are signed by its own key or by a delegated responder
certificate that generation issued.

Revoking an intermediate is `shared.intermediate_revocation` (the root's ARL);
`issuer_revoked` below is the check `Authority` runs before a renewal.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from cryptography import x509

from shared.errors import BackendError, ConfigError
from shared.rotation_record import (
    COLLECTION,
    DEFAULT_RECHECK,
    Documents,
    Generation,
    choose_active,
    recorded_activations,
    stored_generations,
)

_log = logging.getLogger(__name__)


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
        staged = stored_generations(data, self.authority_id) if data is not None else []
        activations = recorded_activations(data)
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


def chain_verifier(roots: Sequence[x509.Certificate]) -> Callable[[Generation], None]:
    """`IntermediateRotation.verify`: a staged chain is used only if it reaches one of `roots`."""

    def verify(gen: Generation) -> None:
        from shared.ceremony import CeremonyError, verify_chain

        if gen.certificate.issuer == gen.certificate.subject:
            raise ConfigError("a self-signed certificate is a root, not an intermediate")
        for root in roots:
            try:
                verify_chain(gen.chain[0], gen.chain[1:], root)
            except CeremonyError:
                continue
            return
        raise ConfigError("the intermediate does not chain to a configured root")

    return verify


T = TypeVar("T")


class RotatingIssuer(Generic[T]):
    """The active generation's issuing object, each built once (its key opened once) per instance."""

    def __init__(self, rotation: IntermediateRotation, build: Callable[[Generation], T]) -> None:
        self.rotation = rotation
        self._build = build
        self._built: dict[str, T] = {}
        self._last: T | None = None
        self._lock = threading.Lock()
        # The roots' ARLs as this instance sees them (`opened_once`): further authorities share it.
        self.revoked_view: Callable[[], RevokedCheck] | None = None

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


def opened_once(revoked: Callable[[], RevokedCheck]) -> Callable[[], RevokedCheck]:
    """`revoked()` called on first use only (it opens the blob store), then the same view.

    Both checks below share one view per instance, so the ARL is read once per recheck.
    """
    opened: list[RevokedCheck] = []
    lock = threading.Lock()

    def get() -> RevokedCheck:
        if not opened:
            with lock:
                if not opened:
                    opened.append(revoked())
        return opened[0]

    return get


def intermediate_revoked(view: Callable[[], RevokedCheck]) -> Callable[[x509.Certificate], bool]:
    """A check for `Authority` before it signs: does a root's ARL list this intermediate?

    Asked on every issuance: the view answers from memory and re-reads the ARL
    at most every 30 s per instance (`RevokedIntermediates`). `view` is an
    `opened_once` getter.
    """

    def check(intermediate: x509.Certificate) -> bool:
        return view().is_revoked(intermediate)

    return check


def issuer_revoked(
    rotation: IntermediateRotation, view: Callable[[], RevokedCheck]
) -> Callable[[x509.Certificate], bool]:
    """A check for `Authority`: was the certificate signed by a generation the root's ARL lists?

    `view` is an `opened_once` getter (the blob store is opened on first use).
    """

    def check(certificate: x509.Certificate) -> bool:
        arl = view()
        if not any(arl.is_revoked(g.certificate) for g in rotation.generations()):
            return False  # the usual case: nothing revoked, no signature to check
        gen = rotation.issuer_of(certificate)
        return gen is not None and arl.is_revoked(gen.certificate)

    return check
