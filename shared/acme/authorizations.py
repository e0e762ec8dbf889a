"""Authorizations and challenge answers (RFC 8555 s.7.5, ACME-08..10).

An authorization lives inside its order (id `{order id}.{n}`, see
`shared.acme.orders`), or in its own `acme_authzs` document for orders written
before that layout. Answering a challenge validates it before the answer
(Cloud Functions, tests) or right after it behind `cirrus up`, on the ACME
layer's own validation threads (`shared.acme.validations`); either way the
result moves the challenge, the authorization and the order in one
compare-and-set.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.acme import jws
from shared.acme.challenges import validator_for
from shared.acme.context import Ctx, Reply, Services, Verified
from shared.acme.identifiers import Identifier
from shared.acme.nonces import PendingNonce
from shared.acme.orders import Found, authz_status, settle_order
from shared.acme.problems import ACMEProblem
from shared.acme.repo import AUTHZS, ORDERS, parse_ts, ts

log = logging.getLogger(__name__)

#: Compare-and-set attempts for a change to an order's embedded authorization:
#: clients may answer several challenges of one order at once, and every
#: answer rewrites the same document (validation runs before, so a retry is
#: only a re-read).
_AUTHZ_ATTEMPTS = 32


@dataclass(frozen=True, slots=True)
class _AuthzRef:
    """Where an authorization lives: inside its order (`index`) or in its own older-layout document."""

    collection: str
    doc_id: str
    index: int | None

    def pick(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The authorization inside `doc` (the document itself for the older layout)."""
        return doc if self.index is None else dict(doc["authzs"][self.index])

    def change(
        self,
        svc: Services,
        found: Found,
        edit: Callable[[dict[str, Any]], bool],
        *,
        nonce: PendingNonce | None = None,
    ) -> dict[str, Any]:
        """Apply `edit(authz) -> bool` (False: leave it) by compare-and-set; return the stored authorization.

        For an embedded authorization the order's status follows in the same write,
        and `nonce` (if given) is spent by it.
        """

        def apply(cur: dict[str, Any]) -> dict[str, Any] | None:
            if self.index is None:
                return cur if edit(cur) else None
            authzs = list(cur["authzs"])
            authz = dict(authzs[self.index])
            if not edit(authz):
                return None
            authzs[self.index] = authz
            cur["authzs"] = authzs
            settle_order(svc, cur)
            return cur

        stored = svc.repo.mutate_versioned(
            self.collection, self.doc_id, apply, current=found, attempts=_AUTHZ_ATTEMPTS, nonce=nonce
        )
        return self.pick(stored[0] if stored else found[0])


def authz_ref(authz_id: str) -> _AuthzRef:
    """Where the authorization `authz_id` is stored."""
    order_id, dot, n = authz_id.rpartition(".")
    if dot and order_id and n.isdigit() and len(n) <= 3 and str(int(n)) == n:  # one URL per authorization
        return _AuthzRef(ORDERS, order_id, int(n))
    return _AuthzRef(AUTHZS, authz_id, None)


def _load_authz(svc: Services, ctx: Ctx, v: Verified, authz_id: str) -> tuple[_AuthzRef, Found, dict[str, Any]]:
    ref = authz_ref(authz_id)
    found = v.read(svc.repo, ref.collection, ref.doc_id)
    d = found[0] if found else None
    if (
        found is None
        or d is None
        or d.get("accountId") != v.account_id
        or d.get("provisioner") != ctx.prov.name
        or (ref.index is not None and ref.index >= len(d.get("authzs") or ()))
    ):
        raise ACMEProblem("malformed", "authorization not found", status=404)
    return ref, found, ref.pick(d)


def _challenge_json(ctx: Ctx, authz_id: str, token: str, ch: dict[str, Any]) -> dict[str, Any]:
    out = {
        "type": ch["type"],
        "url": ctx.url("challenge", authz_id, ch["id"]),
        "status": ch["status"],
        "token": token,
    }
    if ch.get("validated"):
        out["validated"] = ch["validated"]
    if ch.get("error"):
        out["error"] = ch["error"]
    return out


