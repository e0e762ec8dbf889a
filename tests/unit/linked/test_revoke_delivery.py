"""Delivering a central revocation to a linked Cirrus: each outcome of a delivery, and the refusals.

The linked Cirrus is real: its WSGI app served over HTTPS on loopback by Werkzeug's server in a
thread, with the TLS certificate `cirrus up` would use (issued by its own intermediate). The
central is the in-process app of `authority_dir`, with the link registered and its certificate
reported through `POST /linked/v1/report`.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from werkzeug.serving import make_server
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.clock import FixedClock
from shared.events.base import LINKED_REVOCATION_DELIVERED, LINKED_REVOCATION_FAILED
from shared.linked.registry import register
from shared.linked.revoke import COLLECTION, LinkedRevoker, delivery
from shared.linked.revoke_tokens import issue_revoke_token
from shared.model import Event
from shared.runtime import Services
from shared.server import tls_context
from tests.unit.dashboard.test_dashboard import BASE, sign_in
from tests.unit.linked.test_ingest import _other_template, b64, issue, other, other_api, other_dir, post  # noqa: F401


@pytest.fixture
def linked_url(other: Services, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """The linked Cirrus over HTTPS on a loopback port."""
    ctx, _ = tls_context(other, tmp_path)
    server = make_server("127.0.0.1", 0, CirrusApp(other, mounts=default_mounts(other)), threaded=True,
                         ssl_context=ctx)  # fmt: skip
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def reported(services: Services, other_api: Client, other_dir: Path, *, revoke_url: str, token: str,  # noqa: F811
             name: str = "x.linked.example") -> x509.Certificate:  # fmt: skip
    """Register the link (with its revoke endpoint) and report one certificate it issued."""
    roots = x509.load_pem_x509_certificates((other_dir / "certs" / "root_ca.crt").read_bytes())
    inter = x509.load_pem_x509_certificates((other_dir / "certs" / "intermediate_ca.crt").read_bytes())
    if services.store.get_document("linked_authorities", "edge") is None:
        link_token = register(services.store, "edge", roots=roots, intermediates=inter, revoke_url=revoke_url,
                              revoke_token=token, now=services.clock.now())  # fmt: skip
        services.extras["link_token"] = link_token
    cert = issue(other_api, other_dir, name)
    central = Client(CirrusApp(services, mounts=default_mounts(services)))
    assert post(central, services.extras["link_token"], [{"type": "issued", "certificate": b64(cert)}]).status_code == 200
    return cert


class _ListSink:
    """A sink that keeps what it was handed (the seam's contract: publish a batch)."""

    def __init__(self, into: list[Event]) -> None:
        self.into = into

    def publish(self, events: Sequence[Event]) -> None:
        self.into.extend(events)


def dashboard_revoke(api: Client, csrf: str, serial: str, reason: str = "1") -> tuple[int, str]:
    r = api.post(f"{BASE}/dashboard/certificates/{serial}/revoke", data={"csrf": csrf, "reason": reason,
                                                                         "confirm": "yes"})  # fmt: skip
    return r.status_code, r.text


def test_delivered_and_already_revoked_there_both_count_as_delivered(
    api: Client, services: Services, other: Services, other_api: Client, other_dir: Path, linked_url: str  # noqa: F811
) -> None:
    token = issue_revoke_token(other.store, label="central", now=other.clock.now())
    first = reported(services, other_api, other_dir, revoke_url=f"{linked_url}/revoke", token=token)
    second = reported(services, other_api, other_dir, revoke_url=f"{linked_url}/revoke", token=token,
                      name="y.linked.example")  # fmt: skip
    csrf = sign_in(api, services)
    status, text = dashboard_revoke(api, csrf, str(first.serial_number), reason="4")
    assert status == 200 and "the linked authority revoked it." in text
    there = other.store.get_revocation(str(first.serial_number))
    assert there is not None and there.reason_code == 4 and there.reason.startswith("dashboard: ")
    sent = delivery(services.store, str(first.serial_number))
    assert sent is not None and (sent["state"], sent["attempts"]) == ("delivered", 1)
    # Revoked at the linked authority already (its own operator, or a first answer lost): delivered, not twice.
    assert other.store.get_revocation(str(second.serial_number)) is None
    other.revoker.revoke(str(second.serial_number), reason_code=1, reason="local", provisioner_id="", mtls=False)
    status, text = dashboard_revoke(api, csrf, str(second.serial_number))
    assert status == 200 and "the linked authority revoked it." in text
    sent = delivery(services.store, str(second.serial_number))
    assert sent is not None and sent["state"] == "delivered" and "already revoked" in sent["result"]
    assert other.store.get_revocation(str(second.serial_number)).reason == "local"  # type: ignore[union-attr]
    # Both are revoked at the central too, once each.
    events = [e for e in services.store.list_events(limit=1000) if e.type.endswith("certificate.revoked")]
    assert sorted(e.subject for e in events) == sorted([str(first.serial_number), str(second.serial_number)])
    # Each delivery raised one `linked.revocation.delivered` event, in the log, from the link's source.
    outcomes = [e for e in services.store.list_events(limit=1000) if e.type.startswith("dev.cirrus.linked.")]
    assert sorted((e.type, e.subject) for e in outcomes) == sorted(
        (LINKED_REVOCATION_DELIVERED, str(c.serial_number)) for c in (first, second))
    assert all(e.source == "cirrus-ca/linked-edge" and e.data["linkedAuthority"] == "edge"
               and e.data["attempts"] == 1 for e in outcomes)  # fmt: skip


def test_a_refused_delivery_is_retried_then_dead_lettered(
    api: Client, services: Services, other: Services, other_api: Client, other_dir: Path, linked_url: str,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    issue_revoke_token(other.store, label="central", now=other.clock.now())
    wrong = "rvk-000000000000." + "A" * 43
    cert = reported(services, other_api, other_dir, revoke_url=f"{linked_url}/revoke", token=wrong)
    serial = str(cert.serial_number)
    csrf = sign_in(api, services)
    status, text = dashboard_revoke(api, csrf, serial)
    assert status == 200 and "will be retried" in text
    assert "last error: the linked authority answered 401: invalid revoke token" in text
    assert services.store.get_revocation(serial) is not None  # recorded here all the same
    now = services.clock.now()
    published: list[Event] = []
    sink = _ListSink(published)
    for attempt in range(2, 9):  # each retry after its backoff; the 8th is the last
        now += dt.timedelta(hours=5)
        with caplog.at_level(logging.ERROR, logger="cirrus.linked"):
            assert LinkedRevoker(store=services.store, clock=FixedClock(now), sinks=[sink]).retry_due() == 0  # type: ignore[arg-type]
        sent = delivery(services.store, serial)
        assert sent is not None and sent["attempts"] == attempt
        # No outcome event while it is still being retried; one `failed` once dead-lettered.
        assert [e.type for e in published] == ([LINKED_REVOCATION_FAILED] if attempt == 8 else [])
    assert sent["state"] == "dead" and "401" in sent["lastError"]
    logged = [e for e in services.store.list_events(limit=1000) if e.type == LINKED_REVOCATION_FAILED]
    assert [e.id for e in logged] == [published[0].id]
    assert logged[0].subject == serial and logged[0].data["attempts"] == 8 and "401" in logged[0].data["error"]
    assert not any(e.type == LINKED_REVOCATION_DELIVERED for e in services.store.list_events(limit=1000))
    assert any("linked revocation dead-lettered" in r.getMessage() for r in caplog.records)
    assert LinkedRevoker(store=services.store, clock=FixedClock(now + dt.timedelta(days=1))).retry_due() == 0  # type: ignore[arg-type]
    assert other.store.get_revocation(serial) is None
    page = api.get(f"{BASE}/dashboard/certificates/{serial}")
    assert "after 8 attempts, no more retries" in page.text


def test_a_link_without_a_revoke_endpoint_offers_no_revoke(
    api: Client, services: Services, other_api: Client, other_dir: Path  # noqa: F811
) -> None:
    cert = reported(services, other_api, other_dir, revoke_url="", token="")
    serial = str(cert.serial_number)
    csrf = sign_in(api, services)
    page = api.get(f"{BASE}/dashboard/certificates/{serial}")
    assert page.status_code == 200 and "/revoke" not in page.text
    status, text = dashboard_revoke(api, csrf, serial)
    assert status == 400 and "no revoke endpoint" in text
    assert services.store.get_revocation(serial) is None and delivery(services.store, serial) is None
    # Without the CSRF token nothing happens either.
    r = api.post(f"{BASE}/dashboard/certificates/{serial}/revoke", data={"reason": "1", "confirm": "yes"})
    assert r.status_code == 403 and services.store.find_documents(COLLECTION, "state", "pending") == []


def test_rotating_the_revoke_token(
    api: Client, services: Services, other: Services, other_api: Client, other_dir: Path,  # noqa: F811
    linked_url: str, authority_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """The linked side withdraws the old token; deliveries with it are refused (401) and kept; the
    central takes the new one (`cirrus linked set-revoke`) and the sweep then delivers."""
    from shared.cli import main as cli_main
    from shared.linked.revoke_tokens import withdraw_revoke_token

    old = issue_revoke_token(other.store, label="central", now=other.clock.now())
    cert = reported(services, other_api, other_dir, revoke_url=f"{linked_url}/revoke", token=old)
    serial = str(cert.serial_number)
    new = issue_revoke_token(other.store, label="central-2", now=other.clock.now())
    withdraw_revoke_token(other.store, old.split(".")[0], now=other.clock.now())

    csrf = sign_in(api, services)
    status, text = dashboard_revoke(api, csrf, serial)
    assert status == 200 and "answered 401: invalid revoke token" in text
    assert other.store.get_revocation(serial) is None

    (tmp_path / "new-token").write_text(new + "\n")
    assert cli_main(["linked", "set-revoke", "edge", "--revoke-url", f"{linked_url}/revoke",
                     "--revoke-token-file", str(tmp_path / "new-token"), "--dir", str(authority_dir)]) == 0  # fmt: skip
    assert "now go to" in capsys.readouterr().out
    later = FixedClock(services.clock.now() + dt.timedelta(minutes=5))
    assert LinkedRevoker(store=services.store, clock=later).retry_due() == 1  # type: ignore[arg-type]
    sent = delivery(services.store, serial)
    assert sent is not None and (sent["state"], sent["attempts"]) == ("delivered", 2)
    assert other.store.get_revocation(serial) is not None

    # Mistakes are one line each, nothing changed.
    for args, message in ((["nobody"], "no linked authority named 'nobody'"),
                          (["edge", "--revoke-url", "http://x/revoke"], "https://")):  # fmt: skip
        argv = ["linked", "set-revoke", *args]
        if "--revoke-url" not in argv:
            argv += ["--revoke-url", f"{linked_url}/revoke"]
        argv += ["--revoke-token-file", str(tmp_path / "new-token"), "--dir", str(authority_dir)]
        assert cli_main(argv) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
