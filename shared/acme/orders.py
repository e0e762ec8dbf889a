"""Orders, authorizations and challenges (ACME-07..10, RFC 8738, RFC 9773 `replaces`).

An order is one document that embeds its authorizations (authorization id
`{order id}.{n}`), so a newOrder is one store write, a challenge result moves
the authorization and the order (`pending -> ready/invalid`) in one
compare-and-set, and reading an order never reads its authorizations
separately. Orders written before this layout (`authzIds` pointing at
`acme_authzs` documents) are still served.

Expiry is derived on read from the stored facts and written back with
compare-and-set, so no background job is needed to move an order to `invalid`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.acme import jws
from shared.acme.challenges import validator_for
from shared.acme.challenges.addresses import address_allowed
from shared.acme.context import Ctx, Reply, Services, Verified
from shared.acme.identifiers import Identifier, parse_identifier
from shared.acme.nonces import PendingNonce
from shared.acme.problems import ACMEProblem, from_ca_error
from shared.acme.ratelimit import check_new_order
from shared.acme.renewal import parse_cert_id
from shared.acme.repo import (
    AUTHZS,
    CERTS,
    ORDERS,
    REPLACEMENTS,
    RETENTION,
    new_id,
    new_token,
    parse_ts,
    ts,
)
from shared.errors import CAError

log = logging.getLogger(__name__)

MAX_IDENTIFIERS = 100

#: Compare-and-set attempts for a change to an order's embedded authorization:
#: clients may answer several challenges of one order at once, and every
#: answer rewrites the same document (validation runs before, so a retry is
#: only a re-read).
_AUTHZ_ATTEMPTS = 32

_FAILED = ("invalid", "deactivated", "expired", "revoked")

Found = tuple[dict[str, Any], int]


def _identifiers(d: dict[str, Any]) -> list[Identifier]:
    return [Identifier(i["type"], i["value"]) for i in d["identifiers"]]


def _challenge_types(ctx: Ctx, ident: Identifier) -> list[str]:
    if ident.wildcard:
        wanted = ["dns-01"]
    elif ident.type == "ip":
        wanted = ["http-01", "tls-alpn-01"]
    else:
        wanted = ["http-01", "dns-01", "tls-alpn-01"]
    return [c for c in wanted if c in ctx.prov.challenges]


def _check(ctx: Ctx, raw: Any) -> Identifier:
    ident = parse_identifier(raw, allow_wildcard=ctx.prov.allow_wildcard)
    if ident.type == "ip" and not address_allowed(ipaddress.ip_address(ident.value), ctx.prov):
        raise ACMEProblem("rejectedIdentifier", f"{ident.value} may not be validated", identifier=ident.to_json())
    if not _challenge_types(ctx, ident):
        raise ACMEProblem(
            "rejectedIdentifier",
            f"no enabled challenge can validate {ident.value}",
            identifier=ident.to_json(),
        )
    return ident


def _parse_time(payload: dict[str, Any], key: str) -> dt.datetime | None:
    value = payload.get(key)
    if value is None:
        return None
    try:
        return parse_ts(str(value))
    except ValueError as exc:
        raise ACMEProblem("malformed", f"{key} is not an RFC 3339 date") from exc


def _claim_replacement(svc: Services, v: Verified, text: Any, idents: list[Identifier], order_id: str) -> str:
    """Check `replaces` and reserve the certificate for this order; return its serial."""
    _, serial = parse_cert_id(text)
    found = issued_by_serial(svc, serial)
    if not found or found[0][1].get("accountId") != v.account_id:
        raise ACMEProblem("malformed", "the replaced certificate was not issued to this account")
    old = {Identifier(i["type"], i["value"]) for i in found[0][1].get("identifiers", [])}
    if not old & set(idents):
        raise ACMEProblem("malformed", "the order shares no identifier with the replaced certificate")
    if svc.repo.create(REPLACEMENTS, serial, {"orderId": order_id}):
        return serial

    def take(d: dict[str, Any]) -> dict[str, Any]:
        prev = svc.repo.get_versioned(ORDERS, str(d.get("orderId")))
        if prev and _refresh_order(svc, str(d.get("orderId")), prev)[0]["status"] != "invalid":
            raise ACMEProblem("alreadyReplaced", "the certificate has already been replaced")
        return {"orderId": order_id}

    svc.repo.mutate(REPLACEMENTS, serial, take)
    return serial


def issued_by_serial(svc: Services, serial: str) -> list[tuple[str, dict[str, Any]]]:
    """The document that holds an issued certificate: its order, or (older layout) an `acme_certs` one."""
    return svc.repo.find(ORDERS, "serial", serial, limit=1) or svc.repo.find(CERTS, "serial", serial, limit=1)


def new_order(svc: Services, ctx: Ctx, v: Verified) -> Reply:
    """newOrder (RFC 8555 s.7.4)."""
    assert v.account_id is not None
    check_new_order(
        svc.repo.docs, account_id=v.account_id, limit=ctx.prov.orders_per_minute, now=svc.clock.now(), nonce=v.nonce
    )
    payload = v.jws.json_payload()
    raw = payload.get("identifiers")
    if not isinstance(raw, list) or not raw:
        raise ACMEProblem("malformed", "identifiers must be a non-empty list")
    if len(raw) > MAX_IDENTIFIERS:
        raise ACMEProblem("rejectedIdentifier", f"at most {MAX_IDENTIFIERS} identifiers per order")
    idents: list[Identifier] = []
    problems: list[ACMEProblem] = []
    for item in raw:
        try:
            ident = _check(ctx, item)
            try:  # per identifier, so each refusal becomes its own subproblem
                svc.finalizer.check_identifiers([ident], provisioner=ctx.prov.name)
            except CAError as err:
                raise from_ca_error(err) from err
            idents.append(ident)
        except ACMEProblem as p:
            if p.identifier is None and isinstance(item, dict):
                p.identifier = {
                    "type": str(item.get("type"))[:32],
                    "value": str(item.get("value"))[:255],
                }
            problems.append(p)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ACMEProblem("rejectedIdentifier", "some identifiers were rejected", subproblems=problems)
    idents = sorted(set(idents))
    try:
        svc.finalizer.check_identifiers(idents, provisioner=ctx.prov.name)
    except CAError as err:
        raise from_ca_error(err) from err
    not_before, not_after = _parse_time(payload, "notBefore"), _parse_time(payload, "notAfter")
    if not_before and not_after and not_after <= not_before:
        raise ACMEProblem("malformed", "notAfter must be after notBefore")
    now = svc.clock.now()
    order_id = new_id()
    replaces = None
    if payload.get("replaces") is not None:
        if v.nonce is not None:  # the replacement claim is a write of its own: no replay may reach it
            svc.nonces.spend(v.nonce)
        replaces = _claim_replacement(svc, v, payload["replaces"], idents, order_id)
    expires = now + ctx.prov.order_lifetime
    authzs = [
        {
            "identifier": {"type": ident.type, "value": ident.base},
            "wildcard": ident.wildcard,
            "status": "pending",
            "expires": ts(expires),
            "token": new_token(),
            "challenges": [{"id": new_id(), "type": t, "status": "pending"} for t in _challenge_types(ctx, ident)],
        }
        for ident in idents
    ]
    order = {
        "provisioner": ctx.prov.name,
        "accountId": v.account_id,
        "status": "pending",
        "expires": ts(expires),
        "identifiers": [i.to_json() for i in idents],
        "authzs": authzs,
        "notBefore": ts(not_before) if not_before else None,
        "notAfter": ts(not_after) if not_after else None,
        "replaces": replaces,
        "replacesId": payload.get("replaces") if replaces else None,
        "certificateId": None,
        "error": None,
        "createdAt": ts(now),
    }
    svc.repo.create(ORDERS, order_id, order, expires_at=expires + RETENTION, nonce=v.nonce)
    return Reply(201, order_json(ctx, order_id, order), {"Location": ctx.url("order", order_id)})


def authz_ids(order_id: str, d: dict[str, Any]) -> list[str]:
    """The ids of an order's authorizations (embedded ones are `{order id}.{n}`)."""
    if "authzs" in d:
        return [f"{order_id}.{n}" for n in range(len(d["authzs"]))]
    return [str(a) for a in d["authzIds"]]


