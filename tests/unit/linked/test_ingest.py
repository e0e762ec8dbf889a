"""`POST /linked/v1/report` through the WSGI app: what a linked authority's report records, and each refusal."""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.init import init_authority
from shared.config import Settings
from shared.endpoints import describe
from shared.linked.registry import authority_id_of, register
from shared.runtime import Services, build_services
from shared.usage import read_report
from tests.helpers import make_csr, mint_sign_token


@pytest.fixture(scope="module")
def _other_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("linked-other") / "other"
    init_authority(d, name="Other", p2c=1000)
    return d


@pytest.fixture
def other_dir(_other_template: Path, tmp_path: Path) -> Path:
    """A second authority (its own keys and authority id): the one that reports."""
    d = tmp_path / "other"
    shutil.copytree(_other_template, d)
    return d


@pytest.fixture
def other(other_dir: Path) -> Iterator[Services]:
    s = build_services(Settings.load(other_dir / "config.json"))
    yield s
    s.close()


@pytest.fixture
def other_api(other: Services) -> Client:
    return Client(CirrusApp(other, mounts=default_mounts(other)))


def issue(client: Client, folder: Path, name: str) -> x509.Certificate:
    csr, _ = make_csr(name)
    r = client.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(folder, name)})
    assert r.status_code == 201, r.text
    return x509.load_pem_x509_certificate(r.get_json()["crt"].encode())


def link(services: Services, other_dir: Path, name: str = "edge") -> str:
    roots = x509.load_pem_x509_certificates((other_dir / "certs" / "root_ca.crt").read_bytes())
    inter = x509.load_pem_x509_certificates((other_dir / "certs" / "intermediate_ca.crt").read_bytes())
    return register(services.store, name, roots=roots, intermediates=inter, now=services.clock.now())


def b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def post(api: Client, token: str, events: list[dict[str, Any]] | None = None, *, raw: bytes | None = None) -> Any:
    body = raw if raw is not None else json.dumps({"events": events}).encode()
    return api.post(
        "/linked/v1/report", data=body, headers={"Authorization": f"Bearer {token}"}, content_type="application/json"
    )


def test_issued_and_revoked_certificates_become_an_endpoint_with_lineage(
    api: Client, services: Services, other_api: Client, other_dir: Path
) -> None:
    token = link(services, other_dir)
    first = issue(other_api, other_dir, "device-1.example.com")
    second = issue(other_api, other_dir, "device-1.example.com")
    r = post(api, token, [
        {"type": "issued", "certificate": b64(first), "id": "r1"},
        {"type": "issued", "certificate": second.public_bytes(serialization.Encoding.PEM).decode(), "id": "r2"},
        {"type": "revoked", "certificate": b64(first), "revokedAt": "2026-01-02T03:04:05Z", "reasonCode": 4,
         "id": "r3"},
    ])  # fmt: skip
    assert r.status_code == 200, r.text
    assert [x["status"] for x in r.get_json()["results"]] == ["recorded", "recorded", "recorded"]
    record = services.store.get_certificate(str(first.serial_number))
    assert record is not None and record.authority_id == authority_id_of("edge")
    assert record.provisioner.id == "linked/edge" and record.der == first.public_bytes(serialization.Encoding.DER)
    endpoints = [e for e in services.store.list_endpoints() if e.authority_id == authority_id_of("edge")]
    assert len(endpoints) == 1 and endpoints[0].name == "device-1.example.com"
    view = describe(endpoints[0], certificates=services.store, revocations=services.store, now=services.clock.now())
    assert {e.record.serial: e.status for e in view.lineage} == {
        str(first.serial_number): "revoked", str(second.serial_number): "active",
    }  # fmt: skip
    revocation = services.store.get_revocation(str(first.serial_number))
    assert revocation is not None and revocation.reason_code == 4
    assert revocation.revoked_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    types = [e.type for e in services.store.list_events(limit=1000) if e.data.get("linkedAuthority") == "edge"]
    assert sorted(types) == sorted([
        "dev.cirrus.certificate.issued", "dev.cirrus.endpoint.created", "dev.cirrus.certificate.issued",
        "dev.cirrus.certificate.revoked",
    ])  # fmt: skip


