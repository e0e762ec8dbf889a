"""What a registration authority decides before it forwards anything to its upstream.

The upstream is a real `cirrus up` over TLS; the RA runs in-process (its WSGI app) with its
calls to the upstream over real HTTPS, as in `test_registration_authority.py`.
- AUTHORIZING webhooks: a loopback hook (checking the HMAC header) denies one request and
  allows another; the denied one never reaches the upstream.
- The root's ARL: after the upstream's intermediate is revoked (`cirrus ca revoke-intermediate`,
  published where the upstream serves it, `/crl/root-<fp>.crl`), the RA refuses to rekey a
  certificate that intermediate issued, and forwards nothing.
- A hook server requiring a TLS client certificate is shown one the upstream issued to the RA.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.events.base import CERTIFICATE_ISSUED
from shared.runtime import Services, build_services
from tests.helpers import make_csr, mint_sign_token
from tests.interop.test_cli_session import cirrus, server  # noqa: F401 - the upstream `cirrus up` fixture
from tests.interop.test_registration_authority import _count, _mtls, _ra_dir, _upstream_services
from tests.webhook_receiver import Receiver, Seen, hook, webhook_receiver

pytestmark = pytest.mark.interop


@pytest.fixture
def upstream_url(server, authority_dir: Path) -> str:  # noqa: F811 - the imported fixture
    return "https://" + json.loads((authority_dir / "config.json").read_text())["address"]


def _ra_with_gate(authority_dir: Path, tmp_path: Path, upstream_url: str, gate_url: str) -> Path:
    """An RA whose provisioner asks one AUTHORIZING webhook (`gate`, X.509 only) before forwarding."""
    ra_dir = _ra_dir(authority_dir, tmp_path, upstream_url)
    config = json.loads((ra_dir / "config.json").read_text())
    config["authority"]["provisioners"][0]["options"] = {
        "webhooks": [hook("gate", gate_url, "AUTHORIZING", certType="X509")]}
    (ra_dir / "config.json").write_text(json.dumps(config))
    return ra_dir


def _ra(ra_dir: Path) -> tuple[Services, Client]:
    services = build_services(Settings.load(ra_dir / "config.json"))
    return services, Client(CirrusApp(services, mounts=default_mounts(services)))


def _upstream_issued(authority_dir: Path) -> int:
    up = _upstream_services(authority_dir)
    try:
        return _count(up, CERTIFICATE_ISSUED)
    finally:
        up.close()


def _sign(client: Client, ra_dir: Path, name: str) -> Any:
    csr, _ = make_csr(name, [name])
    return client.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(ra_dir, name, [name])})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as r:
        yield r


def test_an_authorizing_hook_at_the_ra_is_asked_before_anything_is_forwarded(
    authority_dir: Path, tmp_path: Path, upstream_url: str, receiver: Receiver
) -> None:
    def gate(seen: Seen) -> tuple[int, bytes]:
        names = seen.json()["x509Certificate"]["dnsNames"]
        if "deny.example.com" in names:
            return 200, json.dumps({"allow": False, "error": {"message": "not in the inventory"}}).encode()
        return 200, json.dumps({"allow": True}).encode()

    receiver.routes["/authorize"] = gate
    ra_dir = _ra_with_gate(authority_dir, tmp_path, upstream_url, receiver.base + "/authorize")
    services, client = _ra(ra_dir)
    try:
        before = _upstream_issued(authority_dir)
        denied = _sign(client, ra_dir, "deny.example.com")
        assert denied.status_code == 403, denied.get_data(as_text=True)
        assert "not in the inventory" in denied.get_json()["message"]
        assert _upstream_issued(authority_dir) == before  # nothing was forwarded
        assert _count(services, CERTIFICATE_ISSUED) == 0

        allowed = _sign(client, ra_dir, "allow.example.com")
        assert allowed.status_code == 201, allowed.get_data(as_text=True)
        leaf = x509.load_pem_x509_certificate(allowed.get_json()["crt"].encode())
        assert _upstream_issued(authority_dir) == before + 1
        assert services.store.get_certificate(str(leaf.serial_number)) is not None

        # The hook saw each request once, signed, with what the RA asks the upstream for.
        assert [s.path for s in receiver.seen] == ["/authorize", "/authorize"]
        assert all(s.signature_ok for s in receiver.seen)
        asked = receiver.seen[1].json()["x509Certificate"]
        intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
        assert asked["dnsNames"] == ["allow.example.com"] and asked["subject"]["commonName"] == "allow.example.com"
        assert asked["issuer"]["commonName"] == intermediate.subject.rfc4514_string().split("CN=")[1].split(",")[0]
        assert asked["notAfter"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    finally:
        services.close()


def test_the_ra_refuses_to_rekey_what_a_revoked_intermediate_issued(
    authority_dir: Path, tmp_path: Path, upstream_url: str
) -> None:
    ra_dir = _ra_dir(authority_dir, tmp_path, upstream_url)
    services, client = _ra(ra_dir)
    try:
        first = _sign(client, ra_dir, "svc.example.com")
        assert first.status_code == 201, first.get_data(as_text=True)
        old_pem = first.get_json()["crt"]
        # Before the revocation a rekey goes through (a fresh upstream sign).
        csr, _ = make_csr("svc.example.com", ["svc.example.com"])
        assert client.post("/1.0/rekey", json={"csr": csr}, environ_overrides=_mtls(old_pem)).status_code == 201

        cirrus("ca", "revoke-intermediate", "--root-kms", f"softkms:path={authority_dir}/secrets/root_ca_key",
               "--root", str(authority_dir / "certs" / "root_ca.crt"),
               "--cert", str(authority_dir / "certs" / "intermediate_ca.crt"),
               # `--blobs`, as from another machine: with `--dir` the command refuses to revoke the
               # intermediate that issues now (its successor comes first); the upstream then answers
               # 503 to new signatures, and the RA must refuse the rekey before forwarding anything.
               "--blobs", f"file:{authority_dir / 'published'}",
               "--reason", "keyCompromise", "--password-file", str(authority_dir / "secrets" / "password"))  # fmt: skip
        services.close()
        services, client = _ra(ra_dir)  # a fresh RA instance (the ARL is re-read every 30 s)
        before = _upstream_issued(authority_dir)
        csr, _ = make_csr("svc.example.com", ["svc.example.com"])
        refused = client.post("/1.0/rekey", json={"csr": csr}, environ_overrides=_mtls(old_pem))
        assert refused.status_code == 401, refused.get_data(as_text=True)
        assert "intermediate has been revoked" in refused.get_json()["message"]
        assert _upstream_issued(authority_dir) == before  # nothing was forwarded

        # An RA sharing the upstream's bucket reads the ARL there (`ra.arl: "blobs"`): the same answer.
        services.close()
        config = json.loads((ra_dir / "config.json").read_text())
        config["ra"]["arl"] = "blobs"
        config["blobs"] = f"file:{authority_dir / 'published'}"
        (ra_dir / "config.json").write_text(json.dumps(config))
        services, client = _ra(ra_dir)
        refused = client.post("/1.0/rekey", json={"csr": csr}, environ_overrides=_mtls(old_pem))
        assert refused.status_code == 401, refused.get_data(as_text=True)
        assert _upstream_issued(authority_dir) == before
    finally:
        services.close()


def test_a_hook_requiring_a_client_certificate_is_shown_one_the_upstream_issued(
    authority_dir: Path, tmp_path: Path, upstream_url: str
) -> None:
    """As a step-ca RA's own certificate comes from its upstream CAS, the RA's webhook client
    certificate is issued by the upstream: the hook server trusts the upstream's root."""
    from tests.unit.api.test_webhook_client_tls import mtls_receiver

    with mtls_receiver(authority_dir, tmp_path) as tls_receiver:
        tls_receiver.routes["/authorize"] = lambda _seen: (200, b'{"allow": true}')
        ra_dir = _ra_with_gate(authority_dir, tmp_path, upstream_url, tls_receiver.base + "/authorize")
        services, client = _ra(ra_dir)
        try:
            allowed = _sign(client, ra_dir, "allow.example.com")
        finally:
            services.close()
    assert allowed.status_code == 201, allowed.get_data(as_text=True)
    assert tls_receiver.refused == [] and len(tls_receiver.seen) == 1
    shown = x509.load_der_x509_certificate(tls_receiver.seen[0].peer or b"")
    intermediate = x509.load_pem_x509_certificate((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    shown.verify_directly_issued_by(intermediate)
