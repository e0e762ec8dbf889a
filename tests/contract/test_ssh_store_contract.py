"""The SSH authority's use of the store, on every backend (memory, SQLite, the Firestore emulator).

Sign a host certificate, renew it with SSHPOP into the same endpoint, find it through
check-host and hosts, revoke it (once), and see it in the KRL and nowhere in the X.509
revocations.
"""

from __future__ import annotations

import base64
from pathlib import Path

from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.runtime import build_services
from shared.ssh.certificate import parse_certificate
from shared.store.base import Store
from tests.sshhelpers import keygen, ssh_token, sshpop_token


def test_ssh_flow_on_every_store(store: Store, authority_dir: Path, tmp_path: Path) -> None:
    services = build_services(Settings.load(authority_dir / "config.json"), store=store)
    api = Client(CirrusApp(services, mounts=default_mounts(services)))
    key, pub = keygen(tmp_path, "host", "-t", "ecdsa")
    token = ssh_token(authority_dir, "h1", {"certType": "host", "principals": ["h1.example", "10.1.2.3"]})
    r = api.post("/ssh/sign", json={"publicKey": pub, "ott": token})
    assert r.status_code == 201, r.text
    crt = r.get_json()["crt"]
    first = str(parse_certificate(base64.b64decode(crt)).serial)
    r = api.post("/ssh/renew", json={"ott": sshpop_token(crt, key, first)})
    assert r.status_code == 201, r.text
    renewed = str(parse_certificate(base64.b64decode(r.get_json()["crt"])).serial)
    a, b = store.get_certificate(first), store.get_certificate(renewed)
    assert a is not None and b is not None and str(b.kind) == "ssh"
    assert b.endpoint_id == a.endpoint_id and b.renewed_from == first and b.sans == ("h1.example", "10.1.2.3")
    assert store.get_endpoint(a.endpoint_id) is not None
    assert api.post("/ssh/check-host", json={"type": "host", "principal": "H1.example"}).get_json()["exists"]
    hosts = {h["hostname"] for h in api.get("/ssh/hosts").get_json()["hosts"]}
    assert hosts == {"h1.example", "10.1.2.3"}
    revoke = {"serial": first, "ott": sshpop_token(crt, key, first, op="ssh/revoke"), "passive": True}
    assert api.post("/ssh/revoke", json=revoke).status_code == 200
    again = {**revoke, "ott": sshpop_token(crt, key, first, op="ssh/revoke")}
    assert api.post("/ssh/revoke", json=again).status_code == 400  # already revoked
    now = services.clock.now()
    assert [r.serial for r in store.list_revocations(services.settings.authority_id, not_after_since=now)] == []
    from shared.api.ssh import _authority

    krl = _authority(services).krl(version=1)
    assert int(first).to_bytes(8, "big") in krl and int(renewed).to_bytes(8, "big") not in krl