def authz_json(svc: Services, ctx: Ctx, authz_id: str, d: dict[str, Any]) -> dict[str, Any]:
    """The authorization object (RFC 8555 s.7.1.4)."""
    status = authz_status(svc, d)
    chals = d["challenges"]
    if status == "valid":
        chals = [c for c in chals if c["status"] == "valid"]
    out: dict[str, Any] = {
        "identifier": d["identifier"],
        "status": status,
        "expires": d["expires"],
        "challenges": [_challenge_json(ctx, authz_id, d["token"], c) for c in chals],
    }
    if d.get("wildcard"):
        out["wildcard"] = True
    return out


def get_authz(svc: Services, ctx: Ctx, v: Verified, authz_id: str) -> Reply:
    """POST-as-GET an authorization, or deactivate it (RFC 8555 s.7.5.2)."""
    ref, found, d = _load_authz(svc, ctx, v, authz_id)
    if not v.jws.is_post_as_get:
        payload = v.jws.json_payload()
        if payload.get("status") != "deactivated":
            raise ACMEProblem("malformed", "only status deactivated may be posted")

        def deactivate(cur: dict[str, Any]) -> bool:
            if cur["status"] not in ("pending", "valid"):
                raise ACMEProblem("malformed", f"authorization is {cur['status']}")
            cur["status"] = "deactivated"
            return True

        d = ref.change(svc, found, deactivate)
    body = authz_json(svc, ctx, authz_id, d)
    busy = body["status"] == "pending" and any(c["status"] == "processing" for c in body["challenges"])
    return Reply(200, body, {"Retry-After": "1"} if busy else {})


def key_authorization(token: str, jwk: dict[str, Any]) -> str:
    """token "." thumbprint (ACME-08)."""
    return f"{token}.{jws.thumbprint(jwk)}"


def _stale_after(ctx: Ctx) -> dt.timedelta:
    """How long a challenge may stay `processing` before a new answer may start it again.

    A validation ends by its total deadline once it runs, and may first wait its
    account's turn; a challenge still `processing` well past that lost its
    validation (the worker stopped). Starting a merely slow one again is
    harmless: whichever run finishes first is recorded, the other finds the
    challenge no longer `processing` and records nothing.
    """
    return dt.timedelta(seconds=ctx.prov.validation_deadline * 4 + 30)


def _validate(ctx: Ctx, d: dict[str, Any], ch: dict[str, Any], jwk: dict[str, Any]) -> dict[str, Any] | None:
    """Run the challenge's validator; the problem document if it failed, None if it passed."""
    ident = Identifier(d["identifier"]["type"], d["identifier"]["value"])
    try:
        validator_for(ch["type"])(ident, d["token"], key_authorization(d["token"], jwk), ctx.prov)
    except ACMEProblem as p:
        p.identifier = ident.to_json()
        return p.to_json()
    except (OSError, ValueError) as exc:  # anything the network can throw at a validator
        problem = ACMEProblem("connection", f"validation failed: {type(exc).__name__}", identifier=ident.to_json())
        return problem.to_json()
    return None


def _recorder(svc: Services, ch_id: str, error: dict[str, Any] | None, *, was: str) -> Callable[[dict[str, Any]], bool]:
    """An edit that moves challenge `ch_id` (still in state `was`) and its authorization to the result."""
    now = ts(svc.clock.now())

    def record(cur: dict[str, Any]) -> bool:
        if cur["status"] != "pending":
            return False
        chals = []
        for c in cur["challenges"]:
            if c["id"] == ch_id:
                if c["status"] != was:
                    return False
                c = {
                    **{k: v for k, v in c.items() if k != "processingSince"},
                    "status": "invalid" if error else "valid",
                    "error": error,
                    "validated": None if error else now,
                }
            chals.append(c)
        cur["challenges"] = chals
        cur["status"] = "invalid" if error else "valid"
        return True

    return record


