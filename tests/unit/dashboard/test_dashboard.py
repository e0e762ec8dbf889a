"""The dashboard through the WSGI app: sign-in, sessions, CSRF, revoke (store and OCSP), CSV, headers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from werkzeug.test import Client

from shared.cli import main as cli_main
from shared.cli.crl import run_publish
from shared.dashboard import session
from shared.runtime import Services
from tests.helpers import make_csr, mint_sign_token

BASE = "https://localhost"


def issue(api: Client, authority_dir: Path, name: str) -> x509.Certificate:
    csr, _ = make_csr(name)
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name)})
    assert r.status_code == 201, r.text
    return x509.load_pem_x509_certificate(r.get_json()["crt"].encode())


def sign_in(api: Client, services: Services) -> str:
    """Sign in with a fresh admin token; returns the page's CSRF token."""
    token = session.issue_admin_token(services.store, services.clock.now())
    r = api.post(f"{BASE}/dashboard/signin", data={"token": token})
    assert r.status_code == 303 and r.headers["Location"] == "/dashboard/endpoints"
    cookie = r.headers["Set-Cookie"]
    for flag in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
        assert flag in cookie, cookie
    page = api.get(f"{BASE}/dashboard/endpoints")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def test_no_session_redirects_to_sign_in(api: Client) -> None:
    for path in ("/dashboard", "/dashboard/endpoints", "/dashboard/certificates", "/dashboard/events"):
        r = api.get(BASE + path)
        assert r.status_code == 303 and r.headers["Location"] == "/dashboard/signin", path
    assert api.post(f"{BASE}/dashboard/certificates/1/revoke", data={"csrf": "x"}).status_code == 401


def test_wrong_token_is_refused(api: Client) -> None:
    r = api.post(f"{BASE}/dashboard/signin", data={"token": "cdt_not-a-token"})
    assert r.status_code == 401 and "Set-Cookie" not in r.headers
    assert "not valid" in r.text


def test_forged_and_expired_sessions_are_refused(api: Client, services: Services) -> None:
    key = session.session_key(services.store)
    now = services.clock.now()
    _, good = session.new_session(key, "admin", now)
    payload, mac = good.split(".")
    forged = f"{payload}.{mac[:-2]}AA"
    other_key = session.new_session(b"k" * 32, "admin", now)[1]
    _, expired = session.new_session(key, "admin", now - session.SESSION_LIFETIME - dt.timedelta(seconds=1))
    for value in (forged, other_key, expired, "garbage", payload):
        api.set_cookie(session.SESSION_COOKIE, value, domain="localhost")
        r = api.get(f"{BASE}/dashboard/endpoints")
        assert r.status_code == 303 and r.headers["Location"] == "/dashboard/signin", value
    api.set_cookie(session.SESSION_COOKIE, good, domain="localhost")
    assert api.get(f"{BASE}/dashboard/endpoints").status_code == 200