def order_json(ctx: Ctx, order_id: str, d: dict[str, Any]) -> dict[str, Any]:
    """The order object (RFC 8555 s.7.1.3)."""
    out: dict[str, Any] = {
        "status": d["status"],
        "expires": d["expires"],
        "identifiers": d["identifiers"],
        "authorizations": [ctx.url("authz", a) for a in authz_ids(order_id, d)],
        "finalize": ctx.url("order", order_id, "finalize"),
    }
    for key in ("notBefore", "notAfter", "error"):
        if d.get(key):
            out[key] = d[key]
    if d.get("replacesId"):
        out["replaces"] = d["replacesId"]
    if d.get("certificateId"):
        out["certificate"] = ctx.url("certificate", d["certificateId"])
    return out


def _authz_status(svc: Services, d: dict[str, Any]) -> str:
    status = str(d["status"])
    if status in ("pending", "valid") and parse_ts(d["expires"]) <= svc.clock.now():
        return "expired"
    return status


def _settled_status(svc: Services, d: dict[str, Any], states: list[str]) -> str:
    """An unfinalized order's status from its expiry and its authorizations' states."""
    status = str(d["status"])
    if parse_ts(d["expires"]) <= svc.clock.now():
        return "invalid"
    if any(s in _FAILED for s in states):
        return "invalid"
    if status == "pending" and all(s == "valid" for s in states):
        return "ready"
    return status


