"""Usage kept by real issuance: `/1.0/sign`, mTLS `/1.0/renew` and `/1.0/revoke` through the WSGI
app with an injected clock, then the month's report as `cirrus usage` prints it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli import main
from shared.clock import FixedClock
from shared.config import Settings
from shared.runtime import build_services
from tests.helpers import make_csr, mint_token, sign_claims

T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)


def _mtls(cert: x509.Certificate) -> dict[str, str]:
    return {"SSL_CLIENT_CERT": cert.public_bytes(serialization.Encoding.PEM).decode()}


def _usage(capsys: pytest.CaptureFixture[str], authority_dir: Path, month: str) -> dict[str, object]:
    assert main(["usage", "--month", month, "--json", "--dir", str(authority_dir)]) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_sign_renew_and_revoke_keep_the_months_usage(authority_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = FixedClock(T0)
    services = build_services(Settings.load(authority_dir / "config.json"), clock=clock)
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        now = int(T0.timestamp())
        csr, _ = make_csr("meter.example.com")
        token = mint_token(authority_dir, sign_claims("meter.example.com", None, now=now))
        r = api.post("/1.0/sign", json={"csr": csr, "ott": token})
        assert r.status_code == 201, r.text
        first = x509.load_pem_x509_certificate(r.get_json()["crt"].encode())
        # Four renewals of the first certificate at the same instant: five of the endpoint's
        # certificates active at once -> 1 + (5 - 3) = 3 endpoint-months in March.
        serials = [str(first.serial_number)]
        for _ in range(4):
            r = api.post("/1.0/renew", environ_overrides=_mtls(first))
            assert r.status_code == 201, r.text
            serials.append(str(x509.load_pem_x509_certificate(r.get_json()["crt"].encode()).serial_number))
        record = services.store.get_certificate(serials[0])
        assert record is not None
        endpoint_id = record.endpoint_id
        assert {services.store.get_certificate(s).endpoint_id for s in serials} == {endpoint_id}  # type: ignore[union-attr]

        report = _usage(capsys, authority_dir, "2026-03")
        assert report["endpoint_months"] == 3
        (line,) = report["endpoints"]  # type: ignore[misc]
        assert line["id"] == endpoint_id and line["peak_active"] == 5 and line["units"] == 3
        assert line["name"] and line["billable_from"] == "2026-03-10T09:00:00Z"

        # An hour later one is revoked: the five were really active at once, so March keeps 3.
        clock.advance(dt.timedelta(hours=1))
        token = mint_token(authority_dir, sign_claims(serials[1], None, op="revoke", now=now + 3600))
        r = api.post("/1.0/revoke", json={"serial": serials[1], "ott": token, "passive": True})
        assert r.status_code == 200, r.text
        report = _usage(capsys, authority_dir, "2026-03")
        assert report["endpoint_months"] == 3
        revoked = services.store.get_revocation(serials[1])
        assert revoked is not None
    finally:
        services.close()
    assert _usage(capsys, authority_dir, "2026-04")["endpoint_months"] == 0  # 24 h certificates


@pytest.mark.parametrize(
    ("month", "message"),
    [("2026-13", "no such month"), ("March", "YYYY-MM"), ("2026-3", "YYYY-MM")],
)
def test_a_malformed_month_is_one_line_on_stderr(
    authority_dir: Path, capsys: pytest.CaptureFixture[str], month: str, message: str
) -> None:
    assert main(["usage", "--month", month, "--dir", str(authority_dir)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("cirrus usage:")


def test_csv_and_table_forms(authority_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--month", "2026-03", "--csv", "--dir", str(authority_dir)]) == 0
    assert capsys.readouterr().out == "month,id,name,units,billable_from,billable_to,peak_active\n"
    assert main(["usage", "--month", "2026-03", "--dir", str(authority_dir)]) == 0
    assert capsys.readouterr().out.startswith("2026-03: 0 endpoint-months, 0 endpoints")
    assert main(["usage", "--month", "2026-03", "--dir", str(authority_dir / "nowhere")]) == 1
    assert capsys.readouterr().err.startswith("cirrus usage:")
