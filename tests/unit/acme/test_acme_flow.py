"""End-to-end ACME flows through the real server, store, CA and loopback responders."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.acme import eab
from shared.acme.renewal import cert_id
from shared.clock import SystemClock
from tests.unit.acme.acme_support import (
    ACMETestClient,
    HTTP01Responder,
    TestCA,
    b64,
    jwk_of,
    make_csr,
    make_jws,
)


def _validate_all(
    client: ACMETestClient,
    order: dict,
    responder: HTTP01Responder,
    kind: str = "http-01",
    challtestsrv=None,
) -> None:  # type: ignore[no-untyped-def]
    for authz_url in order["authorizations"]:
        authz = client.post(authz_url, None).get_json()
        ch = next(c for c in authz["challenges"] if c["type"] == kind)
        ka = client.key_authorization(ch["token"])
        if kind == "http-01":
            responder.tokens[ch["token"]] = ka
        else:
            digest = b64(hashlib.sha256(ka.encode()).digest())
            challtestsrv.set_txt("_acme-challenge." + authz["identifier"]["value"], digest)
        r = client.post(ch["url"], {})
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["status"] == "valid", r.get_json()
        assert 'rel="up"' in ",".join(r.headers.getlist("Link"))


def issue(
    client: ACMETestClient,
    responder: HTTP01Responder,
    names: list[dict],
    *,
    kind: str = "http-01",
    challtestsrv=None,
    replaces: str | None = None,
) -> tuple[str, dict]:  # type: ignore[no-untyped-def]
    payload: dict = {"identifiers": names}
    if replaces:
        payload["replaces"] = replaces
    r = client.post(client.directory["newOrder"], payload)
    assert r.status_code == 201, r.get_json()
    order_url = r.headers["Location"]
    order = r.get_json()
    assert order["status"] == "pending"
    _validate_all(client, order, responder, kind, challtestsrv)
    order = client.post(order_url, None).get_json()
    assert order["status"] == "ready"
    _, csr = make_csr([n["value"] for n in names])
    r = client.post(order["finalize"], {"csr": b64(csr)})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["status"] == "valid"
    return order_url, r.get_json()


def test_directory_and_nonce(client: ACMETestClient) -> None:
    d = client.directory
    for key in ("newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "renewalInfo"):
        assert d[key].startswith("http://localhost/acme/acme/")
    assert d["meta"]["externalAccountRequired"] is False
    head = client.http.head(d["newNonce"])
    get = client.http.get(d["newNonce"])
    assert head.status_code == 200 and get.status_code == 204
    assert head.headers["Cache-Control"] == "no-store"
    assert head.headers["Replay-Nonce"] != get.headers["Replay-Nonce"]
    assert '<http://localhost/acme/acme/directory>;rel="index"' in head.headers.getlist("Link")


def test_step_ca_mount_builds_its_own_urls(app) -> None:  # type: ignore[no-untyped-def]
    c = ACMETestClient(app, base="http://localhost/2.0/acme/acme")
    assert c.directory["newOrder"] == "http://localhost/2.0/acme/acme/new-order"
    assert c.register().status_code == 201


def test_full_issue_download_revoke_ari(client: ACMETestClient, responder: HTTP01Responder, ca: TestCA, store) -> None:  # type: ignore[no-untyped-def]
    r = client.register(contact=["mailto:admin@example.com"])
    assert r.status_code == 201
    assert r.get_json()["status"] == "valid"
    order_url, order = issue(client, responder, [{"type": "ip", "value": "127.0.0.1"}])
    r = client.post(order["certificate"], None)
    assert r.status_code == 200
    assert r.mimetype == "application/pem-certificate-chain"
    chain = x509.load_pem_x509_certificates(r.data)
    assert len(chain) == 2 and chain[1] == ca.intermediate
    leaf = chain[0]
    assert str(leaf.serial_number) in ca.issued
    alts = [link for link in r.headers.getlist("Link") if 'rel="alternate"' in link]
    assert len(alts) == 1
    alt_url = alts[0].split(">")[0][1:]
    alt = client.post(alt_url, None)
    assert len(x509.load_pem_x509_certificates(alt.data)) == 3

    # ARI: unauthenticated GET with Retry-After
    ari = client.http.get(client.directory["renewalInfo"] + "/" + cert_id(leaf))
    assert ari.status_code == 200 and int(ari.headers["Retry-After"]) > 0
    window = ari.get_json()["suggestedWindow"]
    assert window["start"] < window["end"]

    # account orders list
    acc_orders = client.post(client.kid + "/orders", None).get_json()["orders"]
    assert order_url in acc_orders

    # revoke by account key, then again -> alreadyRevoked
    der = leaf.public_bytes(serialization.Encoding.DER)
    r = client.post(client.directory["revokeCert"], {"certificate": b64(der), "reason": 4})
    assert r.status_code == 200, r.get_json()
    assert store.get_revocation(str(leaf.serial_number)).reason_code == 4
    r = client.post(client.directory["revokeCert"], {"certificate": b64(der)})
    assert r.status_code == 400
    assert r.get_json()["type"] == "urn:ietf:params:acme:error:alreadyRevoked"
    # ARI of a revoked cert: the window is already open
    window = client.http.get(client.directory["renewalInfo"] + "/" + cert_id(leaf)).get_json()["suggestedWindow"]
    assert window["end"] <= SystemClock().now().strftime("%Y-%m-%dT%H:%M:%SZ")


def test_revoke_with_certificate_key(client: ACMETestClient, responder: HTTP01Responder, store) -> None:  # type: ignore[no-untyped-def]
    client.register()
    r = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    order = r.get_json()
    _validate_all(client, order, responder)
    cert_key, csr = make_csr(["127.0.0.1"])
    order = client.post(order["finalize"], {"csr": b64(csr)}).get_json()
    leaf = x509.load_pem_x509_certificates(client.post(order["certificate"], None).data)[0]
    der = b64(leaf.public_bytes(serialization.Encoding.DER))
    stranger = ec.generate_private_key(ec.SECP256R1())
    r = client.post(client.directory["revokeCert"], {"certificate": der}, key=stranger, kid=None)
    assert r.status_code == 403
    assert r.get_json()["type"].endswith(":unauthorized")
    r = client.post(client.directory["revokeCert"], {"certificate": der, "reason": 1}, key=cert_key, kid=None)
    assert r.status_code == 200, r.get_json()
    assert store.get_revocation(str(leaf.serial_number)).reason_code == 1


def test_other_account_cannot_revoke_or_read(app, client: ACMETestClient, responder: HTTP01Responder) -> None:  # type: ignore[no-untyped-def]
    client.register()
    _, order = issue(client, responder, [{"type": "ip", "value": "127.0.0.1"}])
    other = ACMETestClient(app)
    other.register()
    r = other.post(order["certificate"], None)
    assert r.status_code == 404
    leaf = x509.load_pem_x509_certificates(client.post(order["certificate"], None).data)[0]
    r = other.post(
        other.directory["revokeCert"],
        {"certificate": b64(leaf.public_bytes(serialization.Encoding.DER))},
    )
    assert r.status_code == 403


def test_dns01_wildcard_with_challtestsrv(client: ACMETestClient, responder: HTTP01Responder, challtestsrv) -> None:  # type: ignore[no-untyped-def]
    client.register()
    names = [
        {"type": "dns", "value": "*.wild.example.com"},
        {"type": "dns", "value": "wild.example.com"},
    ]
    r = client.post(client.directory["newOrder"], {"identifiers": names})
    order = r.get_json()
    authzs = [client.post(u, None).get_json() for u in order["authorizations"]]
    wild = next(a for a in authzs if a.get("wildcard"))
    assert [c["type"] for c in wild["challenges"]] == ["dns-01"]
    assert wild["identifier"]["value"] == "wild.example.com"
    _validate_all(client, order, responder, "dns-01", challtestsrv)
    _, csr = make_csr(["*.wild.example.com", "wild.example.com"])
    r = client.post(order["finalize"], {"csr": b64(csr)})
    assert r.get_json()["status"] == "valid"


def test_http01_dns_name_resolved_by_configured_resolver(
    client: ACMETestClient, responder: HTTP01Responder, challtestsrv
) -> None:  # type: ignore[no-untyped-def]
    client.register()
    issue(client, responder, [{"type": "dns", "value": "www.example.com"}])


def test_failed_validation_invalidates_order(client: ACMETestClient, responder: HTTP01Responder) -> None:
    client.register()
    order_r = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    order = order_r.get_json()
    authz = client.post(order["authorizations"][0], None).get_json()
    ch = next(c for c in authz["challenges"] if c["type"] == "http-01")
    responder.tokens[ch["token"]] = "wrong"
    r = client.post(ch["url"], {})
    body = r.get_json()
    assert body["status"] == "invalid"
    assert body["error"]["type"].endswith(":incorrectResponse")
    order = client.post(order_r.headers["Location"], None).get_json()
    assert order["status"] == "invalid"
    _, csr = make_csr(["127.0.0.1"])
    r = client.post(order["finalize"], {"csr": b64(csr)})
    assert r.status_code == 403 and r.get_json()["type"].endswith(":orderNotReady")


def test_account_lookup_update_deactivate(client: ACMETestClient) -> None:
    r = client.post(client.directory["newAccount"], {"onlyReturnExisting": True}, kid=None)
    assert r.status_code == 400 and r.get_json()["type"].endswith(":accountDoesNotExist")
    assert client.register().status_code == 201
    r = client.post(client.directory["newAccount"], {"onlyReturnExisting": True}, kid=None)
    assert r.status_code == 200 and r.headers["Location"] == client.kid
    assert client.register().status_code == 200  # same key -> existing account
    r = client.post(client.kid, {"contact": ["mailto:new@example.org"]})
    assert r.get_json()["contact"] == ["mailto:new@example.org"]
    r = client.post(client.kid, {"status": "deactivated"})
    assert r.get_json()["status"] == "deactivated"
    r = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
    assert r.status_code == 401 and r.get_json()["type"].endswith(":unauthorized")


def test_key_change(app, client: ACMETestClient) -> None:  # type: ignore[no-untyped-def]
    client.register()
    old_key = client.key
    new_key = ec.generate_private_key(ec.SECP256R1())
    url = client.directory["keyChange"]
    inner = make_jws(new_key, url, {"account": client.kid, "oldKey": jwk_of(old_key)}, nonce=None)
    r = client.post(url, inner)
    assert r.status_code == 200, r.get_json()
    client.key = new_key
    assert client.post(client.kid, None).status_code == 200
    r = client.post(client.kid, None, key=old_key)
    assert r.status_code == 400 and r.get_json()["type"].endswith(":malformed")
    # the new key is now taken: another account cannot roll over to it
    other = ACMETestClient(app)
    other.register()
    inner = make_jws(new_key, url, {"account": other.kid, "oldKey": jwk_of(other.key)}, nonce=None)
    r = other.post(url, inner)
    assert r.status_code == 409 and r.headers["Location"] == client.kid
    # the old key is free again for a new account
    fresh = ACMETestClient(app, key=old_key)
    assert fresh.register().status_code == 201


def test_eab_required_and_bound_once(app, store) -> None:  # type: ignore[no-untyped-def]
    c = ACMETestClient(app, base="http://localhost/acme/eab")
    assert c.directory["meta"]["externalAccountRequired"] is True
    r = c.register()
    assert r.status_code == 401 and r.get_json()["type"].endswith(":externalAccountRequired")
    kid, hmac_key = eab.add_key(store, SystemClock(), provisioner="eab", reference="ref1")

    def binding(client: ACMETestClient, key: str = hmac_key, k: str = kid) -> dict:
        import hmac as hm

        prot = b64(f'{{"alg":"HS256","kid":"{k}","url":"{client.directory["newAccount"]}"}}'.encode())
        import json

        payload = b64(json.dumps(jwk_of(client.key)).encode())
        raw = base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))
        sig = hm.new(raw, f"{prot}.{payload}".encode(), hashlib.sha256).digest()
        return {"protected": prot, "payload": payload, "signature": b64(sig)}

    bad = binding(c, key=b64(b"x" * 32))
    r = c.register(externalAccountBinding=bad)
    assert r.status_code == 403 and r.get_json()["type"].endswith(":unauthorized")
    r = c.register(externalAccountBinding=binding(c))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["externalAccountBinding"]["protected"]
    listed = eab.list_keys(store, provisioner="eab")
    assert listed[0].account_id and listed[0].bound_at
    c2 = ACMETestClient(app, base="http://localhost/acme/eab")
    r = c2.register(externalAccountBinding=binding(c2))
    assert r.status_code == 403  # already bound
    kid2, key2 = eab.add_key(store, SystemClock(), provisioner="eab")
    assert eab.remove_key(store, kid2)
    r = c2.register(externalAccountBinding=binding(c2, key2, kid2))
    assert r.status_code == 403  # removed


def test_replaces_and_already_replaced(client: ACMETestClient, responder: HTTP01Responder, store) -> None:  # type: ignore[no-untyped-def]
    client.register()
    ip = [{"type": "ip", "value": "127.0.0.1"}]
    _, order = issue(client, responder, ip)
    leaf = x509.load_pem_x509_certificates(client.post(order["certificate"], None).data)[0]
    _, order2 = issue(client, responder, ip, replaces=cert_id(leaf))
    assert order2["replaces"] == cert_id(leaf)
    leaf2 = x509.load_pem_x509_certificates(client.post(order2["certificate"], None).data)[0]
    assert store.get_certificate(str(leaf2.serial_number)).renewed_from == str(leaf.serial_number)
    r = client.post(client.directory["newOrder"], {"identifiers": ip, "replaces": cert_id(leaf)})
    assert r.status_code == 409 and r.get_json()["type"].endswith(":alreadyReplaced")


def test_authz_deactivation(client: ACMETestClient) -> None:
    client.register()
    order = client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]}
    ).get_json()
    r = client.post(order["authorizations"][0], {"status": "deactivated"})
    assert r.get_json()["status"] == "deactivated"
