"""Accounts: newAccount, update/deactivate, orders list, keyChange (ACME-06, ACME-13)."""

from __future__ import annotations

import re
from typing import Any

from shared.acme import eab, jws
from shared.acme.auth import account_by_key
from shared.acme.context import Ctx, Reply, Services, Verified
from shared.acme.problems import ACMEProblem
from shared.acme.ratelimit import check_new_account, client_address
from shared.acme.repo import ACCOUNT_KEYS, ACCOUNTS, ORDERS, new_id, ts

_MAX_CONTACTS = 10
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\Z")


def check_contacts(value: Any) -> list[str]:
    """Only `mailto:` with one plain address each (RFC 8555 s.7.3)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ACMEProblem("invalidContact", "contact must be a list of URLs")
    if len(value) > _MAX_CONTACTS:
        raise ACMEProblem("invalidContact", f"at most {_MAX_CONTACTS} contacts")
    for contact in value:
        if not contact.startswith("mailto:"):
            raise ACMEProblem("unsupportedContact", "only mailto: contacts are supported")
        address = contact[len("mailto:") :]
        if "?" in address or "," in address or len(address) > 254 or not _EMAIL.match(address):
            raise ACMEProblem("invalidContact", f"invalid contact {contact[:80]!r}")
    return list(value)


def account_json(ctx: Ctx, acc_id: str, acc: dict[str, Any]) -> dict[str, Any]:
    """The account object (RFC 8555 s.7.1.2)."""
    out: dict[str, Any] = {
        "status": acc["status"],
        "contact": acc.get("contact", []),
        "orders": ctx.url("account", acc_id, "orders"),
        "createdAt": acc.get("createdAt"),
    }
    if acc.get("eab"):
        out["externalAccountBinding"] = acc["eab"]
    return out


def _reply(ctx: Ctx, status: int, acc_id: str, acc: dict[str, Any]) -> Reply:
    return Reply(status, account_json(ctx, acc_id, acc), {"Location": ctx.url("account", acc_id)})


def _claim_key(svc: Services, prov: str, thumb: str, acc_id: str) -> str | None:
    """Point the key index at `acc_id`; return the id of another holder if the key is taken."""
    key_id = f"{prov}:{thumb}"
    if svc.repo.create(ACCOUNT_KEYS, key_id, {"accountId": acc_id}):
        return None
    holder: list[str] = []

    def take(d: dict[str, Any]) -> dict[str, Any] | None:
        if d.get("accountId"):
            holder.append(str(d["accountId"]))
            return None
        return {"accountId": acc_id}

    svc.repo.mutate(ACCOUNT_KEYS, key_id, take)
    return holder[0] if holder else None


def new_account(svc: Services, ctx: Ctx, v: Verified) -> Reply:
    """newAccount: create, or return the account that holds the key."""
    payload = v.jws.json_payload()
    if v.account_id and v.account:
        if v.account.get("status") != "valid":  # RFC 8555 s.7.3.6: a deactivated account's key is refused
            raise ACMEProblem("unauthorized", f"account is {v.account.get('status')}", status=401)
        return _reply(ctx, 200, v.account_id, v.account)
    if payload.get("onlyReturnExisting") is True:
        raise ACMEProblem("accountDoesNotExist", "no account exists with this key")
    contacts = check_contacts(payload.get("contact"))
    if ctx.prov.terms_of_service and payload.get("termsOfServiceAgreed") is not True:
        raise ACMEProblem("malformed", "you must agree to the terms of service")
    check_new_account(
        svc.repo.docs,
        provisioner=ctx.prov.name,
        address=client_address(ctx.request.remote_addr, ctx.request.forwarded_for, ctx.prov.trusted_proxy_hops),
        limit=ctx.prov.accounts_per_minute,
        now=svc.clock.now(),
    )
    acc_id = new_id()
    binding = None
    if ctx.prov.require_eab:
        if "externalAccountBinding" not in payload:
            raise ACMEProblem("externalAccountRequired", "an external account binding is required")
        binding = eab.verify_and_bind(
            svc.repo,
            svc.clock,
            payload["externalAccountBinding"],
            outer_jwk=v.jwk,
            url=ctx.request_url,
            provisioner=ctx.prov.name,
            account_id=acc_id,
        )
    thumb = jws.thumbprint(v.jwk)
    acc = {
        "provisioner": ctx.prov.name,
        "key": v.jwk,
        "thumbprint": thumb,
        "status": "valid",
        "contact": contacts,
        "createdAt": ts(svc.clock.now()),
        "termsOfServiceAgreed": bool(payload.get("termsOfServiceAgreed")),
        "eab": binding,
    }
    svc.repo.create(ACCOUNTS, acc_id, acc)
    holder = _claim_key(svc, ctx.prov.name, thumb, acc_id)
    if holder is not None:  # another instance registered the same key just now
        existing = svc.repo.get(ACCOUNTS, holder)
        if existing is None:
            raise ACMEProblem("malformed", "account creation conflict; retry", status=409)
        return _reply(ctx, 200, holder, existing)
    return _reply(ctx, 201, acc_id, acc)


def update_account(svc: Services, ctx: Ctx, v: Verified, acc_id: str) -> Reply:
    """POST to the account URL: read, change contacts, or deactivate."""
    if acc_id != v.account_id:
        raise ACMEProblem("unauthorized", "the account URL does not match the signing account")
    if v.jws.is_post_as_get:
        assert v.account is not None
        return _reply(ctx, 200, acc_id, v.account)
    payload = v.jws.json_payload()
    status = payload.get("status")
    if status is not None and status != "deactivated":
        raise ACMEProblem("malformed", "status may only be changed to deactivated")
    contacts = check_contacts(payload["contact"]) if "contact" in payload else None

    def change(d: dict[str, Any]) -> dict[str, Any]:
        if contacts is not None:
            d["contact"] = contacts
        if status == "deactivated":
            d["status"] = "deactivated"
            d["deactivatedAt"] = ts(svc.clock.now())
        return d

    acc = svc.repo.mutate(ACCOUNTS, acc_id, change)
    if acc is None:
        raise ACMEProblem("accountDoesNotExist", "account does not exist")
    return _reply(ctx, 200, acc_id, acc)


def account_orders(svc: Services, ctx: Ctx, v: Verified, acc_id: str) -> Reply:
    """The account's orders list (RFC 8555 s.7.1.2.1)."""
    if acc_id != v.account_id:
        raise ACMEProblem("unauthorized", "the account URL does not match the signing account")
    now = svc.clock.now()
    docs = svc.repo.find(ORDERS, "accountId", acc_id, limit=1000)
    urls = [
        ctx.url("order", oid)
        for oid, d in docs
        if d.get("status") in ("pending", "ready", "processing", "valid") and d.get("expires", "") > ts(now)
    ]
    return Reply(200, {"orders": urls})