def test_nothing_is_counted_twice(api: Client, services: Services, other_api: Client, other_dir: Path) -> None:
    token = link(services, other_dir)
    cert = issue(other_api, other_dir, "twice.example.com")
    assert post(api, token, [{"type": "issued", "certificate": b64(cert), "id": "a"}]).status_code == 200
    events_before = len(services.store.list_events(limit=1000))
    # The same report id again: replayed; the same certificate under a new id: a duplicate.
    r = post(api, token, [
        {"type": "issued", "certificate": b64(cert), "id": "a"},
        {"type": "issued", "certificate": b64(cert), "id": "b"},
        {"type": "issued", "certificate": b64(cert)},
    ])  # fmt: skip
    assert [x["status"] for x in r.get_json()["results"]] == ["replayed", "duplicate", "duplicate"]
    revoke = {"type": "revoked", "certificate": b64(cert), "id": "c"}
    assert post(api, token, [revoke]).get_json()["results"][0]["status"] == "recorded"
    assert post(api, token, [{**revoke, "id": "d"}]).get_json()["results"][0]["status"] == "duplicate"
    assert post(api, token, [revoke]).get_json()["results"][0]["status"] == "replayed"
    assert len(services.store.list_events(limit=1000)) == events_before + 1  # only the revocation
    assert len([e for e in services.store.list_endpoints() if e.authority_id == authority_id_of("edge")]) == 1
    # Usage counts the endpoint once, with one certificate at its peak, however often it was reported.
    month = f"{cert.not_valid_before_utc.year:04d}-{cert.not_valid_before_utc.month:02d}"
    usage = read_report(services.store, month, authority_id=authority_id_of("edge"))  # type: ignore[arg-type]
    assert (usage.endpoint_months, [line.peak_active for line in usage.lines]) == (1, [1])


def test_revoked_before_reported_issued_records_both(
    api: Client, services: Services, other_api: Client, other_dir: Path
) -> None:
    token = link(services, other_dir)
    cert = issue(other_api, other_dir, "late.example.com")
    r = post(api, token, [{"type": "revoked", "certificate": b64(cert)}])
    assert r.get_json()["results"][0]["status"] == "recorded"
    assert services.store.get_certificate(str(cert.serial_number)) is not None
    assert services.store.get_revocation(str(cert.serial_number)) is not None


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer edge.", "Basic edge.x", "Bearer edge." + "A" * 43, "Bearer nosuch." + "A" * 43,
])  # fmt: skip
def test_unknown_or_forged_token_is_401(
    api: Client, services: Services, other_api: Client, other_dir: Path, header: str | None
) -> None:
    link(services, other_dir)
    cert = issue(other_api, other_dir, "x.example.com")
    headers = {"Authorization": header} if header is not None else {}
    r = api.post("/linked/v1/report", json={"events": [{"type": "issued", "certificate": b64(cert)}]},
                 headers=headers)  # fmt: skip
    assert r.status_code == 401 and r.get_json()["status"] == 401
    assert services.store.get_certificate(str(cert.serial_number)) is None


def test_token_of_one_link_cannot_report_for_another(
    api: Client, services: Services, other_api: Client, other_dir: Path, authority_dir: Path
) -> None:
    link(services, other_dir, "edge")
    # A second link anchored at the central authority's own CA: its token cannot report `edge`'s certificates.
    own = x509.load_pem_x509_certificates((authority_dir / "certs" / "root_ca.crt").read_bytes())
    token = register(services.store, "mine", roots=own, now=services.clock.now())
    cert = issue(other_api, other_dir, "y.example.com")
    r = post(api, token, [{"type": "issued", "certificate": b64(cert)}])
    assert r.status_code == 400 and "events[0]" in r.get_json()["message"] and "chain" in r.get_json()["message"]


