"""Renew (mTLS and Bearer), rekey, revoke, endpoints and the read-only routes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.cli.client import renew_bearer_token
from shared.clock import FixedClock
from shared.config import Settings
from shared.endpoints import describe
from shared.runtime import build_services
from tests.helpers import make_csr, mint_sign_token, mint_token, sign_claims


def issue(api, authority_dir: Path, name: str = "svc.example.com", **extra):
    csr, key = make_csr(name)
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name, **extra)})
    assert r.status_code == 201, r.text
    return x509.load_pem_x509_certificate(r.get_json()["crt"].encode()), key, r.get_json()


def mtls(cert: x509.Certificate) -> dict[str, str]:
    return {"SSL_CLIENT_CERT": cert.public_bytes(serialization.Encoding.PEM).decode()}


def test_mtls_renew_keeps_subject_and_endpoint(api, services, authority_dir: Path) -> None:
    cert, _, _ = issue(api, authority_dir)
    r = api.post("/1.0/renew", environ_overrides=mtls(cert))
    assert r.status_code == 201, r.text
    new = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    assert new.serial_number != cert.serial_number
    assert new.subject == cert.subject and new.public_key() == cert.public_key()
    assert new.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ) == cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    old_rec = services.store.get_certificate(str(cert.serial_number))
    new_rec = services.store.get_certificate(str(new.serial_number))
    assert new_rec.endpoint_id == old_rec.endpoint_id and new_rec.renewed_from == old_rec.serial
    view = describe(
        services.store.get_endpoint(new_rec.endpoint_id),
        certificates=services.store,
        revocations=services.store,
        now=services.clock.now(),
    )
    assert [e.record.serial for e in view.lineage] == [old_rec.serial, new_rec.serial]


def test_bearer_renew_and_replay(api, authority_dir: Path, tmp_path: Path) -> None:
    cert, key, body = issue(api, authority_dir)
    crt = tmp_path / "c.pem"
    crt.write_text("".join(body["certChain"]))
    keyf = tmp_path / "k.pem"
    keyf.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    token = renew_bearer_token(crt, keyf, "https://127.0.0.1:9443/1.0/renew")
    r = api.post("/1.0/renew", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 201, r.text
    r = api.post("/1.0/renew", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and r.get_json()["message"] == "token already used"
    # A token signed by another key with the same x5c chain fails.
    other = tmp_path / "o.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    r = api.post(
        "/1.0/renew",
        headers={"Authorization": f"Bearer {renew_bearer_token(crt, other, 'https://127.0.0.1:9443/1.0/renew')}"},
    )
    assert r.status_code == 401
    assert api.post("/1.0/renew").status_code == 401


def test_rekey_uses_new_key(api, authority_dir: Path) -> None:
    cert, _, _ = issue(api, authority_dir)
    csr, newkey = make_csr("svc.example.com")
    r = api.post("/1.0/rekey", json={"csr": csr}, environ_overrides=mtls(cert))
    assert r.status_code == 201, r.text
    new = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    assert new.public_key() == newkey.public_key()
    assert api.post("/1.0/rekey", json={"csr": csr}).status_code == 401


def test_revoke_by_token_then_renew_refused(api, authority_dir: Path) -> None:
    cert, _, _ = issue(api, authority_dir)
    serial = str(cert.serial_number)
    tok = mint_token(authority_dir, sign_claims(serial, None, op="revoke"))
    r = api.post("/1.0/revoke", json={"serial": serial, "ott": tok, "passive": True, "reasonCode": 1})
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}
    tok = mint_token(authority_dir, sign_claims(serial, None, op="revoke"))
    r = api.post("/1.0/revoke", json={"serial": hex(cert.serial_number), "ott": tok, "passive": True})
    assert r.status_code == 400 and "already revoked" in r.get_json()["message"]
    r = api.post("/1.0/renew", environ_overrides=mtls(cert))
    assert r.status_code == 401 and r.get_json()["message"] == "certificate has been revoked"


def test_revoke_rules(api, authority_dir: Path) -> None:
    cert, _, _ = issue(api, authority_dir)
    other, _, _ = issue(api, authority_dir, "other.example.com")
    serial = str(cert.serial_number)
    tok = lambda sub: mint_token(authority_dir, sign_claims(sub, None, op="revoke"))  # noqa: E731
    assert api.post("/1.0/revoke", json={"serial": serial, "ott": tok(serial), "passive": False}).status_code == 501
    assert (
        api.post(
            "/1.0/revoke", json={"serial": serial, "ott": tok(serial), "passive": True, "reasonCode": 6}
        ).status_code
        == 400
    )
    assert (
        api.post(
            "/1.0/revoke", json={"serial": serial, "ott": tok(serial), "passive": True, "reasonCode": 11}
        ).status_code
        == 400
    )
    assert api.post("/1.0/revoke", json={"serial": serial, "ott": tok("123"), "passive": True}).status_code == 403
    assert api.post("/1.0/revoke", json={"serial": "12345", "ott": tok("12345"), "passive": True}).status_code == 404
    assert api.post("/1.0/revoke", json={"serial": "zz", "ott": tok("zz"), "passive": True}).status_code == 400
    # A sign token cannot revoke.
    assert (
        api.post(
            "/1.0/revoke",
            json={"serial": serial, "ott": mint_token(authority_dir, sign_claims(serial, None)), "passive": True},
        ).status_code
        == 401
    )
    # mTLS: only the certificate's own serial.
    r = api.post(
        "/1.0/revoke", json={"serial": str(other.serial_number), "passive": True}, environ_overrides=mtls(cert)
    )
    assert r.status_code == 403
    r = api.post("/1.0/revoke", json={"serial": serial, "passive": True}, environ_overrides=mtls(cert))
    assert r.status_code == 200


def _services_with(
    authority_dir: Path, claims: dict, clock: FixedClock | None = None, extra_provisioner: dict | None = None
):
    cfg = json.loads((authority_dir / "config.json").read_text())
    cfg["authority"]["provisioners"][0]["claims"] = claims
    if extra_provisioner:
        cfg["authority"]["provisioners"].append(extra_provisioner)
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    return build_services(Settings.load(authority_dir / "config.json"), clock=clock)


def test_disable_renewal_groups_by_subject(authority_dir: Path) -> None:
    s = _services_with(authority_dir, {"disableRenewal": True})
    api = Client(CirrusApp(s))
    a, _, _ = issue(api, authority_dir, "same.example.com")
    b, _, _ = issue(api, authority_dir, "same.example.com")
    c, _, _ = issue(api, authority_dir, "different.example.com")
    ra, rb, rc = (s.store.get_certificate(str(x.serial_number)) for x in (a, b, c))
    assert ra.endpoint_id == rb.endpoint_id != rc.endpoint_id
    r = api.post("/1.0/renew", environ_overrides=mtls(a))
    assert r.status_code == 401 and "renew is disabled" in r.get_json()["message"]
    created = [e for e in s.store.list_events(limit=1000) if e.type.endswith("endpoint.created")]
    assert len(created) == 2
    s.close()


def test_renewal_enabled_sign_creates_new_endpoints(api, services, authority_dir: Path) -> None:
    a, _, _ = issue(api, authority_dir, "same.example.com")
    b, _, _ = issue(api, authority_dir, "same.example.com")
    ra, rb = (services.store.get_certificate(str(x.serial_number)) for x in (a, b))
    assert ra.endpoint_id != rb.endpoint_id


def test_renew_after_expiry_needs_the_claim(authority_dir: Path) -> None:
    clock = FixedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    for allow, want in ((False, 401), (True, 201)):
        s = _services_with(authority_dir, {"allowRenewalAfterExpiry": allow}, clock)
        api = Client(CirrusApp(s))
        clock.set(dt.datetime.now(dt.UTC).replace(microsecond=0))
        cert, _, _ = issue(api, authority_dir, f"exp{allow}.example.com")
        clock.advance(dt.timedelta(hours=25))
        r = api.post("/1.0/renew", environ_overrides=mtls(cert))
        assert r.status_code == want, r.text
        s.close()


def test_read_routes(api, authority_dir: Path) -> None:
    root = x509.load_pem_x509_certificate((authority_dir / "certs" / "root_ca.crt").read_bytes())
    fp = hashlib.sha256(root.public_bytes(serialization.Encoding.DER)).hexdigest()
    for prefix in ("", "/1.0"):
        assert api.get(f"{prefix}/health").get_json() == {"status": "ok"}
        assert api.get(f"{prefix}/root/{fp}").status_code == 200
        assert api.get(f"{prefix}/root/{'0' * 64}").status_code == 404
        assert api.get(f"{prefix}/roots").status_code == 201
        assert api.get(f"{prefix}/intermediates").status_code == 201
        assert api.get(f"{prefix}/federation").status_code == 201
        assert api.get(f"{prefix}/roots.pem").data.startswith(b"-----BEGIN CERTIFICATE-----")
    assert api.head("/health").status_code == 200
    r = api.get("/provisioners?limit=1")
    body = r.get_json()
    assert len(body["provisioners"]) == 1 and body["nextCursor"]
    r2 = api.get(f"/provisioners?limit=1&cursor={body['nextCursor']}").get_json()
    assert r2["provisioners"][0]["type"] == "ACME" and r2["nextCursor"]
    r3 = api.get(f"/provisioners?limit=1&cursor={r2['nextCursor']}").get_json()
    assert r3["provisioners"][0]["type"] == "SSHPOP" and r3["nextCursor"] == ""  # `cirrus init` adds it for SSH
    assert api.get("/provisioners?limit=abc").status_code == 400
    assert api.get("/provisioners?cursor=zzzz").status_code == 400
    kid = body["provisioners"][0]["key"]["kid"]
    assert api.get(f"/provisioners/{kid}/encrypted-key").get_json()["key"].count(".") == 4
    assert api.get("/provisioners/nope/encrypted-key").status_code == 404
    assert api.get("/nope").status_code == 404
    assert api.get("/sign").status_code == 405


def test_encrypted_key_decrypts_to_the_provisioner_key(authority_dir: Path) -> None:
    from shared.jose import decrypt_jwk

    cfg = json.loads((authority_dir / "config.json").read_text())
    enc = cfg["authority"]["provisioners"][0]["encryptedKey"]
    password = (authority_dir / "secrets" / "password").read_bytes().strip()
    private = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())
    assert decrypt_jwk(enc, password) == private
    with pytest.raises(ValueError):
        decrypt_jwk(enc, b"wrong")


def test_acme_provisioner_rejects_token_flow(api, authority_dir: Path) -> None:
    csr, _ = make_csr("a.example.com")
    tok = mint_token(authority_dir, {**sign_claims("a.example.com", None), "iss": "acme"})
    r = api.post("/1.0/sign", json={"csr": csr, "ott": tok})
    assert r.status_code == 400 and r.get_json()["message"] == "token flow is not supported"


def test_events_reach_the_log_sink_without_secrets(api, authority_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="cirrus.events")
    cert, _, _ = issue(api, authority_dir, "ev.example.com")
    # One record per publish, one JSON line per event.
    lines = [json.loads(line) for r in caplog.records if r.name == "cirrus.events" for line in r.getMessage().splitlines()]
    types = [e["type"] for e in lines]
    assert types == ["dev.cirrus.certificate.issued", "dev.cirrus.endpoint.created"]
    assert lines[0]["data"]["serial"] == str(cert.serial_number) and lines[0]["specversion"] == "1.0"
    blob = json.dumps(lines)
    assert "PRIVATE" not in blob and '"d"' not in blob and "ott" not in blob


def test_aia_cdp_and_publish_on_revoke(authority_dir: Path) -> None:
    cfg = json.loads((authority_dir / "config.json").read_text())
    cfg["crl"].update({
        "baseURL": "http://crl.example.test", "ocspURL": "http://ocsp.example.test/ocsp",
        "caIssuersURL": "http://ca.example.test/intermediate.crt", "publishOnRevoke": True,
    })
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    s = build_services(Settings.load(authority_dir / "config.json"))
    api = Client(CirrusApp(s))
    cert, _, _ = issue(api, authority_dir, "aia.example.com")
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == ["http://ocsp.example.test/ocsp", "http://ca.example.test/intermediate.crt"]
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert cdp[0].full_name[0].value.startswith("http://crl.example.test/")
    serial = str(cert.serial_number)
    r = api.post("/1.0/revoke", json={"serial": serial, "ott": mint_token(authority_dir, sign_claims(serial, None, op="revoke")), "passive": True})
    assert r.status_code == 200
    crls = list((authority_dir / "published" / "crl").glob("*.crl"))
    assert crls, "publishOnRevoke wrote no CRL"
    crl = x509.load_der_x509_crl(crls[0].read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    s.close()
