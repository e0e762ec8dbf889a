"""Several issuing authorities in one deployment (issue 16, item 3), built with the ceremony commands.

One root (path length 2) and three issuing CAs under it: the default authority's
(root -> default), `teams` (root -> teams, at `/teams/`) and `deep` two levels down
(root -> mid -> deep, at `/deep/`). Relying parties are real: `openssl verify`,
`openssl crl -verify`, `openssl ocsp` against a served app.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli import main as cirrus
from shared.config import Settings
from shared.errors import ConfigError
from shared.runtime import Services, build_services
from tests.helpers import AUDIENCE_HOST, make_csr, mint_token, sign_claims


@dataclass
class Deployment:
    dir: Path
    root: Path
    issuers: dict[str, Path]  # authority -> its issuing CA certificate
    chains: dict[str, Path]  # authority -> the certificates between its leaves and the root
    services: Services
    api: Client


def _ca(*args: str) -> None:
    assert cirrus(["ca", *args]) == 0, args


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def _ceremony(_authority_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hierarchy, made once per module with the ceremony commands; each test gets a copy."""
    base = tmp_path_factory.mktemp("authorities")
    d, off = base / "ca", base / "offline"
    shutil.copytree(_authority_template, d)
    off.mkdir()
    pw = str(d / "secrets" / "password")
    root = off / "root.crt"
    _ca("root", "--kms", f"softkms:path={off}/root_key", "--create", "EC-P256", "--path-len", "2",
        "--password-file", pw, "--name", "Multi", "--out", str(root))  # fmt: skip

    def issuing(name: str, signer_uri: str, signer_cert: Path, path_len: int = 0, key_dir: Path = d / "secrets",
                days: int = 365) -> Path:
        csr, crt = off / f"{name}.csr", off / f"{name}.crt"
        _ca("intermediate-csr", "--kms", f"softkms:path={key_dir}/{name}_key", "--create", "EC-P256",
            "--password-file", pw, "--name", name.capitalize(), "--out", str(csr))  # fmt: skip
        _ca("sign-intermediate", str(csr), "--root-kms", signer_uri, "--root", str(signer_cert), "--out", str(crt),
            "--days", str(days), "--path-len", str(path_len), "--password-file", pw)  # fmt: skip
        return crt

    root_uri = f"softkms:path={off}/root_key"
    default = issuing("default", root_uri, root)
    _ca("install", "--dir", str(d), "--cert", str(default), "--kms", "softkms:path=secrets/default_key",
        "--root", str(root))  # fmt: skip
    teams = issuing("teams", root_uri, root)
    _ca("install", "--dir", str(d), "--authority", "teams", "--prefix", "teams", "--cert", str(teams),
        "--kms", "softkms:path=secrets/teams_key")  # fmt: skip
    mid = issuing("mid", root_uri, root, path_len=1, key_dir=off, days=400)
    deep = issuing("deep", f"softkms:path={off}/mid_key", mid)
    _ca("install", "--dir", str(d), "--authority", "deep", "--prefix", "deep", "--cert", str(deep),
        "--chain", str(mid), "--kms", "softkms:path=secrets/deep_key")  # fmt: skip

    config = json.loads((d / "config.json").read_text())
    admin = config["authority"]["provisioners"][0]
    by_name = {a["name"]: a for a in config["authorities"]}
    for name in ("teams", "deep"):  # each gets a JWK provisioner of its own (the test's key, another name)
        by_name[name]["provisioners"] = [{**admin, "name": f"{name}-admin"}]
        by_name[name]["caIssuersURL"] = f"http://ca.test/{name}.crt"
    config["crl"] = {**config.get("crl", {}), "baseURL": "http://ca.test"}
    (d / "config.json").write_text(json.dumps(config))

    (off / "chain-deep.crt").write_bytes(deep.read_bytes() + mid.read_bytes())
    return base


