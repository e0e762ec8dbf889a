"""Orders (ACME-07, RFC 8738, RFC 9773 `replaces`): newOrder, reading an order, its status.

An order is one document that embeds its authorizations (authorization id
`{order id}.{n}`), so a newOrder is one store write, a challenge result moves
the authorization and the order (`pending -> ready/invalid`) in one
compare-and-set, and reading an order never reads its authorizations
separately. Orders written before this layout (`authzIds` pointing at
`acme_authzs` documents) are still served.

Expiry is derived on read from the stored facts and written back with
compare-and-set, so no background job is needed to move an order to `invalid`.
Authorizations and challenge answers are `shared.acme.authorizations`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from typing import Any

from shared.acme.challenges.addresses import address_allowed
from shared.acme.context import Ctx, Reply, Services, Verified
from shared.acme.identifiers import Identifier, parse_identifier
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

_FAILED = ("invalid", "deactivated", "expired", "revoked")

Found = tuple[dict[str, Any], int]


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


def authz_status(svc: Services, d: dict[str, Any]) -> str:
    """An authorization's status, `expired` once past its expiry (derived on read)."""
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


def settle_order(svc: Services, d: dict[str, Any]) -> None:
    """Move a pending/ready order with embedded authorizations to the status they imply (in place)."""
    if d["status"] not in ("pending", "ready"):
        return
    new = _settled_status(svc, d, [authz_status(svc, a) for a in d["authzs"]])
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
        settle_order(svc, probe)
        if probe["status"] == status:
            return found

        def settle(cur: dict[str, Any]) -> dict[str, Any] | None:
            if cur["status"] != status:
                return None
            settle_order(svc, cur)
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
            states.append(authz_status(svc, a) if a else "invalid")
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
