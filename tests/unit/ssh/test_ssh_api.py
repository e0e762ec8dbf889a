"""The SSH routes over the app: sign, renew, rekey, revoke, reads, and every bad input of issue 14.

Each refusal must be a 4xx with step-ca's error JSON and leave no certificate behind.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from shared.ssh.certificate import parse_certificate
from tests.sshhelpers import cert_line, keygen, ssh_token, sshpop_token


def ssh_rows(authority_dir: Path) -> int:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return db.execute("SELECT COUNT(*) FROM certificates WHERE kind = 'ssh'").fetchone()[0]
    finally:
        db.close()


def refused(r, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.get_json()
    assert set(body) == {"status", "message"} and body["status"] == status
    assert "crt" not in body


@pytest.fixture
def user_key(tmp_path: Path) -> tuple[Path, str]:
    return keygen(tmp_path, "id_ed25519", "-t", "ed25519")


def sign_user(api, authority_dir: Path, pub: str, **body) -> object:
    ssh = {"certType": "user", "keyID": "alice@example.com", "principals": ["alice", "ops"]}
    token = ssh_token(authority_dir, "alice@example.com", ssh)
    return api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": token, **body})


def issue_host(api, authority_dir: Path, tmp_path: Path, name: str = "web1") -> tuple[Path, str]:
    key, pub = keygen(tmp_path, f"host_{name}", "-t", "ecdsa")
    token = ssh_token(authority_dir, f"{name}.internal", {"certType": "host", "principals": [f"{name}.internal"]})
    r = api.post("/ssh/sign", json={"publicKey": pub, "ott": token, "certType": "host"})
    assert r.status_code == 201, r.text
    return key, r.get_json()["crt"]


def test_user_certificate_fields_as_ssh_keygen_shows_them(api, authority_dir: Path, user_key, tmp_path: Path) -> None:
    _, pub = user_key
    r = sign_user(api, authority_dir, pub, principals=["alice"])
    assert r.status_code == 201, r.text
    crt = r.get_json()["crt"]
    path = tmp_path / "id_ed25519-cert.pub"
    path.write_text(cert_line(crt))
    shown = subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    assert "ssh-ed25519-cert-v01@openssh.com user certificate" in shown
    assert 'Key ID: "alice@example.com"' in shown
    # The token's principals go in the certificate (the request may only ask for a subset).
    assert "\n                alice\n                ops\n" in shown
    for ext in ("permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty",
                "permit-user-rc"):
        assert ext in shown
    cert = parse_certificate(base64.b64decode(crt))
    # step-ca's default user duration, 16h, plus the one-minute backdate.
    assert cert.valid_before - cert.valid_after == 16 * 3600 + 60
    roots = api.get("/ssh/roots").get_json()
    assert cert.signature_key == base64.b64decode(roots["userKey"][0])
    assert ssh_rows(authority_dir) == 1


def test_host_certificate_has_host_duration_and_no_extensions(api, authority_dir: Path, tmp_path: Path) -> None:
    _, crt = issue_host(api, authority_dir, tmp_path)
    cert = parse_certificate(base64.b64decode(crt))
    assert cert.type_name == "host" and cert.principals == ("web1.internal",) and not cert.extensions
    assert cert.valid_before - cert.valid_after == 720 * 3600 + 60
    roots = api.get("/1.0/ssh/roots").get_json()
    assert cert.signature_key == base64.b64decode(roots["hostKey"][0])


@pytest.mark.parametrize("args", [("-t", "ecdsa", "-b", "256"), ("-t", "ecdsa", "-b", "384"), ("-t", "rsa", "-b", "2048")])
def test_every_supported_key_type_is_signed(api, authority_dir: Path, tmp_path: Path, args) -> None:
    _, pub = keygen(tmp_path, "k", *args)
    r = sign_user(api, authority_dir, pub)
    assert r.status_code == 201, r.text
    path = tmp_path / "k-cert.pub"
    path.write_text(cert_line(r.get_json()["crt"]))
    subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, check=True)


# ----------------------------------------------------------------- bad input
def test_wrong_certificate_type_for_the_token_is_refused(api, authority_dir: Path, user_key) -> None:
    r = sign_user(api, authority_dir, user_key[1], certType="host")
    refused(r, 403)
    assert "type does not match" in r.get_json()["message"]
    assert ssh_rows(authority_dir) == 0


def test_principals_outside_the_token_are_refused(api, authority_dir: Path, user_key) -> None:
    refused(sign_user(api, authority_dir, user_key[1], principals=["alice", "root"]), 403)
    assert ssh_rows(authority_dir) == 0


def test_key_id_other_than_the_token_subject_is_refused(api, authority_dir: Path, user_key) -> None:
    refused(sign_user(api, authority_dir, user_key[1], keyID="mallory"), 403)
    assert ssh_rows(authority_dir) == 0


@pytest.mark.parametrize(
    ("validity", "status"),
    [
        ({"validBefore": "25h"}, 403),  # longer than maxUserSSHCertDuration (24h)
        ({"validBefore": "2m"}, 403),  # shorter than minUserSSHCertDuration (5m)
        ({"validAfter": "-3h", "validBefore": "-2h"}, 400),  # in the past
        ({"validAfter": "2h", "validBefore": "1h"}, 400),  # inverted
        ({"validBefore": "soon"}, 400),
    ],
)
def test_validity_outside_the_claims_is_refused(api, authority_dir: Path, user_key, validity, status) -> None:
    refused(sign_user(api, authority_dir, user_key[1], **validity), status)
    assert ssh_rows(authority_dir) == 0


def test_token_validity_that_differs_from_the_request_is_refused(api, authority_dir: Path, user_key) -> None:
    ssh = {"certType": "user", "principals": ["alice"], "validBefore": "1h"}
    token = ssh_token(authority_dir, "alice", ssh)
    refused(api.post("/ssh/sign", json={"publicKey": user_key[1], "ott": token, "validBefore": "2h"}), 403)


def test_token_without_the_ssh_claim_is_refused(api, authority_dir: Path, user_key) -> None:
    from tests.helpers import mint_token, sign_claims

    token = mint_token(authority_dir, sign_claims("alice", None, op="ssh/sign"))
    refused(api.post("/ssh/sign", json={"publicKey": user_key[1], "ott": token}), 401)


def test_ssh_disabled_for_the_provisioner_is_refused(tmp_path: Path, user_key) -> None:
    from werkzeug.test import Client

    from shared.api.app import CirrusApp
    from shared.api.mounts import default_mounts
    from shared.cli.init import init_authority
    from shared.config import Settings
    from shared.runtime import build_services

    d = tmp_path / "ca2"
    cfg = init_authority(d, name="T", p2c=1000)
    cfg["authority"]["claims"]["enableSSHCA"] = False
    (d / "config.json").write_text(json.dumps(cfg))
    s = build_services(Settings.load(d / "config.json"))
    try:
        client = Client(CirrusApp(s, mounts=default_mounts(s)))
        token = ssh_token(d, "alice", {"certType": "user"})
        refused(client.post("/ssh/sign", json={"publicKey": user_key[1], "ott": token}), 401)
    finally:
        s.close()


@pytest.mark.parametrize(
    "public_key",
    [
        "",
        "not base64!",
        base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x10" + b"x" * 16).decode(),  # short key
        base64.b64encode(b"\x00\x00\x00\x07ssh-dss\x00\x00\x00\x01\x01").decode(),  # unsupported type
        base64.b64encode(b"\x00\x00\x00\x13ecdsa-sha2-nistp256\x00\x00\x00\x08nistp256\x00\x00\x00\x41\x04" + b"\x01" * 64).decode(),
    ],
)
def test_a_public_key_that_is_not_a_valid_openssh_key_is_refused(api, authority_dir: Path, public_key) -> None:
    refused(sign_user(api, authority_dir, public_key), 400)
    assert ssh_rows(authority_dir) == 0


def test_weak_rsa_is_refused(api, authority_dir: Path, tmp_path: Path) -> None:
    _, pub = keygen(tmp_path, "weak", "-t", "rsa", "-b", "1024")
    r = sign_user(api, authority_dir, pub)
    refused(r, 400)
    assert "2048" in r.get_json()["message"]


def test_replayed_token_is_refused(api, authority_dir: Path, user_key) -> None:
    token = ssh_token(authority_dir, "alice", {"certType": "user"})
    assert api.post("/ssh/sign", json={"publicKey": user_key[1], "ott": token}).status_code == 201
    refused(api.post("/ssh/sign", json={"publicKey": user_key[1], "ott": token}), 401)
    assert ssh_rows(authority_dir) == 1


# ------------------------------------------------------- renew, rekey, revoke
def test_host_renews_with_sshpop_into_the_same_endpoint(api, authority_dir: Path, tmp_path: Path) -> None:
    key, crt = issue_host(api, authority_dir, tmp_path)
    old = parse_certificate(base64.b64decode(crt))
    r = api.post("/1.0/ssh/renew", json={"ott": sshpop_token(crt, key, str(old.serial))})
    assert r.status_code == 201, r.text
    new = parse_certificate(base64.b64decode(r.get_json()["crt"]))
    assert new.serial != old.serial and new.key.blob == old.key.blob and new.principals == old.principals
    assert new.valid_before - new.valid_after == old.valid_before - old.valid_after
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    got = db.execute("SELECT endpoint_id, renewed_from FROM certificates WHERE serial = ?", (str(new.serial),)).fetchone()
    first = db.execute("SELECT endpoint_id FROM certificates WHERE serial = ?", (str(old.serial),)).fetchone()
    db.close()
    assert got == (first[0], str(old.serial))


@pytest.mark.parametrize("fragment", ["jwk/admin", "sshpop/other"])
def test_sshpop_token_for_another_provisioner_fragment_is_refused(api, authority_dir: Path, tmp_path: Path, fragment) -> None:
    key, crt = issue_host(api, authority_dir, tmp_path)
    old = parse_certificate(base64.b64decode(crt))
    r = api.post("/1.0/ssh/renew", json={"ott": sshpop_token(crt, key, str(old.serial), fragment=fragment)})
    refused(r, 401)
    assert ssh_rows(authority_dir) == 1


def test_rekey_takes_the_new_key(api, authority_dir: Path, tmp_path: Path) -> None:
    key, crt = issue_host(api, authority_dir, tmp_path)
    _, new_pub = keygen(tmp_path, "newkey", "-t", "ed25519")
    r = api.post("/ssh/rekey", json={"ott": sshpop_token(crt, key, "web1", op="ssh/rekey"), "publicKey": new_pub})
    assert r.status_code == 201, r.text
    assert parse_certificate(base64.b64decode(r.get_json()["crt"])).key.blob == base64.b64decode(new_pub)


def test_revoked_certificate_is_refused_on_renew_and_listed_in_the_krl(api, services, authority_dir: Path, tmp_path: Path) -> None:
    key, crt = issue_host(api, authority_dir, tmp_path)
    serial = str(parse_certificate(base64.b64decode(crt)).serial)
    r = api.post("/ssh/revoke", json={"serial": serial, "ott": sshpop_token(crt, key, serial, op="ssh/revoke"),
                                      "passive": True, "reasonCode": 1})
    assert r.status_code == 200 and r.get_json() == {"status": "ok"}, r.text
    refused(api.post("/ssh/renew", json={"ott": sshpop_token(crt, key, serial)}), 401)
    from shared.api.ssh import _authority

    krl = tmp_path / "krl"
    krl.write_bytes(_authority(services).krl(version=1))
    (tmp_path / "h-cert.pub").write_text(cert_line(crt))
    q = subprocess.run(["ssh-keygen", "-Q", "-f", str(krl), str(tmp_path / "h-cert.pub")], capture_output=True, text=True)
    assert q.returncode != 0 and "REVOKED" in q.stdout
    # Not in any X.509 CRL: SSH revocations are kept apart.
    assert services.store.list_revocations(services.settings.authority_id, not_after_since=services.clock.now()) == []


def test_jwk_revoke_token_must_name_the_serial(api, authority_dir: Path, user_key) -> None:
    crt = sign_user(api, authority_dir, user_key[1]).get_json()["crt"]
    serial = str(parse_certificate(base64.b64decode(crt)).serial)
    from tests.helpers import mint_token, sign_claims

    wrong = mint_token(authority_dir, sign_claims("12345", None, op="ssh/revoke"))
    refused(api.post("/ssh/revoke", json={"serial": serial, "ott": wrong, "passive": True}), 401)
    right = mint_token(authority_dir, sign_claims(serial, None, op="ssh/revoke"))
    assert api.post("/ssh/revoke", json={"serial": serial, "ott": right, "passive": True}).status_code == 200
    again = mint_token(authority_dir, sign_claims(serial, None, op="ssh/revoke"))
    refused(api.post("/ssh/revoke", json={"serial": serial, "ott": again, "passive": True}), 400)


def test_sshpop_certificate_from_another_ca_is_refused(api, authority_dir: Path, tmp_path: Path) -> None:
    ca, _ = keygen(tmp_path, "other_ca", "-t", "ecdsa")
    host, _ = keygen(tmp_path, "host", "-t", "ecdsa")
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-h", "-I", "web1", "-n", "web1", "-V", "-5m:+1h",
                    f"{host}.pub"], check=True)
    crt = Path(f"{host}-cert.pub").read_text().split()[1]
    refused(api.post("/ssh/renew", json={"ott": sshpop_token(crt, host, "web1")}), 401)


def test_sshpop_user_certificate_cannot_renew(api, authority_dir: Path, tmp_path: Path) -> None:
    key, pub = keygen(tmp_path, "u", "-t", "ecdsa")
    crt = sign_user(api, authority_dir, pub).get_json()["crt"]
    refused(api.post("/ssh/renew", json={"ott": sshpop_token(crt, key, "alice")}), 400)


def test_expired_sshpop_certificate_is_refused(api, services, authority_dir: Path, tmp_path: Path) -> None:
    key, crt = issue_host(api, authority_dir, tmp_path)
    later = int(time.time()) + 721 * 3600
    import datetime as dt

    from shared.clock import FixedClock

    services.clock = FixedClock(dt.datetime.fromtimestamp(later, dt.UTC))
    services.extras.pop("ssh_authority", None)
    refused(api.post("/ssh/rekey", json={"ott": sshpop_token(crt, key, "web1", op="ssh/rekey", now=later),
                                         "publicKey": keygen(tmp_path, "n", "-t", "ed25519")[1]}), 401)
    refused(api.post("/ssh/renew", json={"ott": sshpop_token(crt, key, "web1", now=later)}), 401)


def test_sshpop_token_signed_by_another_key_is_refused(api, authority_dir: Path, tmp_path: Path) -> None:
    _, crt = issue_host(api, authority_dir, tmp_path)
    other, _ = keygen(tmp_path, "other", "-t", "ecdsa")
    refused(api.post("/ssh/renew", json={"ott": sshpop_token(crt, other, "web1")}), 401)


# ---------------------------------------------------------------------- reads
def test_config_check_host_and_hosts(api, authority_dir: Path, tmp_path: Path) -> None:
    issue_host(api, authority_dir, tmp_path, "db1")
    roots = api.get("/ssh/federation").get_json()
    user = api.post("/ssh/config", json={"type": "user", "data": {"StepPath": "/home/a/.step"}}).get_json()
    names = [t["name"] for t in user["userTemplates"]]
    assert names == ["config.tpl", "step_includes.tpl", "step_config.tpl", "known_hosts.tpl"]
    known = base64.b64decode(user["userTemplates"][3]["content"]).decode()
    assert known.startswith("@cert-authority * ecdsa-sha2-nistp256 " + roots["hostKey"][0])
    refused(api.post("/ssh/config/host", json={"data": {"Key": "ssh_host_ecdsa_key"}}), 400)
    host = api.post("/ssh/config/host", json={"data": {"Key": "k", "Certificate": "k-cert.pub"}}).get_json()
    assert base64.b64decode(host["hostTemplates"][1]["content"]).decode().split()[1] == roots["userKey"][0]
    assert api.post("/ssh/check-host", json={"type": "host", "principal": "DB1.internal"}).get_json() == {"exists": True}
    assert api.post("/ssh/check-host", json={"type": "host", "principal": "nope"}).get_json() == {"exists": False}
    refused(api.post("/ssh/check-host", json={"type": "user", "principal": "db1.internal"}), 400)
    assert api.get("/ssh/hosts").get_json() == {"hosts": [{"hid": "", "host_tags": [], "hostname": "db1.internal"}]}


def test_without_ssh_keys_the_flows_are_not_enabled(tmp_path: Path, user_key) -> None:
    from werkzeug.test import Client

    from shared.api.app import CirrusApp
    from shared.api.mounts import default_mounts
    from shared.cli.init import init_authority
    from shared.config import Settings
    from shared.runtime import build_services
    from shared.ssh.keys import add_ssh_to_authority

    d = tmp_path / "old"
    cfg = init_authority(d, name="T", p2c=1000)
    del cfg["ssh"]
    (d / "config.json").write_text(json.dumps(cfg))
    s = build_services(Settings.load(d / "config.json"))
    try:
        client = Client(CirrusApp(s, mounts=default_mounts(s)))
        refused(client.get("/ssh/roots"), 404)
        token = ssh_token(d, "alice", {"certType": "user"})
        refused(client.post("/ssh/sign", json={"publicKey": user_key[1], "ott": token}), 501)
    finally:
        s.close()
    # The upgrade path adds keys to the existing authority (fresh file names, config rewritten).
    for name in ("ssh_user_ca_key", "ssh_host_ca_key"):
        (d / "secrets" / name).unlink()
    add_ssh_to_authority(d)
    s = build_services(Settings.load(d / "config.json"))
    try:
        client = Client(CirrusApp(s, mounts=default_mounts(s)))
        assert client.get("/ssh/roots").status_code == 200
    finally:
        s.close()


def test_krl_is_published_beside_the_crls(api, services, authority_dir: Path, tmp_path: Path) -> None:
    from shared.cli.crl import run_publish

    refused(api.get("/ssh/krl"), 404)
    key, crt = issue_host(api, authority_dir, tmp_path)
    serial = str(parse_certificate(base64.b64decode(crt)).serial)
    token = sshpop_token(crt, key, serial, op="ssh/revoke")
    assert api.post("/ssh/revoke", json={"serial": serial, "ott": token, "passive": True}).status_code == 200
    run_publish(services)
    assert (authority_dir / "published" / "krl" / f"{services.settings.authority_id}.krl").exists()
    r = api.get("/1.0/ssh/krl")
    assert r.status_code == 200
    (tmp_path / "krl").write_bytes(r.data)
    (tmp_path / "h-cert.pub").write_text(cert_line(crt))
    q = subprocess.run(["ssh-keygen", "-Q", "-f", str(tmp_path / "krl"), str(tmp_path / "h-cert.pub")],
                       capture_output=True, text=True)
    assert "REVOKED" in q.stdout
    first = r.data
    run_publish(services)
    assert api.get("/ssh/krl").data[12:20] > first[12:20]  # the KRL version only increases


def test_x509_routes_do_not_take_ssh_serials(api, services, authority_dir: Path, user_key) -> None:
    """/revoke and ACME renewalInfo answer 404 for an SSH serial (they answered 500 / wrote a CRL entry)."""
    from tests.helpers import mint_token, sign_claims

    crt = sign_user(api, authority_dir, user_key[1]).get_json()["crt"]
    serial = parse_certificate(base64.b64decode(crt)).serial
    token = mint_token(authority_dir, sign_claims(str(serial), None, op="revoke"))
    refused(api.post("/revoke", json={"serial": str(serial), "ott": token, "passive": True}), 404)
    assert services.store.get_revocation(str(serial)) is None
    aki = base64.urlsafe_b64encode(b"\x01" * 20).rstrip(b"=").decode()
    sid = base64.urlsafe_b64encode(serial.to_bytes(8, "big")).rstrip(b"=").decode()
    r = api.get(f"/acme/acme/renewal-info/{aki}.{sid}")
    assert r.status_code == 404, r.text


def test_add_user_certificate(api, authority_dir: Path, user_key, tmp_path: Path) -> None:
    _, extra = keygen(tmp_path, "extra", "-t", "ecdsa")
    token = ssh_token(authority_dir, "alice@example.com", {"certType": "user", "principals": ["alice", "alice@example.com"]})
    r = api.post("/ssh/sign", json={"publicKey": user_key[1], "ott": token, "addUserPublicKey": extra})
    assert r.status_code == 201, r.text
    body = r.get_json()
    main, add = (parse_certificate(base64.b64decode(body[k])) for k in ("crt", "addUserCrt"))
    assert add.principals == ("provisioner",) and add.key_id == "alice-provisioner"
    assert add.critical_options == {"force-command": "sudo useradd -m alice; nc -q0 localhost 22"}
    assert (add.valid_after, add.valid_before) == (main.valid_after, main.valid_before) and not add.extensions
    assert add.key.blob == base64.b64decode(extra)
    assert ssh_rows(authority_dir) == 2


@pytest.mark.parametrize("principals", [["alice", "bob"], ["a;reboot"], ["Alice Smith"]])
def test_add_user_refuses_what_cannot_be_a_user_name(api, authority_dir: Path, user_key, tmp_path: Path, principals) -> None:
    _, extra = keygen(tmp_path, "extra", "-t", "ecdsa")
    token = ssh_token(authority_dir, "alice", {"certType": "user", "principals": principals})
    refused(api.post("/ssh/sign", json={"publicKey": user_key[1], "ott": token, "addUserPublicKey": extra}), 400)
    assert ssh_rows(authority_dir) == 0


def test_key_id_other_than_the_token_key_id_is_refused(api, authority_dir: Path, user_key) -> None:
    token = ssh_token(authority_dir, "alice", {"certType": "user", "keyID": "alice-laptop", "principals": ["alice"]})
    refused(api.post("/ssh/sign", json={"publicKey": user_key[1], "ott": token, "keyID": "alice"}), 403)
    ok = ssh_token(authority_dir, "alice", {"certType": "user", "keyID": "alice-laptop", "principals": ["alice"]})
    r = api.post("/ssh/sign", json={"publicKey": user_key[1], "ott": ok})
    assert parse_certificate(base64.b64decode(r.get_json()["crt"])).key_id == "alice-laptop"
