"""Finalize, certificate download and revokeCert (ACME-11, ACME-12).

Finalize moves the order `ready -> processing` with compare-and-set before
calling the authority, so two instances can never both issue for one order;
the authority records the certificate before returning it, and only then is
the order marked `valid` and the chain made downloadable. Behind `cirrus up`
(`ctx.after_response`) the answer goes out with the order `processing` and
the issuance runs right after it (RFC 8555 s.7.4); the server reads the
connection's next request (the client's order poll) only once the order is
`valid` or `invalid`. Elsewhere the answer waits for the issuance. The chain is kept
in the order document itself (certificate id = order id), written by the same
compare-and-set that marks the order valid; certificates issued before that
layout live in `acme_certs` documents and are still served.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.acme import csr as csr_mod
from shared.acme import jws
from shared.acme.context import Ctx, Reply, Services, Verified
from shared.acme.identifiers import Identifier
from shared.acme.orders import issued_by_serial, load_order, order_json
from shared.acme.problems import ACMEProblem, from_ca_error
from shared.acme.repo import AUTHZS, CERTS, ORDERS, parse_ts, ts
from shared.errors import AlreadyRevoked, CAError

log = logging.getLogger(__name__)

#: BR-06 reasons a subscriber may give (0 = unspecified, recorded without a reason).
ALLOWED_REASONS = frozenset({0, 1, 3, 4, 5})
PEM_CHAIN = "application/pem-certificate-chain"
_ALT_INDEX = re.compile(r"[1-9][0-9]{0,2}")


def _pem(certs: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def finalize(svc: Services, ctx: Ctx, v: Verified, order_id: str) -> Reply:
    """POST order/{id}/finalize with {"csr": ...}."""
    assert v.account_id is not None
    found = load_order(svc, ctx, v, order_id)
    order = found[0]
    if order["status"] != "ready":
        headers = {"Retry-After": "1"} if order["status"] == "processing" else {}
        raise ACMEProblem("orderNotReady", f"order is {order['status']}, not ready", headers=headers)
    payload = v.jws.json_payload()
    csr = csr_mod.load(payload.get("csr"))
    idents = [Identifier(i["type"], i["value"]) for i in order["identifiers"]]
    csr_mod.check(csr, idents, account_key=jws.public_key(v.jwk))

    def start(d: dict[str, Any]) -> dict[str, Any]:
        if d["status"] != "ready":
            raise ACMEProblem("orderNotReady", f"order is {d['status']}, not ready")
        d["status"] = "processing"
        d["processingSince"] = ts(svc.clock.now())
        return d

    processing = svc.repo.mutate_versioned(ORDERS, order_id, start, current=found, nonce=v.nonce)
    if processing is None:
        raise ACMEProblem("malformed", "order not found", status=404)
    account_id = v.account_id
    location = {"Location": ctx.url("order", order_id)}
    if ctx.after_response is None:
        order = _issue(svc, ctx, account_id, order_id, order, processing, csr, idents)
        return Reply(200, order_json(ctx, order_id, order), location)

    def complete() -> None:
        try:
            _issue(svc, ctx, account_id, order_id, order, processing, csr, idents)
        except ACMEProblem as p:  # recorded on the order (invalid, with the problem), which the client polls
            log.info("ACME order %s not issued: %s", order_id, p.kind)
        except Exception:
            log.exception("ACME order %s: issuance failed (the order is ready again)", order_id)

    issuance = svc.issuance
    if issuance is None:
        ctx.after_response.append(complete)
    else:  # on its own pool, never behind validations; the hook waits so a poll on this connection sees it

        def hand_off() -> None:
            issuance.submit(complete).result()

        ctx.after_response.append(hand_off)
    return Reply(200, order_json(ctx, order_id, processing[0]), {**location, "Retry-After": "1"})


def _issue(
    svc: Services,
    ctx: Ctx,
    account_id: str,
    order_id: str,
    order: dict[str, Any],
    processing: tuple[dict[str, Any], int],
    csr: x509.CertificateSigningRequest,
    idents: list[Identifier],
) -> dict[str, Any]:
    """Issue for an order marked `processing`; record `valid` with the chains, or `invalid` on a refusal
    (an unavailable dependency, 503, puts it back to `ready` instead).

    Each outcome is recorded only while the order is still this finalize's `processing`: an
    issuance that outlived `orders.ORDER_PROCESSING_STALE` finds the order already `invalid` (a poll
    gave it up) and leaves it so, since an invalid order stays invalid (RFC 8555 s.7.1.6). Its
    certificate is recorded in the store all the same, and is never handed out by this order.
    """
    since = processing[0].get("processingSince")

    def ours(d: dict[str, Any]) -> bool:
        return d.get("status") == "processing" and d.get("processingSince") == since

    try:
        issued = svc.finalizer.issue(
            csr,
            idents,
            provisioner=ctx.prov.name,
            account_id=account_id,
            replaces=order.get("replaces"),
            not_before=parse_ts(order["notBefore"]) if order.get("notBefore") else None,
            not_after=parse_ts(order["notAfter"]) if order.get("notAfter") else None,
        )
    except CAError as err:
        problem = from_ca_error(err)
        if err.status == 503:  # unavailable (a webhook, a backend): not a refusal; the order may be finalized again
            svc.repo.mutate(ORDERS, order_id, lambda d: {**d, "status": "ready"} if ours(d) else None,
                            current=processing)
            raise problem from err

        def fail(d: dict[str, Any]) -> dict[str, Any] | None:
            if not ours(d):
                return None
            d["status"] = "invalid"
            d["error"] = problem.to_json()
            return d

        svc.repo.mutate(ORDERS, order_id, fail, current=processing)
        raise problem from err
    except Exception:
        svc.repo.mutate(ORDERS, order_id, lambda d: {**d, "status": "ready"} if ours(d) else None, current=processing)
        raise
    chains = [_pem([issued.leaf, *issued.chain])] + [_pem([issued.leaf, *alt]) for alt in issued.alternates]
    issued_at = ts(svc.clock.now())

    def done(d: dict[str, Any]) -> dict[str, Any] | None:
        if not ours(d):
            return None
        d.pop("processingSince", None)
        d["status"] = "valid"
        d["certificateId"] = order_id
        d["serial"] = issued.serial
        d["chains"] = chains
        d["issuedAt"] = issued_at
        return d

    return svc.repo.mutate(ORDERS, order_id, done, current=processing) or order


def download(svc: Services, ctx: Ctx, v: Verified, cert_id: str, alt: str | None) -> Reply:
    """POST-as-GET certificate/{id}[/{n}]."""
    found = v.read(svc.repo, ORDERS, cert_id)
    d = found[0] if found else None
    if d is None or not d.get("chains"):
        d = svc.repo.get(CERTS, cert_id)  # issued before chains moved into the order
    if d is None or d.get("accountId") != v.account_id or d.get("provisioner") != ctx.prov.name:
        raise ACMEProblem("malformed", "certificate not found", status=404)
    chains: list[str] = d["chains"]
    index = 0
    if alt is not None:
        # ASCII digits only, at most three, no leading zero: `str.isdigit()` passes "²", which `int()` refuses.
        if not _ALT_INDEX.fullmatch(alt) or not 0 < int(alt) < len(chains):
            raise ACMEProblem("malformed", "certificate not found", status=404)
        index = int(alt)
    urls = [ctx.url("certificate", cert_id)] + [ctx.url("certificate", cert_id, str(n)) for n in range(1, len(chains))]
    links = [f'<{url}>;rel="alternate"' for n, url in enumerate(urls) if n != index]
    return Reply(200, chains[index].encode("ascii"), links=links, content_type=PEM_CHAIN)


def _names(cert: x509.Certificate) -> set[Identifier] | None:
    """The certificate's identifiers an account can be authorized for; None if it names anything else.

    RFC 8555 s.7.6: the account must hold authorizations for every identifier in
    the certificate. An email, URI, directory name or other SAN (or a subject CN
    that is not one of the DNS/IP SANs) is an identifier no ACME account can be
    authorized for, so such a certificate is never revocable by authorization.
    """
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, x509.DuplicateExtension, ValueError):
        return None
    out: set[Identifier] = set()
    for name in sans:
        if isinstance(name, x509.DNSName):
            out.add(Identifier("dns", name.value.lower()))
        elif isinstance(name, x509.IPAddress) and not isinstance(
            name.value, ipaddress.IPv4Network | ipaddress.IPv6Network
        ):
            out.add(Identifier("ip", str(name.value)))
        else:
            return None
    try:
        cns = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    except ValueError:
        return None
    for cn in cns:
        value = cn.value if isinstance(cn.value, str) else ""
        if Identifier("dns", value.lower()) not in out and not _is_ip_named(value, out):
            return None
    return out or None


def _is_ip_named(text: str, names: set[Identifier]) -> bool:
    try:
        return Identifier("ip", str(ipaddress.ip_address(text))) in names
    except ValueError:
        return False


def _account_may_revoke(svc: Services, v: Verified, serial: str, cert: x509.Certificate) -> bool:
    owned = issued_by_serial(svc, serial)
    if owned and owned[0][1].get("accountId") == v.account_id:
        return True
    names = _names(cert)
    if names is None:
        return False
    now = svc.clock.now()
    account = str(v.account_id)
    authzs = [a for _, o in svc.repo.find(ORDERS, "accountId", account, limit=10000) for a in o.get("authzs", ())]
    authzs += [a for _, a in svc.repo.find(AUTHZS, "accountId", account, limit=10000)]
    held: set[Identifier] = set()
    for a in authzs:
        if a.get("status") == "valid" and parse_ts(a["expires"]) > now:
            ident = a["identifier"]
            held.add(Identifier(ident["type"], ("*." if a.get("wildcard") else "") + ident["value"]))
            held.add(Identifier(ident["type"], ident["value"]))
    return names <= held


def revoke(svc: Services, ctx: Ctx, v: Verified) -> Reply:
    """revokeCert, signed by the account key or by the certificate's key."""
    payload = v.jws.json_payload()
    der = jws.b64d(payload.get("certificate"), "certificate")
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise ACMEProblem("malformed", "certificate could not be parsed") from exc
    reason = payload.get("reason", 0)
    if not isinstance(reason, int) or isinstance(reason, bool) or reason not in ALLOWED_REASONS:
        raise ACMEProblem("badRevocationReason", "reason must be one of 0, 1, 3, 4, 5")
    serial = str(cert.serial_number)
    record = svc.certificates.get_certificate(serial)
    if record is None or record.der != der:
        raise ACMEProblem("malformed", "certificate not found", status=404)
    if v.account_id is not None and "kid" in v.jws.header:
        if not _account_may_revoke(svc, v, serial, cert):
            raise ACMEProblem("unauthorized", "the account may not revoke this certificate")
    else:
        cert_spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        jwk_spki = jws.public_key(v.jwk).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if cert_spki != jwk_spki:
            raise ACMEProblem("unauthorized", "the JWS key is not the certificate's key")
    try:
        svc.revoker.revoke(
            serial,
            reason_code=reason,
            provisioner=ctx.prov.name,
            account_id=v.account_id if "kid" in v.jws.header else None,
        )
    except AlreadyRevoked as err:
        raise ACMEProblem("alreadyRevoked", "certificate is already revoked") from err
    return Reply(200, None)
