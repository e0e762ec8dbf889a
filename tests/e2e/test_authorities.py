"""Several issuing authorities in one deployment (issue 16, item 3): choosing the authority, chains, config.

By provisioner at the default mount and by URL prefix; `certChain`/`ca` up to, not including,
the root for each; renew, rekey and revoke at the issuing authority; ACME by provisioner and
prefix; one clear line for each config or ceremony mistake. The hierarchy is in multi_authority.py.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.errors import ConfigError
from shared.runtime import build_services
from tests.e2e.multi_authority import (
    Deployment,
    cert_of,
    cirrus_up,
    config_of,
    crt_of,
    openssl_verify,
    pem,
    sign_and_key,
    sign_at,
    token_for,
)
from tests.helpers import AUDIENCE_HOST, make_csr


def test_each_authority_signs_with_its_chain_by_provisioner_and_by_prefix(deployment: Deployment, tmp_path: Path) -> None:
    dep = deployment
    cases = [("admin", "default", ""), ("teams-admin", "teams", ""), ("deep-admin", "deep", ""),
             ("teams-admin", "teams", "/teams"), ("deep-admin", "deep", "/deep")]  # fmt: skip
    for provisioner, authority, prefix in cases:
        body = sign_at(dep, provisioner, f"{authority}.example.com", prefix=prefix)
        leaf = cert_of(body["crt"])
        assert leaf.issuer == crt_of(dep.issuers[authority]).subject, (provisioner, prefix)
        # certChain: the leaf and every intermediate up to, not including, the root; `ca` the first of them.
        expected = x509.load_pem_x509_certificates(dep.chains[authority].read_bytes())
        assert [cert_of(p) for p in body["certChain"]] == [leaf, *expected]
        assert cert_of(body["ca"]) == expected[0]
        out = openssl_verify(dep, body["crt"], dep.chains[authority], tmp_path)
        assert out.returncode == 0, out.stdout + out.stderr
        try:
            aia = list(leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value)
        except x509.ExtensionNotFound:
            aia = []
        issuers = [d.access_location.value for d in aia if d.access_method == x509.AuthorityInformationAccessOID.CA_ISSUERS]
        assert issuers == ([] if authority == "default" else [f"http://ca.test/{authority}.crt"])
        cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        aid = dep.services.settings.authority_id if authority == "default" else authority
        assert cdp[0].full_name == [x509.UniformResourceIdentifier(f"http://ca.test/crl/{aid}.crl")]
        record = dep.services.store.get_certificate(str(leaf.serial_number))
        assert record is not None and record.authority_id == aid


def test_a_prefix_serves_only_its_authority(deployment: Deployment) -> None:
    dep = deployment
    root = crt_of(dep.root)
    deep_chain = x509.load_pem_x509_certificates(dep.chains["deep"].read_bytes())
    for prefix in ("/deep", "/deep/1.0"):
        assert [cert_of(p) for p in dep.api.get(f"{prefix}/intermediates").get_json()["crts"]] == deep_chain
        assert [cert_of(p) for p in dep.api.get(f"{prefix}/roots").get_json()["crts"]] == [root]
        assert [cert_of(p) for p in dep.api.get(f"{prefix}/federation").get_json()["crts"]] == [root]
    pem = dep.api.get("/deep/intermediates.pem")
    assert x509.load_pem_x509_certificates(pem.data) == deep_chain
    assert [cert_of(p) for p in dep.api.get("/intermediates").get_json()["crts"]] == [crt_of(dep.issuers["default"])]
    names = [p["name"] for p in dep.api.get("/teams/provisioners").get_json()["provisioners"]]
    assert names == ["teams-admin"]
    every = [p["name"] for p in dep.api.get("/provisioners").get_json()["provisioners"]]
    assert {"admin", "teams-admin", "deep-admin"} <= set(every)
    # Another authority's provisioner is unknown at a prefix: step-ca's 401.
    csr, _ = make_csr("x.example.com", ["x.example.com"])
    wrong = dep.api.post("/teams/sign", json={"csr": csr, "ott": token_for(dep, "deep-admin", "x.example.com")})
    assert wrong.status_code == 401 and wrong.get_json()["status"] == 401
    # A prefix no authority has: the step-ca 404 JSON.
    for path in ("/nope/sign", "/nope/roots", "/teams/nope"):
        missing = dep.api.post(path, json={}) if path.endswith("sign") else dep.api.get(path)
        assert missing.status_code == 404, path
        assert missing.get_json() == {"status": 404, "message": "The requested resource could not be found."}


def test_renew_and_rekey_go_to_the_authority_that_issued(deployment: Deployment, tmp_path: Path) -> None:
    dep = deployment
    body = sign_at(dep, "deep-admin", "renew.example.com")
    leaf_pem = body["crt"]
    # mTLS at the default mount (as `cirrus up`'s TLS layer hands it over).
    renewed = dep.api.post("/renew", environ_base={"SSL_CLIENT_CERT": leaf_pem})
    assert renewed.status_code == 201, renewed.text
    new = renewed.get_json()
    assert cert_of(new["crt"]).issuer == crt_of(dep.issuers["deep"]).subject
    assert len(new["certChain"]) == 3
    assert openssl_verify(dep, new["crt"], dep.chains["deep"], tmp_path).returncode == 0
    csr, _ = make_csr("renew.example.com", ["renew.example.com"])
    rekeyed = dep.api.post("/rekey", json={"csr": csr}, environ_base={"SSL_CLIENT_CERT": new["crt"]})
    assert rekeyed.status_code == 201, rekeyed.text
    assert cert_of(rekeyed.get_json()["crt"]).issuer == crt_of(dep.issuers["deep"]).subject
    # A renew token (x5cInsecure, signed by the certificate's key) at the prefix names its audience there.
    key = sign_and_key(dep, "teams-admin", "bearer.example.com")
    leaf, leaf_key = key
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in (leaf, crt_of(dep.issuers["teams"]))]
    now = int(time.time())
    token = jwt.encode({"sub": "bearer.example.com", "aud": f"https://{AUDIENCE_HOST}/teams/1.0/renew", "iat": now,
                        "nbf": now, "exp": now + 300, "jti": "j1"}, leaf_key, algorithm="ES256",
                       headers={"x5cInsecure": x5c})  # fmt: skip
    by_token = dep.api.post("/teams/renew", headers={"Authorization": f"Bearer {token}"})
    assert by_token.status_code == 201, by_token.text
    assert cert_of(by_token.get_json()["crt"]).issuer == crt_of(dep.issuers["teams"]).subject
    # The same certificate presented at another authority's prefix is not that authority's to renew.
    elsewhere = dep.api.post("/deep/renew", environ_base={"SSL_CLIENT_CERT": pem(leaf).decode()})
    assert elsewhere.status_code in (401, 404), elsewhere.text


def test_revoking_another_authoritys_certificate_is_refused(deployment: Deployment) -> None:
    dep = deployment
    leaf, _ = sign_and_key(dep, "deep-admin", "other.example.com")
    serial = str(leaf.serial_number)
    # teams' provisioner cannot revoke deep's certificate, at the default mount or at its prefix.
    for path, prefix in (("/revoke", ""), ("/teams/revoke", "/teams")):
        ott = token_for(dep, "teams-admin", serial, op="revoke", prefix=prefix)
        answer = dep.api.post(path, json={"serial": serial, "ott": ott, "passive": True})
        assert answer.status_code == 404, answer.text


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["authorities"].append(dict(c["authorities"][0])), "used twice"),
        (lambda c: c["authorities"][1].update(prefix="teams"), "prefix 'teams' is used twice"),
        (lambda c: c["authorities"][1].update(prefix="acme"), "route the CA already serves"),
        (lambda c: c["authorities"][1]["provisioners"][0].update(name="admin"), "already belongs"),
        (lambda c: c["authorities"][1].update(prefix="Has/Slash"), "one lowercase URL path segment"),
    ],
)
def test_config_mistakes_are_one_clear_line(deployment: Deployment, change: Any, message: str) -> None:
    config = config_of(deployment.dir)
    change(config)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_mapping(config, base_dir=deployment.dir)


def test_a_chain_off_the_root_and_a_wrong_key_are_refused(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment.dir
    config = config_of(d)
    deep = config["authorities"][1]
    # Without the mid CA the deep chain does not reach the root: refused when the services are built.
    deep["crt"] = str(deployment.issuers["deep"])
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="authority 'deep': its chain does not lead to a configured root"):
        build_services(Settings.load(d / "config.json"))
    # teams' certificate with deep's key: refused when the key is first opened.
    config = config_of(d)
    config["authorities"][1]["crt"] = config["authorities"][0]["crt"]
    (d / "config.json").write_text(json.dumps(config))
    services = build_services(Settings.load(d / "config.json"))
    try:
        from shared.authorities import hosted

        with pytest.raises(ConfigError, match="authority 'deep': the key does not match its certificate"):
            hosted(services).by_id("deep").authority()  # type: ignore[union-attr]
    finally:
        services.close()
    # `cirrus up` opens every authority's key before serving, and says so in one line.
    run = cirrus_up(d)
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1, run.stderr
    assert "authority 'deep': the key does not match its certificate" in lines[0]


def test_cirrus_up_refuses_a_bad_authorities_block_in_one_line(deployment: Deployment) -> None:
    config = config_of(deployment.dir)
    config["authorities"][1]["prefix"] = "teams"
    (deployment.dir / "config.json").write_text(json.dumps(config))
    run = cirrus_up(deployment.dir)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "prefix 'teams' is used twice" in lines[0], run.stderr


def test_acme_orders_are_signed_by_their_provisioners_authority(deployment: Deployment, tmp_path: Path) -> None:
    from tests.unit.acme.acme_support import ACMETestClient, HTTP01Responder, b64
    from tests.unit.acme.acme_support import make_csr as acme_csr

    responder = HTTP01Responder()
    config = config_of(deployment.dir)
    config["authorities"][1]["provisioners"].append({"type": "ACME", "name": "deep-acme", "cirrus": {
        "allowLoopback": True, "validationTimeout": 3, "http01Port": responder.port}})  # fmt: skip
    (deployment.dir / "config.json").write_text(json.dumps(config))
    services = build_services(Settings.load(deployment.dir / "config.json"))
    try:
        client = ACMETestClient(CirrusApp(services, mounts=default_mounts(services)),
                                base="http://localhost/acme/deep-acme")  # fmt: skip
        assert client.register().status_code == 201
        order = client.post(client.directory["newOrder"], {"identifiers": [{"type": "ip", "value": "127.0.0.1"}]})
        assert order.status_code == 201, order.get_json()
        authz = client.post(order.get_json()["authorizations"][0], None).get_json()
        challenge = next(c for c in authz["challenges"] if c["type"] == "http-01")
        responder.tokens[challenge["token"]] = client.key_authorization(challenge["token"])
        assert client.post(challenge["url"], {}).get_json()["status"] == "valid"
        _, csr = acme_csr(["127.0.0.1"])
        final = client.post(order.get_json()["finalize"], {"csr": b64(csr)})
        assert final.status_code == 200, final.get_json()
        chain = x509.load_pem_x509_certificates(client.post(final.get_json()["certificate"], None).data)
        # The leaf from deep's key, then deep and the mid CA: the whole chain up to the root.
        assert chain[1:] == x509.load_pem_x509_certificates(deployment.chains["deep"].read_bytes())
        assert chain[0].issuer == crt_of(deployment.issuers["deep"]).subject
        assert openssl_verify(deployment, pem(chain[0]).decode(), deployment.chains["deep"], tmp_path).returncode == 0
        # The same provisioner under deep's prefix: every URL the server hands out stays there.
        prefixed = ACMETestClient(client.http.application, base="http://localhost/deep/acme/deep-acme")
        assert prefixed.directory["newOrder"] == "http://localhost/deep/acme/deep-acme/new-order"
        assert prefixed.register().status_code == 201
        assert prefixed.kid is not None and prefixed.kid.startswith("http://localhost/deep/acme/deep-acme/")
        # Another authority's prefix does not serve deep's ACME provisioner.
        assert client.http.get("/teams/acme/deep-acme/directory").status_code == 404
    finally:
        responder.close()
        services.close()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--authority", "people", "--prefix", "acme"], "prefix 'acme' is a route the CA already serves"),
        (["--authority", "teams", "--prefix", "deep"], "prefix 'deep' is used twice"),
        (["--prefix", "people"], "--prefix needs --authority"),
        (["--authority", "people", "--chain", "MID"], "is not issued by"),
    ],
)
def test_install_authority_mistakes_are_one_clear_line(deployment: Deployment, extra: list[str], message: str) -> None:
    before = (deployment.dir / "config.json").read_text()
    extra = [str(deployment.chains["deep"]) if e == "MID" else e for e in extra]  # teams is not under the mid CA
    run = subprocess.run(
        [sys.executable, "-m", "shared.cli", "ca", "install", "--dir", str(deployment.dir), "--cert",
         str(deployment.issuers["teams"]), "--kms", "softkms:path=secrets/teams_key", *extra],
        capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1 and message in lines[0], run.stderr
    assert (deployment.dir / "config.json").read_text() == before  # nothing written
