"""Authenticating ACME POSTs (ACME-01/02/03, RFC 8555 s.6.2-6.5).

Checks run cheapest and least stateful first: structure and algorithm, the
exactly-one-of jwk/kid rule, `url`, then the signature, and only then the
nonce claim, so a forged request cannot burn a client's nonces.
"""

from __future__ import annotations

from typing import Any

from shared.acme import jws
from shared.acme.context import Ctx, Services, Verified
from shared.acme.problems import ACMEProblem
from shared.acme.repo import ACCOUNT_KEYS, ACCOUNTS


def account_by_key(svc: Services, provisioner: str, thumb: str) -> tuple[str, dict[str, Any]] | None:
    """The account holding a key (by RFC 7638 thumbprint), or None."""
    index = svc.repo.get(ACCOUNT_KEYS, f"{provisioner}:{thumb}")
    if not index or not index.get("accountId"):
        return None
    acc = svc.repo.get(ACCOUNTS, str(index["accountId"]))
    if acc is None or acc.get("provisioner") != provisioner:
        return None
    return str(index["accountId"]), acc


def authenticate(
    svc: Services,
    ctx: Ctx,
    body: bytes,
    *,
    key_mode: str = "kid",
    defer_nonce: bool = False,
    prefetch: tuple[str, str] | None = None,
) -> Verified:
    """Verify a POST body.

    `key_mode` is "kid" (most resources), "jwk" (newAccount) or "either"
    (revokeCert, which a certificate's own key may sign). With
    `defer_nonce` (kid requests only) the nonce is checked but not yet
    claimed: `Verified.nonce` is left for the handler's first write.
    `prefetch` names the document the request is about (kid requests): it is
    read with the account, in one round trip, and handed to the handler
    through `Verified.read`.
    """
    parsed = jws.parse(body)
    header = parsed.header
    has_jwk, has_kid = "jwk" in header, "kid" in header
    if has_jwk == has_kid:
        raise ACMEProblem("malformed", "JWS must have exactly one of jwk and kid")
    url = header.get("url")
    if not isinstance(url, str) or url != ctx.request_url:
        raise ACMEProblem("unauthorized", "JWS url does not match the request URL", status=401)
    if has_jwk:
        if key_mode == "kid":
            raise ACMEProblem("malformed", "this resource requires a kid, not a jwk")
        jwk = header["jwk"]
        key = jws.public_key(jwk)
        jws.verify(parsed, key)
        svc.nonces.redeem(header.get("nonce"))
        held = account_by_key(svc, ctx.prov.name, jws.thumbprint(jwk))
        return Verified(parsed, jws.public_jwk(jwk), held[0] if held else None, held[1] if held else None)
    if key_mode == "jwk":
        raise ACMEProblem("malformed", "newAccount requires a jwk, not a kid")
    kid = header["kid"]
    if not isinstance(kid, str):
        raise ACMEProblem("malformed", "kid must be a string")
    account_id = kid.rsplit("/", 1)[-1]
    prefetched: dict[tuple[str, str], tuple[dict[str, Any], int] | None] = {}
    acc: dict[str, Any] | None = None
    if account_id and prefetch is not None and prefetch != (ACCOUNTS, account_id):
        account_found, prefetched[prefetch] = svc.repo.get_many([(ACCOUNTS, account_id), prefetch])
        acc = account_found[0] if account_found else None
    elif account_id:
        acc = svc.repo.get(ACCOUNTS, account_id)
    if acc is None or acc.get("provisioner") != ctx.prov.name or kid != ctx.url("account", account_id):
        raise ACMEProblem("accountDoesNotExist", "account does not exist", status=400)
    key = jws.public_key(acc["key"])
    jws.verify(parsed, key)
    pending = svc.nonces.check(header.get("nonce"))
    if not defer_nonce or acc.get("status") != "valid":
        svc.nonces.spend(pending)
    if acc.get("status") != "valid":
        raise ACMEProblem("unauthorized", f"account is {acc.get('status')}", status=401)
    return Verified(parsed, dict(acc["key"]), account_id, acc, None if pending.spent else pending, prefetched)
