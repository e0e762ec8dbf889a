"""The dashboard's inventory pages in headless Chromium against a real `cirrus up` (issue 17 item 4).

An inventory filled with `cirrus inventory` while the server runs; sign in with a
`cirrus dashboard token`, reach the inventories through the navigation, open one, jump with
"Start after key", export CSV, and run the same DOM accessibility checks (labels, captions,
language, contrast) as the other dashboard pages. Screenshots under `screenshots/`.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_dashboard_browser import CHROMIUM, CHROMIUM_ARGS, _accessibility, _base
from tests.interop.test_cli_session import server  # noqa: F401 - the `cirrus up` fixture

pytestmark = pytest.mark.interop


def _cirrus(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (infra/test.sh)")
def test_inventory_pages_in_chromium(server: Any,  # noqa: F811 - the imported fixture
                                     authority_dir: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    d = str(authority_dir)
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps({f"vm-{i:03d}": {"workload": f"w{i}", "zone": "<b>eu</b>"} for i in range(60)}))
    _cirrus("inventory", "create", "hosts", "--kind", "hosts", "--dir", d)
    _cirrus("inventory", "import", "hosts", str(hosts), "--dir", d)
    token = _cirrus("dashboard", "token", "--dir", d).strip()
    base = _base(authority_dir)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(ignore_https_errors=True, accept_downloads=True)
            page = context.new_page()
            page.goto(base + "/dashboard/signin")
            page.get_by_label("Admin token").fill(token)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/dashboard/endpoints")
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Inventories").click()
            page.wait_for_url("**/dashboard/inventories")
            _accessibility(page)
            page.screenshot(path=str(shots / "1-inventories.png"))

            page.get_by_role("link", name="hosts").click()
            page.wait_for_url("**/dashboard/inventories/hosts")
            assert page.locator("table tbody tr").count() == 50
            assert page.get_by_role("table", name="Entries of hosts").is_visible()
            assert "<b>eu</b>" in page.locator("table tbody tr").first.inner_text()  # shown as text, not markup
            _accessibility(page)
            page.screenshot(path=str(shots / "2-entries.png"), full_page=True)
            page.get_by_role("link", name="Next page").click()
            page.wait_for_load_state()
            assert page.locator("table tbody tr").count() == 10

            page.get_by_label("Start after key").fill("vm-057")
            page.get_by_role("button", name="Show").click()
            page.wait_for_load_state()
            rows = page.locator("table tbody tr")
            assert rows.count() == 2 and rows.first.inner_text().startswith("vm-058")
            _accessibility(page)
            with page.expect_download() as info:
                page.get_by_role("link", name="Export this page as CSV").click()
            target = tmp_path / "hosts.csv"
            info.value.save_as(str(target))
            exported = list(csv.DictReader(io.StringIO(target.read_text())))
            assert [r["key"] for r in exported] == ["vm-058", "vm-059"]
            assert json.loads(exported[0]["entry"]) == {"workload": "w58", "zone": "<b>eu</b>"}
            page.screenshot(path=str(shots / "3-after.png"))
        finally:
            browser.close()
    assert len(list(shots.glob("*.png"))) == 3