def _settle(svc: Services, d: dict[str, Any]) -> None:
    """Move a pending/ready order with embedded authorizations to the status they imply (in place)."""
    if d["status"] not in ("pending", "ready"):
        return
    new = _settled_status(svc, d, [_authz_status(svc, a) for a in d["authzs"]])
    if new == "invalid" and not d.get("error"):
        d["error"] = ACMEProblem("unauthorized", "an authorization failed or expired").to_json()
    d["status"] = new


#: An order `processing` this long lost its issuance (its worker stopped): far past any signing
#: latency, even a remote KMS's with retries.
ORDER_PROCESSING_STALE = dt.timedelta(minutes=10)


def _refresh_order(svc: Services, order_id: str, found: Found) -> Found:
    """Derive `ready`/`invalid` from authorizations and expiry; persist the change."""
    d = found[0]
    status = d["status"]
    if status == "processing" and d.get("processingSince"):
        if svc.clock.now() - parse_ts(str(d["processingSince"])) < ORDER_PROCESSING_STALE:
            return found

        def abandon(cur: dict[str, Any]) -> dict[str, Any] | None:
            if cur["status"] != "processing" or cur.get("processingSince") != d["processingSince"]:
                return None
            cur["status"] = "invalid"
            cur["error"] = ACMEProblem("serverInternal", "the issuance did not complete; place a new order").to_json()
            return cur

        return svc.repo.mutate_versioned(ORDERS, order_id, abandon, current=found) or found
    if status not in ("pending", "ready"):
        return found
    if "authzs" in d:
        probe = dict(d)
        _settle(svc, probe)
        if probe["status"] == status:
            return found

        def settle(cur: dict[str, Any]) -> dict[str, Any] | None:
            if cur["status"] != status:
                return None
            _settle(svc, cur)
            return cur

        return svc.repo.mutate_versioned(ORDERS, order_id, settle, current=found) or found
    # Older layout: authorizations are their own documents, consulted while pending.
    new = status
    if parse_ts(d["expires"]) <= svc.clock.now():
        new = "invalid"
    elif status == "pending":
        states = []
        for aid in d["authzIds"]:
            a = svc.repo.get(AUTHZS, aid)
            states.append(_authz_status(svc, a) if a else "invalid")
        new = _settled_status(svc, d, states)
    if new == status:
        return found

    def change(cur: dict[str, Any]) -> dict[str, Any] | None:
        if cur["status"] != status:
            return None
        cur["status"] = new
        if new == "invalid" and not cur.get("error"):
            cur["error"] = ACMEProblem("unauthorized", "an authorization failed or expired").to_json()
        return cur

    return svc.repo.mutate_versioned(ORDERS, order_id, change, current=found) or found


def load_order(svc: Services, ctx: Ctx, v: Verified, order_id: str) -> Found:
    """The caller's order, refreshed, with its version; or 404."""
    found = v.read(svc.repo, ORDERS, order_id)
    d = found[0] if found else None
    if found is None or d is None or d.get("accountId") != v.account_id or d.get("provisioner") != ctx.prov.name:
        raise ACMEProblem("malformed", "order not found", status=404)
    return _refresh_order(svc, order_id, found)


def get_order(svc: Services, ctx: Ctx, v: Verified, order_id: str) -> Reply:
    """POST-as-GET an order."""
    d = load_order(svc, ctx, v, order_id)[0]
    headers = {"Retry-After": "1"} if d["status"] == "processing" else {}
    return Reply(200, order_json(ctx, order_id, d), headers)


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
            _settle(svc, cur)
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
    status = _authz_status(svc, d)
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
    if v.jws.is_post_as_get or not (was == "pending" or stale) or _authz_status(svc, d) != "pending":
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