@pytest.fixture
def deployment(_ceremony: Path, tmp_path: Path) -> Iterator[Deployment]:
    shutil.copytree(_ceremony, tmp_path / "deployment")
    d, off = tmp_path / "deployment" / "ca", tmp_path / "deployment" / "offline"
    root, default, teams, deep, chain_deep = (off / f"{n}.crt" for n in ("root", "default", "teams", "deep", "chain-deep"))
    services = build_services(Settings.load(d / "config.json"))
    try:
        yield Deployment(
            dir=d, root=root, issuers={"default": default, "teams": teams, "deep": deep},
            chains={"default": default, "teams": teams, "deep": chain_deep}, services=services,
            api=Client(CirrusApp(services, mounts=default_mounts(services))),
        )  # fmt: skip
    finally:
        services.close()


def _token(dep: Deployment, provisioner: str, subject: str, *, op: str = "sign", prefix: str = "", **extra: Any) -> str:
    claims = sign_claims(subject, [subject] if op == "sign" else None, op=op, iss=provisioner, **extra)
    claims["aud"] = f"https://{AUDIENCE_HOST}{prefix}/1.0/{op}"
    return mint_token(dep.dir, claims)


def _sign(dep: Deployment, provisioner: str, name: str, *, path: str = "/1.0/sign", prefix: str = "") -> dict[str, Any]:
    csr, _ = make_csr(name, [name])
    answer = dep.api.post(prefix + path, json={"csr": csr, "ott": _token(dep, provisioner, name, prefix=prefix)})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.get_json()
    return body


