"""The serverless split for SSH: the public instance forwards SSH writes to the issuer function."""

from __future__ import annotations

import base64
import json
import socket
import threading
from pathlib import Path

from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.functions import _issuer_mounts
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.httpserver import WSGIServer
from shared.runtime import build_services
from shared.ssh.certificate import parse_certificate
from tests.sshhelpers import keygen, ssh_token, sshpop_token


def test_ssh_sign_and_renew_go_through_the_issuer(authority_dir: Path, tmp_path: Path) -> None:
    issuer = build_services(Settings.load(authority_dir / "config.json"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = WSGIServer(sock, CirrusApp(issuer, mounts=_issuer_mounts(issuer)), None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cfg = json.loads((authority_dir / "config.json").read_text())
    # The public instance cannot open any key, X.509 or SSH: it must never need one for these.
    cfg.update({"key": "softkms:path=/nonexistent/key", "issuerURL": f"http://127.0.0.1:{sock.getsockname()[1]}",
                "ssh": {"userKey": "softkms:path=/nonexistent/u", "hostKey": "softkms:path=/nonexistent/h"}})
    public = build_services(Settings.from_mapping(cfg, base_dir=authority_dir))
    try:
        api = Client(CirrusApp(public, mounts=default_mounts(public)))
        key, pub = keygen(tmp_path, "host", "-t", "ecdsa")
        token = ssh_token(authority_dir, "h1", {"certType": "host", "principals": ["h1"]})
        r = api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": token})
        assert r.status_code == 201, r.text
        crt = r.get_json()["crt"]
        serial = str(parse_certificate(base64.b64decode(crt)).serial)
        assert public.store.get_certificate(serial) is not None  # the shared store, written by the issuer
        r = api.post("/ssh/renew", json={"ott": sshpop_token(crt, key, serial)})
        assert r.status_code == 201, r.text
        r = api.post("/ssh/sign", json={"publicKey": pub, "ott": token})  # refusals keep step-ca's JSON
        assert r.status_code == 401 and set(r.get_json()) == {"status", "message"}
        assert api.post("/ssh/check-host", json={"type": "host", "principal": "h1"}).get_json() == {"exists": True}
    finally:
        server.shutdown()
        public.close()
        issuer.close()
