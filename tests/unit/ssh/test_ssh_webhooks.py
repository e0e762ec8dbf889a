"""POST /ssh/sign with step-ca webhooks of certType SSH/ALL (issue 15 item 5), on a loopback server:
`sshCertificateRequest` to ENRICHING hooks, the signed `sshCertificate` to AUTHORIZING ones, a denial
403 and an unreachable hook 503 with no SSH certificate recorded; X509-only hooks are not asked; a
hook server requiring a TLS client certificate is shown the authority's (none with disableTLSClientAuth)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.runtime import build_services
from shared.ssh.certificate import parse_certificate
from tests.sshhelpers import keygen
from tests.unit.ssh.test_ssh_api import refused, sign_user, ssh_rows
from tests.webhook_receiver import Receiver, answer, hook, webhook_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def configure(authority_dir: Path, webhooks: list[dict[str, Any]]) -> Client:
    path = authority_dir / "config.json"
    config = json.loads(path.read_text())
    config["authority"]["provisioners"][0]["options"] = {"webhooks": webhooks}
    path.write_text(json.dumps(config))
    services = build_services(Settings.load(path))
    return Client(CirrusApp(services, mounts=default_mounts(services)))


def test_ssh_hooks_see_the_request_and_the_certificate(receiver: Receiver, authority_dir: Path,
                                                       tmp_path: Path) -> None:
    receiver.routes["/"] = answer(True, {"uid": 1001})
    api = configure(authority_dir, [
        hook("people", receiver.base + "/enrich/{{ .KeyID }}", "ENRICHING", certType="SSH"),
        hook("gate", receiver.base + "/authorize", "AUTHORIZING", certType="ALL"),
        hook("x509-only", receiver.base + "/never", "AUTHORIZING", certType="X509"),
    ])
    _, pub = keygen(tmp_path, "id_ed25519", "-t", "ed25519")
    r = sign_user(api, authority_dir, pub)
    assert r.status_code == 201, r.text
    cert = parse_certificate(base64.b64decode(r.get_json()["crt"]))
    enrich, gate = receiver.seen
    assert enrich.signature_ok and gate.signature_ok
    assert enrich.path == "/enrich/alice@example.com"
    request = enrich.json()["sshCertificateRequest"]
    assert request["type"] == "user" and request["keyID"] == "alice@example.com"
    assert request["principals"] == ["alice", "ops"]
    assert request["publicKey"] == pub  # the key's wire blob, base64
    seen = gate.json()["sshCertificate"]
    assert seen["serial"] == cert.serial and seen["keyId"] == "alice@example.com"
    assert seen["validAfter"] == cert.valid_after and seen["validBefore"] == cert.valid_before
    assert base64.b64decode(seen["signatureKey"]) == cert.signature_key
    assert "permit-pty" in seen["extensions"]
    assert ssh_rows(authority_dir) == 1


def test_a_denied_ssh_certificate_is_a_403_and_not_recorded(receiver: Receiver, authority_dir: Path,
                                                            tmp_path: Path) -> None:
    receiver.routes["/"] = answer(False, error={"code": "offboarded", "message": "alice has left"})
    api = configure(authority_dir, [hook("gate", receiver.base + "/authorize", "AUTHORIZING", certType="SSH")])
    _, pub = keygen(tmp_path, "id_ed25519", "-t", "ed25519")
    r = sign_user(api, authority_dir, pub)
    refused(r, 403)
    assert r.get_json()["message"] == "alice has left (offboarded)"
    assert ssh_rows(authority_dir) == 0


def test_an_unreachable_ssh_hook_is_a_503(authority_dir: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = configure(authority_dir, [hook("people", f"http://127.0.0.1:{port}/", "ENRICHING", timeout=0.5)])
    _, pub = keygen(tmp_path, "id_ed25519", "-t", "ed25519")
    refused(sign_user(api, authority_dir, pub), 503)
    assert ssh_rows(authority_dir) == 0


def test_an_ssh_hook_requiring_a_client_certificate_is_shown_the_authoritys(authority_dir: Path,
                                                                           tmp_path: Path) -> None:
    from cryptography import x509

    from tests.unit.api.test_webhook_client_tls import mtls_receiver

    with mtls_receiver(authority_dir, tmp_path) as tls_receiver:
        tls_receiver.routes["/"] = answer(True)
        api = configure(authority_dir, [hook("gate", tls_receiver.base + "/authorize", "AUTHORIZING", certType="SSH"),
                                        hook("open", tls_receiver.base + "/open", "AUTHORIZING", certType="SSH",
                                             disableTLSClientAuth=True)])  # fmt: skip
        _, pub = keygen(tmp_path, "id_ed25519", "-t", "ed25519")
        r = sign_user(api, authority_dir, pub)
    # The first hook got the X.509 intermediate's client certificate; the second, which asked for
    # none, had its handshake refused by this server: a 503, no SSH certificate.
    refused(r, 503)
    assert r.get_json()["message"] == "webhook open: unreachable"
    assert [s.path for s in tls_receiver.seen] == ["/authorize"] and tls_receiver.refused
    intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    x509.load_der_x509_certificate(tls_receiver.seen[0].peer or b"").verify_directly_issued_by(intermediate)
    assert ssh_rows(authority_dir) == 0