def test_cli_prints_a_token_that_signs_in(api: Client, authority_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["dashboard", "token", "--dir", str(authority_dir)]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("cdt_")
    assert api.post(f"{BASE}/dashboard/signin", data={"token": token}).status_code == 303
    assert cli_main(["dashboard", "token", "--dir", str(authority_dir / "missing")]) != 0
    assert "does not exist" in capsys.readouterr().err


def test_revoke_needs_csrf_then_confirmation_and_reaches_ocsp(
    api: Client, services: Services, authority_dir: Path
) -> None:
    cert = issue(api, authority_dir, "web.example.com")
    serial = str(cert.serial_number)
    csrf = sign_in(api, services)
    revoke = f"{BASE}/dashboard/certificates/{serial}/revoke"
    assert api.post(revoke, data={"reason": "1", "confirm": "yes"}).status_code == 403
    assert api.post(revoke, data={"reason": "1", "confirm": "yes", "csrf": csrf + "x"}).status_code == 403
    assert services.store.get_revocation(serial) is None
    confirm = api.post(revoke, data={"reason": "1", "csrf": csrf})
    assert confirm.status_code == 200 and 'name="confirm" value="yes"' in confirm.text
    assert services.store.get_revocation(serial) is None
    done = api.post(revoke, data={"reason": "1", "csrf": csrf, "confirm": "yes"})
    assert done.status_code == 200 and "Certificate revoked." in done.text
    revocation = services.store.get_revocation(serial)
    assert revocation is not None and revocation.reason_code == 1
    assert any(ev.type.endswith("certificate.revoked") and ev.subject == serial
               for ev in services.store.list_events(limit=1000))
    # Revoking again is refused, not a second record.
    again = api.post(revoke, data={"reason": "1", "csrf": csrf, "confirm": "yes"})
    assert again.status_code == 400
    # OCSP (answering from the published CRL) says revoked.
    run_publish(services)
    issuer = services.intermediates[0]
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    r = api.post("/ocsp", data=req.public_bytes(serialization.Encoding.DER),
                 headers={"Content-Type": "application/ocsp-request"})
    assert r.status_code == 200
    answer = ocsp.load_der_ocsp_response(r.data)
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
    # The endpoint's lineage shows it revoked.
    record = services.store.get_certificate(serial)
    assert record is not None
    lineage = api.get(f"{BASE}/dashboard/endpoints/{record.endpoint_id}")
    assert lineage.status_code == 200 and 'class="revoked"' in lineage.text


def test_endpoint_search_paging_and_csv(api: Client, services: Services, authority_dir: Path) -> None:
    for name in ("alpha.example.com", "beta.example.com", "gamma.example.com"):
        issue(api, authority_dir, name)
    sign_in(api, services)
    page = api.get(f"{BASE}/dashboard/endpoints?q=beta")
    assert "beta.example.com" in page.text and "alpha.example.com" not in page.text
    by_expiry = api.get(f"{BASE}/dashboard/endpoints?sort=expiry&status=active")
    assert all(n in by_expiry.text for n in ("alpha", "beta", "gamma"))
    export = api.get(f"{BASE}/dashboard/endpoints?format=csv")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    assert "attachment" in export.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(r["name"] for r in rows) == ["alpha.example.com", "beta.example.com", "gamma.example.com"]
    assert {r["status"] for r in rows} == {"active"}
    for path in ("/certificates", "/provisioners", "/events"):
        r = api.get(f"{BASE}/dashboard{path}?format=csv")
        assert r.status_code == 200 and r.mimetype == "text/csv", path
        assert len(list(csv.reader(io.StringIO(r.text)))) >= 2, path


def test_keyset_pages_cover_every_endpoint_once(api: Client, services: Services, authority_dir: Path) -> None:
    from shared.dashboard import listing

    for i in range(7):
        issue(api, authority_dir, f"host{i}.example.com")
    seen: list[str] = []
    cursor = ""
    while True:
        rows, cursor = listing.list_endpoints(
            services.store, authority_id=services.settings.authority_id, now=services.clock.now(), after=cursor, limit=3
        )
        seen += [r.endpoint.name for r in rows]
        if not cursor:
            break
    assert sorted(seen) == sorted(f"host{i}.example.com" for i in range(7))


def test_html_escapes_and_security_headers(api: Client, services: Services, authority_dir: Path) -> None:
    sign_in(api, services)
    r = api.get(f"{BASE}/dashboard/endpoints?q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert "<script>" not in r.text and "&lt;script&gt;" in r.text
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Frame-Options"] == "DENY"
    for path in ("/authorities", "/provisioners", "/events", "/certificates"):
        page = api.get(f"{BASE}/dashboard{path}")
        assert page.status_code == 200, path
        assert '<html lang="en">' in page.text
    css = api.get(f"{BASE}/dashboard/static/style.css")
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "Root certificates" in api.get(f"{BASE}/dashboard/authorities").text


def test_sign_out_needs_csrf_and_ends_the_session(api: Client, services: Services) -> None:
    csrf = sign_in(api, services)
    assert api.post(f"{BASE}/dashboard/signout", data={}).status_code == 403
    assert api.get(f"{BASE}/dashboard/endpoints").status_code == 200
    out = api.post(f"{BASE}/dashboard/signout", data={"csrf": csrf})
    assert out.status_code == 303 and "Max-Age=0" in out.headers["Set-Cookie"]
    assert api.get(f"{BASE}/dashboard/endpoints").status_code == 303


def test_unknown_or_malformed_targets(api: Client, services: Services) -> None:
    csrf = sign_in(api, services)
    assert api.get(f"{BASE}/dashboard/endpoints/ep-missing").status_code == 404
    assert api.get(f"{BASE}/dashboard/certificates/12345").status_code == 404
    assert api.get(f"{BASE}/dashboard/certificates/a%20b").status_code == 404
    assert api.get(f"{BASE}/dashboard/nowhere").status_code == 404
    revoke = f"{BASE}/dashboard/certificates/12345/revoke"
    assert api.post(revoke, data={"csrf": csrf, "reason": "6", "confirm": "yes"}).status_code == 400  # hold
    assert api.post(revoke, data={"csrf": csrf, "reason": "1", "confirm": "yes"}).status_code == 404
    assert api.put(f"{BASE}/dashboard/endpoints").status_code == 405


def test_expiry_cursor_that_is_malformed_starts_from_now(api: Client, services: Services, authority_dir: Path) -> None:
    issue(api, authority_dir, "cursor.example.com")
    sign_in(api, services)
    for after in ("2026-01-01T00:00:00,1", "garbage", "2026-01-01T00:00:00+00:00,notaserial", ","):
        for path in ("/endpoints?sort=expiry&after=", "/certificates?after="):
            r = api.get(f"{BASE}/dashboard{path}{after}")
            # A malformed cursor restarts from now, so the one current certificate is listed.
            assert r.status_code == 200 and "<tbody><tr>" in r.text, (path, after)