def respond_challenge(svc: Services, ctx: Ctx, v: Verified, authz_id: str, ch_id: str) -> Reply:
    """Answer a challenge: validate it now (step-ca's model), or after the answer where the server can.

    Behind `cirrus up` (`ctx.after_response`), the challenge moves to
    `processing` in one write (which also spends the request's nonce), the
    answer goes out, and the validation runs next (RFC 8555 s.7.5.1); the
    server reads the connection's next request only when it is recorded, so
    a client polling on the same connection sees the outcome at once.
    Elsewhere (Cloud Functions, tests) the answer waits for the validation.
    """
    ref, found, d = _load_authz(svc, ctx, v, authz_id)
    ch = next((c for c in d["challenges"] if c["id"] == ch_id), None)
    if ch is None:
        raise ACMEProblem("malformed", "challenge not found", status=404)
    up = f'<{ctx.url("authz", authz_id)}>;rel="up"'
    if not v.jws.is_post_as_get:
        v.jws.json_payload()  # must be a JSON object ({} per RFC 8555 s.7.5.1)
    was = ch["status"]
    stale = was == "processing" and svc.clock.now() - parse_ts(str(ch.get("processingSince"))) >= _stale_after(ctx)
    if v.jws.is_post_as_get or not (was == "pending" or stale) or authz_status(svc, d) != "pending":
        return Reply(200, _challenge_json(ctx, authz_id, d["token"], ch), _retry_after(ch), links=[up])
    assert v.account_id is not None
    account_id, limit = v.account_id, ctx.prov.validations_per_account
    svc.validations.admit(account_id)
    if ctx.after_response is None:
        outcome: list[dict[str, Any] | None] = []
        authz, challenge, jwk = d, ch, v.jwk
        svc.validations.run(account_id, limit, lambda: outcome.append(_validate(ctx, authz, challenge, jwk)))
        if not outcome:
            raise ACMEProblem("serverInternal", "the validation did not complete")
        record = _recorder(svc, ch_id, outcome[0], was=was)
        d = ref.change(svc, found, record)
        ch = next(c for c in d["challenges"] if c["id"] == ch_id)
        return Reply(200, _challenge_json(ctx, authz_id, d["token"], ch), links=[up])

    started = False

    def start(cur: dict[str, Any]) -> bool:
        nonlocal started
        chals = [dict(c) for c in cur["challenges"]]
        mine = next((c for c in chals if c["id"] == ch_id), None)
        if cur["status"] != "pending" or mine is None or mine["status"] != was:
            return False
        mine["status"] = "processing"
        mine["processingSince"] = ts(svc.clock.now())
        cur["challenges"] = chals
        started = True
        return True

    d = ref.change(svc, found, start, nonce=v.nonce)
    ch = next(c for c in d["challenges"] if c["id"] == ch_id)
    if started:
        jwk = v.jwk

        def finish() -> None:
            try:
                current = svc.repo.get_versioned(ref.collection, ref.doc_id)
                if current is None:
                    return
                authz = ref.pick(current[0])
                mine = next(c for c in authz["challenges"] if c["id"] == ch_id)
                ref.change(svc, current, _recorder(svc, ch_id, _validate(ctx, authz, mine, jwk), was="processing"))
            except Exception:
                log.exception("recording a challenge validation failed (it stays processing until it goes stale)")

        def hand_off() -> None:
            job = svc.validations.submit(account_id, limit, finish)
            if job.started:  # it has a thread now: wait, so a poll on this connection sees the outcome
                job.done.wait()

        ctx.after_response.append(hand_off)
    return Reply(200, _challenge_json(ctx, authz_id, d["token"], ch), _retry_after(ch), links=[up])


def _retry_after(ch: dict[str, Any]) -> dict[str, str]:
    """Retry-After for a challenge still being validated (RFC 8555 s.7.5.1), else nothing."""
    return {"Retry-After": "1"} if ch["status"] == "processing" else {}