def test_certificate_not_chaining_is_400_and_nothing_is_recorded(
    api: Client, services: Services, other_api: Client, other_dir: Path
) -> None:
    token = link(services, other_dir)
    good = issue(other_api, other_dir, "good.example.com")
    key = ec.generate_private_key(ec.SECP256R1())
    intermediate = x509.load_pem_x509_certificate((other_dir / "certs" / "intermediate_ca.crt").read_bytes())
    now = dt.datetime.now(dt.UTC)
    # Same issuer name as the linked intermediate, signed by another key: a forgery.
    forged = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "f.example")]))
        .issuer_name(intermediate.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    r = post(api, token, [{"type": "issued", "certificate": b64(good)}, {"type": "issued", "certificate": b64(forged)}])
    assert r.status_code == 400 and r.get_json()["message"].startswith("events[1]: certificate does not chain")
    assert services.store.get_certificate(str(good.serial_number)) is None


@pytest.mark.parametrize(("events", "message"), [
    ([], "\"events\" must be a list of 1 to 100 items"),
    ([{"type": "issued"} for _ in range(101)], "\"events\" must be a list of 1 to 100 items"),
    (["x"], "events[0]: must be an object"),
    ([{"type": "renewed", "certificate": "AAAA"}], "events[0]: type must be"),
    ([{"type": "issued", "certificate": "!!"}], "events[0]: certificate is not a PEM or base64 DER"),
    ([{"type": "issued", "certificate": "AAAA"}], "events[0]: certificate is not a PEM or base64 DER"),
    ([{"type": "issued", "certificate": "AAAA", "extra": 1}], "events[0]: unknown member 'extra'"),
])  # fmt: skip
def test_malformed_items_are_400_naming_the_item(
    api: Client, services: Services, other_dir: Path, events: list[Any], message: str
) -> None:
    token = link(services, other_dir)
    r = post(api, token, events)
    assert r.status_code == 400 and r.get_json()["message"].startswith(message), r.text


@pytest.mark.parametrize(("extra", "message"), [
    ({"id": ""}, "events[1]: id must be"),
    ({"id": "a b"}, "events[1]: id must be"),
    ({"reasonCode": 6}, "events[1]: reasonCode must be"),
    ({"reasonCode": True}, "events[1]: reasonCode must be"),
    ({"revokedAt": "2026-01-01T00:00:00"}, "events[1]: revokedAt needs a UTC offset"),
    ({"revokedAt": "yesterday"}, "events[1]: revokedAt must be an RFC 3339"),
    ({"revokedAt": "2999-01-01T00:00:00Z"}, "events[1]: revokedAt is in the future"),
])  # fmt: skip
def test_malformed_revocations_are_400_naming_the_item(
    api: Client, services: Services, other_api: Client, other_dir: Path, extra: dict[str, Any], message: str
) -> None:
    token = link(services, other_dir)
    cert = issue(other_api, other_dir, "r.example.com")
    r = post(api, token, [{"type": "issued", "certificate": b64(cert)},
                          {"type": "revoked", "certificate": b64(cert), **extra}])  # fmt: skip
    assert r.status_code == 400 and r.get_json()["message"].startswith(message), r.text
    assert services.store.get_certificate(str(cert.serial_number)) is None


def test_body_is_strict_bounded_json(api: Client, services: Services, other_dir: Path) -> None:
    token = link(services, other_dir)
    assert post(api, token, raw=b'{"events": [], "events": []}').status_code == 400
    assert post(api, token, raw=b"[1]").status_code == 400
    assert post(api, token, raw=b"{").status_code == 400
    assert post(api, token, raw=b" " * (1 << 20) + b"{}").status_code == 413
    assert api.get("/linked/v1/report").status_code == 405
    assert api.post("/linked/v1/other").status_code == 404


def test_serial_of_another_authority_is_409(
    api: Client, services: Services, other_dir: Path, authority_dir: Path
) -> None:
    # The central authority's own certificate, reported through a link anchored at its own root.
    csr, _ = make_csr("own.example.com")
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "own.example.com")})
    own = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
    roots = x509.load_pem_x509_certificates((authority_dir / "certs" / "root_ca.crt").read_bytes())
    inter = x509.load_pem_x509_certificates((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())
    token = register(services.store, "self", roots=roots, intermediates=inter, now=services.clock.now())
    r = post(api, token, [{"type": "issued", "certificate": b64(own)}])
    assert r.status_code == 409 and r.get_json()["message"].startswith("events[0]: serial already recorded")
    assert services.store.get_certificate(str(own.serial_number)).authority_id == services.settings.authority_id


def test_mtls_client_certificate_pinned_for_the_link_authenticates(
    api: Client, services: Services, other_api: Client, other_dir: Path, authority_dir: Path
) -> None:
    client = issue(api, authority_dir, "edge-reporter.example.com")  # issued by the central: TLS verifies it
    stranger = issue(api, authority_dir, "someone-else.example.com")
    roots = x509.load_pem_x509_certificates((other_dir / "certs" / "root_ca.crt").read_bytes())
    inter = x509.load_pem_x509_certificates((other_dir / "certs" / "intermediate_ca.crt").read_bytes())
    token = register(services.store, "edge", roots=roots, intermediates=inter, client_certificate=client,
                     now=services.clock.now())  # fmt: skip
    cert = issue(other_api, other_dir, "m.example.com")
    body = {"events": [{"type": "issued", "certificate": b64(cert)}]}

    def send(peer: x509.Certificate, headers: dict[str, str] | None = None) -> Any:
        pem = peer.public_bytes(serialization.Encoding.PEM).decode()
        return api.post("/linked/v1/report", json=body, headers=headers or {},
                        environ_overrides={"SSL_CLIENT_CERT": pem})  # fmt: skip

    assert send(stranger).status_code == 401
    assert send(client, {"Authorization": "Bearer edge." + "A" * 43}).status_code == 401  # a token sent is checked
    assert services.store.get_certificate(str(cert.serial_number)) is None
    r = send(client)
    assert r.status_code == 200 and r.get_json()["results"][0]["status"] == "recorded"
    services.revoker.revoke(str(client.serial_number), reason_code=1, reason="", provisioner_id="", mtls=False)
    assert send(client).status_code == 401
    assert post(api, token, body["events"]).status_code == 200  # the token still works
