"""A revocation made in the central's dashboard of a linked authority's certificate, delivered to it.

Two real `cirrus up` instances on loopback: the central (`authority_dir`) and a second authority
in linked mode that reports what it issues. The link is registered at the central with the
linked instance's `/revoke` URL and a revoke token the linked instance issued. The dashboard is
driven over HTTPS like a browser (session cookie, CSRF token, confirmation). The linked
instance's own OCSP responder then says revoked; the delivery's result shows on the central's
certificate page; and when the linked instance reports the revocation back, the central does
not count it twice. A delivery that fails (the linked instance down) is recorded as failed,
kept, and retried by the sweep once the instance is back.
"""

from __future__ import annotations

import datetime as dt
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from shared.clock import FixedClock
from shared.config import Settings
from shared.linked.revoke import COLLECTION, TIMEOUT, LinkedRevoker
from shared.runtime import build_services
from tests.integration.test_linked_mode import (  # noqa: F401 - fixtures
    _other_template,
    cirrus,
    endpoints_at,
    free_port,
    linked_services,
    other_dir,
    serve,
)


@pytest.fixture
def central(authority_dir: Path, tmp_path: Path) -> Iterator[str]:
    """The central authority served by `cirrus up` with ONE worker: while it waits on the linked
    instance's `/revoke` it can take nothing else, so the linked instance must not report the
    revocation back inside that request (it used to: a deadlock until the 5 s timeout)."""
    with serve(authority_dir, tmp_path / "central.log", workers=1) as url:
        yield url


def link_with_revoke(central_dir: Path, other: Path, other_port: int, tmp_path: Path) -> str:
    """Register `other` at the central with its revoke endpoint; returns the report token."""
    revoke_token = cirrus("linked", "revoke-token", "--dir", str(other)).stdout.strip()
    assert revoke_token.startswith("rvk-")
    (tmp_path / "revoke-token").write_text(revoke_token + "\n")
    out = cirrus("linked", "add", "edge", "--root", str(other / "certs" / "root_ca.crt"),
                 "--intermediate", str(other / "certs" / "intermediate_ca.crt"),
                 "--revoke-url", f"https://127.0.0.1:{other_port}/revoke",
                 "--revoke-token-file", str(tmp_path / "revoke-token"), "--dir", str(central_dir))  # fmt: skip
    return out.stdout.strip()


def wait_for(what: str, check: Any, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


class Browser(requests.Session):
    """A session that verifies with the given root on every request (a per-session `verify` loses
    to REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE from the environment)."""

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs["verify"] = self.root
        return super().request(method, url, *args, **kwargs)


def dashboard(central_url: str, central_dir: Path) -> tuple[Browser, str]:
    """A signed-in session at the central's dashboard, and its CSRF token."""
    token = cirrus("dashboard", "token", "--dir", str(central_dir)).stdout.strip()
    web = Browser(str(central_dir / "certs" / "root_ca.crt"))
    r = web.post(f"{central_url}/dashboard/signin", data={"token": token}, timeout=30)
    assert r.status_code == 200 and r.url.endswith("/dashboard/endpoints"), r.text[:500]
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert csrf
    return web, csrf.group(1)


def ocsp_status(base: str, root: Path, cert: x509.Certificate, issuer: x509.Certificate) -> Any:
    import ssl

    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER)
    req = urllib.request.Request(base + "/ocsp", data=der, headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(root)), timeout=30) as r:
        return ocsp.load_der_ocsp_response(r.read()).certificate_status


def events_of(folder: Path, etype: str, subject: str | None = None) -> int:
    s = build_services(Settings.load(folder / "config.json"))
    try:
        return sum(1 for ev in s.store.list_events(limit=10000)
                   if ev.type.endswith(etype) and subject in (None, ev.subject))  # fmt: skip
    finally:
        s.close()


def revoked_events(folder: Path, serial: str) -> int:
    return events_of(folder, "certificate.revoked", serial)