def _verify(dep: Deployment, leaf_pem: str, untrusted: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(leaf_pem)
    return subprocess.run(["openssl", "verify", "-CAfile", str(dep.root), "-untrusted", str(untrusted), str(leaf)],
                          capture_output=True, text=True)  # fmt: skip


def _cert(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _crt(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_each_authority_signs_with_its_chain_by_provisioner_and_by_prefix(deployment: Deployment, tmp_path: Path) -> None:
    dep = deployment
    cases = [("admin", "default", ""), ("teams-admin", "teams", ""), ("deep-admin", "deep", ""),
             ("teams-admin", "teams", "/teams"), ("deep-admin", "deep", "/deep")]  # fmt: skip
    for provisioner, authority, prefix in cases:
        body = _sign(dep, provisioner, f"{authority}.example.com", prefix=prefix)
        leaf = _cert(body["crt"])
        assert leaf.issuer == _crt(dep.issuers[authority]).subject, (provisioner, prefix)
        # certChain: the leaf and every intermediate up to, not including, the root; `ca` the first of them.
        expected = x509.load_pem_x509_certificates(dep.chains[authority].read_bytes())
        assert [_cert(p) for p in body["certChain"]] == [leaf, *expected]
        assert _cert(body["ca"]) == expected[0]
        out = _verify(dep, body["crt"], dep.chains[authority], tmp_path)
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
    root = _crt(dep.root)
    deep_chain = x509.load_pem_x509_certificates(dep.chains["deep"].read_bytes())
    for prefix in ("/deep", "/deep/1.0"):
        assert [_cert(p) for p in dep.api.get(f"{prefix}/intermediates").get_json()["crts"]] == deep_chain
        assert [_cert(p) for p in dep.api.get(f"{prefix}/roots").get_json()["crts"]] == [root]
        assert [_cert(p) for p in dep.api.get(f"{prefix}/federation").get_json()["crts"]] == [root]
    pem = dep.api.get("/deep/intermediates.pem")
    assert x509.load_pem_x509_certificates(pem.data) == deep_chain
    assert [_cert(p) for p in dep.api.get("/intermediates").get_json()["crts"]] == [_crt(dep.issuers["default"])]
    names = [p["name"] for p in dep.api.get("/teams/provisioners").get_json()["provisioners"]]
    assert names == ["teams-admin"]
    every = [p["name"] for p in dep.api.get("/provisioners").get_json()["provisioners"]]
    assert {"admin", "teams-admin", "deep-admin"} <= set(every)
    # Another authority's provisioner is unknown at a prefix: step-ca's 401.
    csr, _ = make_csr("x.example.com", ["x.example.com"])
    wrong = dep.api.post("/teams/sign", json={"csr": csr, "ott": _token(dep, "deep-admin", "x.example.com")})
    assert wrong.status_code == 401 and wrong.get_json()["status"] == 401
    # A prefix no authority has: the step-ca 404 JSON.
    for path in ("/nope/sign", "/nope/roots", "/teams/nope"):
        missing = dep.api.post(path, json={}) if path.endswith("sign") else dep.api.get(path)
        assert missing.status_code == 404, path
        assert missing.get_json() == {"status": 404, "message": "The requested resource could not be found."}


def test_renew_and_rekey_go_to_the_authority_that_issued(deployment: Deployment, tmp_path: Path) -> None:
    dep = deployment
    body = _sign(dep, "deep-admin", "renew.example.com")
    leaf_pem = body["crt"]
    # mTLS at the default mount (as `cirrus up`'s TLS layer hands it over).
    renewed = dep.api.post("/renew", environ_base={"SSL_CLIENT_CERT": leaf_pem})
    assert renewed.status_code == 201, renewed.text
    new = renewed.get_json()
    assert _cert(new["crt"]).issuer == _crt(dep.issuers["deep"]).subject
    assert len(new["certChain"]) == 3
    assert _verify(dep, new["crt"], dep.chains["deep"], tmp_path).returncode == 0
    csr, _ = make_csr("renew.example.com", ["renew.example.com"])
    rekeyed = dep.api.post("/rekey", json={"csr": csr}, environ_base={"SSL_CLIENT_CERT": new["crt"]})
    assert rekeyed.status_code == 201, rekeyed.text
    assert _cert(rekeyed.get_json()["crt"]).issuer == _crt(dep.issuers["deep"]).subject
    # A renew token (x5cInsecure, signed by the certificate's key) at the prefix names its audience there.
    key = _sign_and_key(dep, "teams-admin", "bearer.example.com")
    leaf, leaf_key = key
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in (leaf, _crt(dep.issuers["teams"]))]
    now = int(time.time())
    token = jwt.encode({"sub": "bearer.example.com", "aud": f"https://{AUDIENCE_HOST}/teams/1.0/renew", "iat": now,
                        "nbf": now, "exp": now + 300, "jti": "j1"}, leaf_key, algorithm="ES256",
                       headers={"x5cInsecure": x5c})  # fmt: skip
    by_token = dep.api.post("/teams/renew", headers={"Authorization": f"Bearer {token}"})
    assert by_token.status_code == 201, by_token.text
    assert _cert(by_token.get_json()["crt"]).issuer == _crt(dep.issuers["teams"]).subject
    # The same certificate presented at another authority's prefix is not that authority's to renew.
    elsewhere = dep.api.post("/deep/renew", environ_base={"SSL_CLIENT_CERT": _pem(leaf).decode()})
    assert elsewhere.status_code in (401, 404), elsewhere.text


def _sign_and_key(dep: Deployment, provisioner: str, name: str) -> tuple[x509.Certificate, Any]:
    csr, key = make_csr(name, [name])
    answer = dep.api.post("/sign", json={"csr": csr, "ott": _token(dep, provisioner, name)})
    assert answer.status_code == 201, answer.text
    return _cert(answer.get_json()["crt"]), key


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(deployment: Deployment) -> Iterator[str]:
    app = CirrusApp(deployment.services, mounts=default_mounts(deployment.services))
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_crls_and_ocsp_per_authority(deployment: Deployment, served: str, tmp_path: Path) -> None:
    from shared.cli.crl import run_publish

    dep = deployment
    leaves: dict[str, dict[str, x509.Certificate]] = {}
    for provisioner, authority in (("admin", "default"), ("teams-admin", "teams"), ("deep-admin", "deep")):
        leaves[authority] = {
            state: _sign_and_key(dep, provisioner, f"{state}.{authority}.example.com")[0] for state in ("good", "revoked")
        }
        serial = str(leaves[authority]["revoked"].serial_number)
        ott = _token(dep, provisioner, serial, op="revoke")
        answer = dep.api.post("/revoke", json={"serial": serial, "ott": ott, "reasonCode": 1, "passive": True})
        assert answer.status_code == 200, answer.text
    run_publish(dep.services)

    ids = {"default": dep.services.settings.authority_id, "teams": "teams", "deep": "deep"}
    for authority, aid in ids.items():
        der = (dep.dir / "published" / "crl" / f"{aid}.crl").read_bytes()
        crl = x509.load_der_x509_crl(der)
        assert crl.issuer == _crt(dep.issuers[authority]).subject
        assert [r.serial_number for r in crl] == [leaves[authority]["revoked"].serial_number], authority
        (tmp_path / f"{authority}.crl").write_bytes(der)
        trust = tmp_path / f"{authority}-trust.pem"
        trust.write_bytes(dep.chains[authority].read_bytes() + dep.root.read_bytes())
        checked = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(tmp_path / f"{authority}.crl"),
                                  "-noout", "-CAfile", str(trust), "-verify"], capture_output=True, text=True)  # fmt: skip
        assert "verify OK" in checked.stdout + checked.stderr, authority
        for state in ("good", "revoked"):
            leaf = tmp_path / f"{authority}-{state}.pem"
            leaf.write_bytes(_pem(leaves[authority][state]))
            asked = subprocess.run(
                ["openssl", "ocsp", "-issuer", str(dep.issuers[authority]), "-cert", str(leaf), "-url",
                 f"{served}/ocsp", "-CAfile", str(trust)], capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            out = asked.stdout + asked.stderr
            assert "Response verify OK" in out, (authority, state, out)
            assert re.search(rf"{authority}-{state}\.pem: {state}", out), out
    # The prefix serves its own CRL.
    assert dep.api.get("/teams/crl").data == (tmp_path / "teams.crl").read_bytes()
    # An issuer the responder does not serve (the mid CA, which issues no leaves): unauthorized (RFC 6960 2.3).
    mid = tmp_path / "mid.pem"
    mid.write_bytes(dep.chains["deep"].read_bytes().split(b"-----END CERTIFICATE-----\n", 1)[1])
    asked = subprocess.run(["openssl", "ocsp", "-issuer", str(dep.root), "-cert", str(mid), "-url", f"{served}/ocsp",
                            "-noverify"], capture_output=True, text=True, timeout=30)  # fmt: skip
    assert "unauthorized" in (asked.stdout + asked.stderr).lower(), asked.stdout + asked.stderr


def test_revoking_another_authoritys_certificate_is_refused(deployment: Deployment) -> None:
    dep = deployment
    leaf, _ = _sign_and_key(dep, "deep-admin", "other.example.com")
    serial = str(leaf.serial_number)
    # teams' provisioner cannot revoke deep's certificate, at the default mount or at its prefix.
    for path, prefix in (("/revoke", ""), ("/teams/revoke", "/teams")):
        ott = _token(dep, "teams-admin", serial, op="revoke", prefix=prefix)
        answer = dep.api.post(path, json={"serial": serial, "ott": ott, "passive": True})
        assert answer.status_code == 404, answer.text


def _config(d: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((d / "config.json").read_text())
    return config


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
    config = _config(deployment.dir)
    change(config)
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_mapping(config, base_dir=deployment.dir)


def test_a_chain_off_the_root_and_a_wrong_key_are_refused(deployment: Deployment, tmp_path: Path) -> None:
    d = deployment.dir
    config = _config(d)
    deep = config["authorities"][1]
    # Without the mid CA the deep chain does not reach the root: refused when the services are built.
    deep["crt"] = str(deployment.issuers["deep"])
    (d / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="authority 'deep': its chain does not lead to a configured root"):
        build_services(Settings.load(d / "config.json"))
    # teams' certificate with deep's key: refused when the key is first opened.
    config = _config(d)
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
    run = _cirrus_up(d)
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1, run.stderr
    assert "authority 'deep': the key does not match its certificate" in lines[0]


def _cirrus_up(d: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", "up", "--dir", str(d)], capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                                                      "PATH": "/usr/bin:/bin"})  # fmt: skip


def test_cirrus_up_refuses_a_bad_authorities_block_in_one_line(deployment: Deployment) -> None:
    config = _config(deployment.dir)
    config["authorities"][1]["prefix"] = "teams"
    (deployment.dir / "config.json").write_text(json.dumps(config))
    run = _cirrus_up(deployment.dir)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "prefix 'teams' is used twice" in lines[0], run.stderr


def test_acme_orders_are_signed_by_their_provisioners_authority(deployment: Deployment, tmp_path: Path) -> None:
    from tests.unit.acme.acme_support import ACMETestClient, HTTP01Responder, b64
    from tests.unit.acme.acme_support import make_csr as acme_csr

    responder = HTTP01Responder()
    config = _config(deployment.dir)
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
        assert chain[0].issuer == _crt(deployment.issuers["deep"]).subject
        assert _verify(deployment, _pem(chain[0]).decode(), deployment.chains["deep"], tmp_path).returncode == 0
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


def test_expiry_alerts_cover_every_authority(deployment: Deployment) -> None:
    import datetime as dt

    from shared.clock import FixedClock

    clock = FixedClock(dt.datetime.now(dt.UTC))
    services = build_services(Settings.load(deployment.dir / "config.json"), clock=clock)
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr, _ = make_csr("lapsing.example.com", ["lapsing.example.com"])
        answer = api.post("/sign", json={"csr": csr, "ott": _token(deployment, "teams-admin", "lapsing.example.com")})
        assert answer.status_code == 201, answer.text
        clock.advance(dt.timedelta(hours=17))  # a 24 h certificate with 7 h left: inside its 8 h window
        assert services.expiry_alerts() == 1
    finally:
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


def test_cirrus_crl_show_for_each_authority(deployment: Deployment) -> None:
    from shared.cli.crl import run_publish

    run_publish(deployment.services)
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[2]), "PATH": "/usr/bin:/bin"}
    for authority in ("teams", "deep"):
        run = subprocess.run([sys.executable, "-m", "shared.cli", "crl", "show", "--dir", str(deployment.dir),
                              "--authority", authority, "--json"], capture_output=True, text=True, env=env)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["issuer"] == _crt(deployment.issuers[authority]).subject.rfc4514_string()
    run = subprocess.run([sys.executable, "-m", "shared.cli", "crl", "show", "--dir", str(deployment.dir),
                          "--authority", "nobody"], capture_output=True, text=True, env=env)  # fmt: skip
    lines = run.stderr.strip().splitlines()
    assert run.returncode != 0 and len(lines) == 1 and "no authority 'nobody'" in lines[0], run.stderr


def test_ocsp_without_one_authoritys_key_still_answers_for_the_others(deployment: Deployment) -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509 import ocsp

    from shared.cli.crl import run_publish

    dep = deployment
    leaves = {a: _sign_and_key(dep, f"{a}-admin", f"{a}.example.com")[0] for a in ("teams", "deep")}
    run_publish(dep.services)
    (dep.dir / "secrets" / "deep_key").unlink()  # an `ocsp` instance with no role on deep's key
    services = build_services(Settings.load(dep.dir / "config.json"))
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        for authority, expected in (("teams", ocsp.OCSPResponseStatus.SUCCESSFUL),
                                    ("deep", ocsp.OCSPResponseStatus.UNAUTHORIZED)):  # fmt: skip
            request = ocsp.OCSPRequestBuilder().add_certificate(
                leaves[authority], _crt(dep.issuers[authority]), hashes.SHA1()).build()  # fmt: skip
            answer = api.post("/ocsp", data=request.public_bytes(serialization.Encoding.DER),
                              headers={"Content-Type": "application/ocsp-request"})  # fmt: skip
            assert answer.status_code == 200, answer.data
            response = ocsp.load_der_ocsp_response(answer.data)
            assert response.response_status == expected, authority
            if expected == ocsp.OCSPResponseStatus.SUCCESSFUL:
                assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    finally:
        services.close()


def test_authority_expiring_alerts_cover_every_authoritys_chain(deployment: Deployment) -> None:
    import datetime as dt

    from shared.clock import FixedClock

    clock = FixedClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=300))  # 65 days left for the 365-day CAs
    services = build_services(Settings.load(deployment.dir / "config.json"), clock=clock)
    try:
        # default, teams and deep; not the mid CA (400 days: 100 left) nor the root.
        assert services.expiry_alerts() == 3
        assert services.expiry_alerts() == 0  # once each
    finally:
        services.close()
