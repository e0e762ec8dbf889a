"""The dashboard in headless Chromium (Debian's `chromium`, driven by Playwright) against a real `cirrus up`.

Sign in with a `cirrus dashboard token`, find an endpoint, open its lineage, revoke a
certificate (confirmed; the endpoint then shows it revoked and OCSP says revoked),
export CSV, and check on the DOM what an accessibility checker would: every form
control labelled, images with alt text, the page language, keyboard focus reaching
the controls, and text contrast of at least 4.5:1. Screenshots of each step are kept
under the test's tmp dir (`screenshots/`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.helpers import make_csr, mint_sign_token
from tests.interop.test_cli_session import server  # noqa: F401 - the `cirrus up` fixture (with this module's authority_dir)

pytestmark = pytest.mark.interop

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def authority_dir(authority_dir: Path) -> Path:
    """The shared authority, publishing its CRL at each revocation so OCSP answers at once."""
    cfg = json.loads((authority_dir / "config.json").read_text())
    cfg.setdefault("crl", {})["publishOnRevoke"] = True
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    return authority_dir


def _base(authority_dir: Path) -> str:
    return "https://" + json.loads((authority_dir / "config.json").read_text())["address"]


def _tls(authority_dir: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(authority_dir / "certs" / "root_ca.crt"))
    ctx.check_hostname = False
    return ctx


def _issue(base: str, ctx: ssl.SSLContext, authority_dir: Path, name: str) -> x509.Certificate:
    csr, _ = make_csr(name)
    body = json.dumps({"csr": csr, "ott": mint_sign_token(authority_dir, name)}).encode()
    req = urllib.request.Request(base + "/1.0/sign", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return x509.load_pem_x509_certificate(json.loads(r.read())["crt"].encode())


def _ocsp_status(base: str, ctx: ssl.SSLContext, cert: x509.Certificate, issuer: x509.Certificate) -> Any:
    der = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build().public_bytes(
        serialization.Encoding.DER)
    req = urllib.request.Request(base + "/ocsp", data=der, headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
        return ocsp.load_der_ocsp_response(r.read()).certificate_status


def _luminance(rgb: str) -> float:
    values = [int(v) / 255 for v in re.findall(r"\d+", rgb)[:3]]
    lin = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in values]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _contrast(fg: str, bg: str) -> float:
    a, b = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def _accessibility(page: Any) -> None:
    """The DOM checks: labelled controls, alt text, language, contrast of text on its background."""
    problems = page.evaluate("""() => {
        const out = [];
        if (!document.documentElement.lang) out.push('html without lang');
        for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
            const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]'))
                || el.getAttribute('aria-label') || el.closest('label');
            if (!labelled) out.push('unlabelled ' + el.outerHTML);
        }
        for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) out.push('img without alt');
        for (const t of document.querySelectorAll('table')) if (!t.querySelector('caption')) out.push('table without caption');
        return out;
    }""")
    assert problems == [], problems
    pairs = page.evaluate("""() => {
        const bg = el => { for (; el; el = el.parentElement) {
            const c = getComputedStyle(el).backgroundColor;
            if (c && c !== 'rgba(0, 0, 0, 0)' && c !== 'transparent') return c; } return 'rgb(255, 255, 255)'; };
        return [...document.querySelectorAll('a, td, th, p, label, button, h1, dt, dd, span')]
            .filter(el => el.offsetParent !== null && el.textContent.trim())
            .map(el => [el.tagName + ':' + el.textContent.trim().slice(0, 30), getComputedStyle(el).color, bg(el)]);
    }""")
    low = [(what, fg, bg) for what, fg, bg in pairs if _contrast(fg, bg) < 4.5]
    assert low == [], low


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (infra/test.sh)")
def test_dashboard_in_chromium(server: Any,  # noqa: F811 - the imported fixture
                                 authority_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    base, ctx = _base(authority_dir), _tls(authority_dir)
    shop = _issue(base, ctx, authority_dir, "shop.example.com")
    _issue(base, ctx, authority_dir, "mail.example.com")
    issuer = x509.load_pem_x509_certificates((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())[0]
    token = subprocess.run(
        [sys.executable, "-m", "shared.cli", "dashboard", "token", "--dir", str(authority_dir)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True, accept_downloads=True)
            page = context.new_page()
            page.goto(base + "/dashboard/endpoints")
            assert page.url.endswith("/dashboard/signin")
            _accessibility(page)
            page.screenshot(path=str(shots / "1-signin.png"))
            # Keyboard: Tab from the top reaches the token field, typing and Enter signs in.
            for _ in range(5):
                page.keyboard.press("Tab")
                if page.evaluate("document.activeElement.id") == "token":
                    break
            assert page.evaluate("document.activeElement.id") == "token"
            page.keyboard.type(token)
            page.keyboard.press("Enter")
            page.wait_for_url("**/dashboard/endpoints")
            cookie = next(c for c in context.cookies() if c["name"].startswith("__Host-"))
            assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
            assert page.evaluate("document.cookie") == ""  # HttpOnly: not visible to scripts
            _accessibility(page)
            page.screenshot(path=str(shots / "2-endpoints.png"))

            page.get_by_label("Name").fill("shop")
            page.get_by_role("button", name="Search").click()
            page.wait_for_load_state()
            rows = page.locator("table tbody tr")
            assert rows.count() == 1 and "shop.example.com" in rows.inner_text()
            page.get_by_role("link", name="shop.example.com").click()
            page.wait_for_load_state()
            assert page.get_by_role("list", name="Certificate lineage").locator("li").count() == 1
            _accessibility(page)
            page.screenshot(path=str(shots / "3-lineage.png"))
            endpoint_url = page.url

            page.get_by_role("link", name=f"Certificate {shop.serial_number}").click()
            page.wait_for_load_state()
            page.get_by_label("Reason").select_option(label="keyCompromise")
            page.get_by_role("button", name="Revoke…").click()
            page.wait_for_load_state()
            assert "Confirm revocation" in page.locator("h1").inner_text()
            page.screenshot(path=str(shots / "4-confirm.png"))
            page.get_by_role("button", name="Yes, revoke it").click()
            page.wait_for_load_state()
            assert "Certificate revoked." in page.locator("main").inner_text()
            page.screenshot(path=str(shots / "5-revoked.png"))

            page.goto(endpoint_url)
            assert page.locator("ol.timeline .revoked").count() == 1
            page.screenshot(path=str(shots / "6-lineage-revoked.png"))
            assert _ocsp_status(base, ctx, shop, issuer) == ocsp.OCSPCertStatus.REVOKED

            page.goto(base + "/dashboard/endpoints")
            with page.expect_download() as info:
                page.get_by_role("link", name="Export this page as CSV").click()
            download = info.value
            target = tmp_path / "endpoints.csv"
            download.save_as(str(target))
            rows_csv = {r["name"]: r for r in csv.DictReader(io.StringIO(target.read_text()))}
            assert rows_csv["shop.example.com"]["status"] == "revoked"
            assert rows_csv["mail.example.com"]["status"] == "active"

            for path in ("/dashboard/certificates", "/dashboard/authorities", "/dashboard/provisioners",
                         "/dashboard/events"):
                response = page.goto(base + path)
                assert response is not None and response.status == 200, path
                assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
                _accessibility(page)
            page.screenshot(path=str(shots / "7-events.png"), full_page=True)

            # Usage: this month's two endpoints (shop revoked today still counts), the year's SVG chart.
            response = page.goto(base + "/dashboard/usage")
            assert response is not None and response.status == 200
            assert page.locator("#usage-total strong").inner_text() == "2"
            chart = page.get_by_role("img", name=re.compile("Endpoint-months per month"))
            assert chart.count() == 1 and page.locator("svg.chart rect.bar").count() == 12
            _accessibility(page)
            page.screenshot(path=str(shots / "8-usage.png"), full_page=True)
        finally:
            browser.close()
    assert len(list(shots.glob("*.png"))) == 8