def test_dashboard_revocation_reaches_the_linked_cirrus(central: str, authority_dir: Path, other_dir: Path,  # noqa: F811
                                                       tmp_path: Path) -> None:  # fmt: skip
    other_port = free_port()
    token = link_with_revoke(authority_dir, other_dir, other_port, tmp_path)
    linked_services(other_dir, central, token, authority_dir).close()  # writes the "linked" config
    with serve(other_dir, tmp_path / "other.log", port=other_port) as other_url:
        cirrus("certificate", "edge.linked.example", str(tmp_path / "edge.crt"), str(tmp_path / "edge.key"),
               "--dir", str(other_dir))  # fmt: skip
        cert = x509.load_pem_x509_certificate((tmp_path / "edge.crt").read_bytes())
        serial = str(cert.serial_number)
        wait_for("the central has the reported certificate", lambda: "edge.linked.example" in endpoints_at(authority_dir))

        web, csrf = dashboard(central, authority_dir)
        page = web.get(f"{central}/dashboard/certificates/{serial}", timeout=30)
        assert page.status_code == 200 and f"/dashboard/certificates/{serial}/revoke" in page.text
        started = time.monotonic()
        done = web.post(f"{central}/dashboard/certificates/{serial}/revoke",
                        data={"csrf": csrf, "reason": "1", "confirm": "yes"}, timeout=60)  # fmt: skip
        took = time.monotonic() - started
        assert done.status_code == 200, done.text[:2000]
        assert "the linked authority revoked it." in done.text, done.text[-3000:]
        assert re.search(r'id="linked-delivery"><span class="delivered">delivered</span>', done.text)
        assert took < TIMEOUT - 1, f"the revocation took {took:.1f} s: the central waited on its own report"

        # The linked Cirrus revoked it: its own store, and its OCSP responder (from its published CRL).
        issuer = x509.load_pem_x509_certificates((other_dir / "certs" / "intermediate_ca.crt").read_bytes())[0]
        root = other_dir / "certs" / "root_ca.crt"
        wait_for("the linked OCSP says revoked",
                 lambda: ocsp_status(other_url, root, cert, issuer) == ocsp.OCSPCertStatus.REVOKED)  # fmt: skip
        # The linked instance reports its revocation back (linked mode) from its sweep, after
        # the answer: the central keeps one.
        assert _reports_at(authority_dir, serial) == 1  # the issuance only, so far
        linked_sweep = build_services(Settings.load(other_dir / "config.json"))
        try:
            assert linked_sweep.redeliver_events() == 1 and linked_sweep.redeliver_events() == 0
        finally:
            linked_sweep.close()
        assert _reports_at(authority_dir, serial) == 2
        again = web.post(f"{central}/dashboard/certificates/{serial}/revoke",
                         data={"csrf": csrf, "reason": "1", "confirm": "yes"}, timeout=60)  # fmt: skip
        assert again.status_code == 400  # nothing revoked twice
    assert revoked_events(authority_dir, serial) == 1
    assert revoked_events(other_dir, serial) == 1
    # Each `cirrus up` recorded its provisioners once at its start (provisioner.changed).
    assert events_of(authority_dir, "provisioner.changed") == events_of(other_dir, "provisioner.changed") == 1
    seen = endpoints_at(authority_dir)
    assert [c["status"] for c in seen["edge.linked.example"]["certificates"]] == ["revoked"]


def _reports_at(central_dir: Path, serial: str) -> int:
    """How many reports about `serial` the central took (issued, then revoked)."""
    s = build_services(Settings.load(central_dir / "config.json"))
    try:
        return len(s.store.find_documents("linked_reports", "serial", serial))
    finally:
        s.close()


def test_a_failed_delivery_is_kept_and_retried_by_the_sweep(central: str, authority_dir: Path,
                                                           other_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    other_port = free_port()
    token = link_with_revoke(authority_dir, other_dir, other_port, tmp_path)
    other = linked_services(other_dir, central, token, authority_dir)
    try:  # issued in-process at the linked authority; its sink reports it to the central
        from werkzeug.test import Client

        from shared.api.app import CirrusApp
        from shared.api.mounts import default_mounts
        from tests.helpers import make_csr, mint_sign_token

        csr, _ = make_csr("late.linked.example")
        r = Client(CirrusApp(other, mounts=default_mounts(other))).post(
            "/1.0/sign", json={"csr": csr, "ott": mint_sign_token(other_dir, "late.linked.example")})
        assert r.status_code == 201
        serial = str(x509.load_pem_x509_certificate(r.get_json()["crt"].encode()).serial_number)
    finally:
        other.close()
    wait_for("the central has the reported certificate", lambda: "late.linked.example" in endpoints_at(authority_dir))

    # The linked instance is down: the revocation is recorded at the central, its delivery failed.
    web, csrf = dashboard(central, authority_dir)
    done = web.post(f"{central}/dashboard/certificates/{serial}/revoke",
                    data={"csrf": csrf, "reason": "4", "confirm": "yes"}, timeout=60)  # fmt: skip
    assert done.status_code == 200 and "delivery to the linked authority failed and will be retried" in done.text
    assert re.search(r'id="linked-delivery"><span class="failed">failed</span> after 1 attempts, retried by the sweep; '
                     r"last error: cannot reach the linked authority", done.text), done.text[-3000:]
    central_services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        assert central_services.store.get_revocation(serial) is not None
        # The sweep before the backoff is over does not try again.
        assert LinkedRevoker(store=central_services.store, clock=central_services.clock).retry_due() == 0  # type: ignore[arg-type]
        # It is back; the sweep after the backoff delivers it, once.
        with serve(other_dir, tmp_path / "other.log", port=other_port) as other_url:
            later = FixedClock(central_services.clock.now() + dt.timedelta(minutes=2))
            sweep = LinkedRevoker(store=central_services.store, clock=later)  # type: ignore[arg-type]
            assert sweep.retry_due() == 1 and sweep.retry_due() == 0
            record, _ = central_services.store.get_document(COLLECTION, serial) or ({}, 0)
            assert record["state"] == "delivered" and record["attempts"] == 2 and record["lastError"] == ""
            linked_store = build_services(Settings.load(other_dir / "config.json"))
            try:
                revocation = linked_store.store.get_revocation(serial)
                assert revocation is not None and revocation.reason_code == 4
            finally:
                linked_store.close()
            del other_url
        page = web.get(f"{central}/dashboard/certificates/{serial}", timeout=30)
        assert '<span class="delivered">delivered</span>' in page.text
    finally:
        central_services.close()