def key_change(svc: Services, ctx: Ctx, v: Verified) -> Reply:
    """Roll the account key over (RFC 8555 s.7.3.5)."""
    assert v.account_id is not None and v.account is not None
    outer = v.jws.json_payload()
    inner = jws.parse(outer)
    header = inner.header
    if "jwk" not in header or "kid" in header:
        raise ACMEProblem("malformed", "inner JWS must carry the new key as jwk")
    if "nonce" in header:
        raise ACMEProblem("malformed", "inner JWS must not carry a nonce")
    if header.get("url") != ctx.request_url:
        raise ACMEProblem("malformed", "inner JWS url must equal the outer url")
    new_jwk = header["jwk"]
    jws.verify(inner, jws.public_key(new_jwk))
    payload = inner.json_payload()
    if payload.get("account") != ctx.url("account", v.account_id):
        raise ACMEProblem("malformed", "inner payload account does not match the signer")
    old = payload.get("oldKey")
    if not isinstance(old, dict) or jws.thumbprint(old) != v.account["thumbprint"]:
        raise ACMEProblem("malformed", "oldKey does not match the account key")
    new_thumb = jws.thumbprint(new_jwk)
    if new_thumb == v.account["thumbprint"]:
        raise ACMEProblem("malformed", "new key is the same as the old key")
    existing = account_by_key(svc, ctx.prov.name, new_thumb)
    holder = existing[0] if existing else _claim_key(svc, ctx.prov.name, new_thumb, v.account_id)
    if holder is not None and holder != v.account_id:
        raise ACMEProblem(
            "malformed",
            "the new key is already in use",
            status=409,
            headers={"Location": ctx.url("account", holder)},
        )
    old_thumb = v.account["thumbprint"]

    def change(d: dict[str, Any]) -> dict[str, Any]:
        d["key"] = jws.public_jwk(new_jwk)
        d["thumbprint"] = new_thumb
        return d

    acc = svc.repo.mutate(ACCOUNTS, v.account_id, change)
    svc.repo.mutate(ACCOUNT_KEYS, f"{ctx.prov.name}:{old_thumb}", lambda d: {"accountId": ""})
    assert acc is not None
    return _reply(ctx, 200, v.account_id, acc)
