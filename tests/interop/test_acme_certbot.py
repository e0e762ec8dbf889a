"""certbot (PyPI) against Cirrus: issue, renew and revoke with http-01 standalone; EAB."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from shared.acme import eab
from shared.clock import SystemClock
from tests.interop.conftest import ACMEHTTPS, client_env

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _certbot(acme: ACMEHTTPS, tmp_path: Path, *args: str, provisioner: str = "acme") -> str:
    exe = shutil.which("certbot")
    if exe is None:
        pytest.fail("certbot is missing: pip install certbot")
    base = [
        exe,
        "--non-interactive",
        "--server",
        acme.directory(provisioner),
        "--config-dir",
        str(tmp_path / "etc"),
        "--work-dir",
        str(tmp_path / "work"),
        "--logs-dir",
        str(tmp_path / "logs"),
    ]
    proc = subprocess.run(
        [*base, *args],
        env=client_env(REQUESTS_CA_BUNDLE=str(acme.ca_bundle)),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _issue_args(acme: ACMEHTTPS, domain: str) -> list[str]:
    return [
        "certonly",
        "--standalone",
        "--preferred-challenges",
        "http-01",
        "--http-01-port",
        str(acme.http01_port),
        "--http-01-address",
        "127.0.0.1",
        "--agree-tos",
        "--register-unsafely-without-email",
        "-d",
        domain,
    ]


def _leaf(tmp_path: Path, domain: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((tmp_path / "etc" / "live" / domain / "cert.pem").read_bytes())


def test_certbot_issue_renew_revoke(acme_https: ACMEHTTPS, tmp_path: Path) -> None:
    domain = "www.certbot.test"
    _certbot(acme_https, tmp_path, *_issue_args(acme_https, domain))
    first = _leaf(tmp_path, domain)
    assert first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == [domain]
    assert acme_https.store.get_certificate(str(first.serial_number)) is not None

    _certbot(
        acme_https,
        tmp_path,
        "renew",
        "--no-random-sleep-on-renew",
        "--force-renewal",
        "--cert-name",
        domain,
        "--http-01-port",
        str(acme_https.http01_port),
        "--http-01-address",
        "127.0.0.1",
    )
    second = _leaf(tmp_path, domain)
    assert second.serial_number != first.serial_number
    record = acme_https.store.get_certificate(str(second.serial_number))
    assert record is not None
    # certbot 5.8 does not send RFC 9773 `replaces`; that path is covered in tests/unit/acme.

    _certbot(
        acme_https, tmp_path, "revoke", "--cert-name", domain, "--reason", "superseded", "--no-delete-after-revoke"
    )
    revocation = acme_https.store.get_revocation(str(second.serial_number))
    assert revocation is not None and revocation.reason_code == 4


def test_certbot_eab(acme_https: ACMEHTTPS, tmp_path: Path) -> None:
    kid, key = eab.add_key(acme_https.store, SystemClock(), provisioner="eab", reference="certbot")
    domain = "eab.certbot.test"
    _certbot(
        acme_https,
        tmp_path,
        *_issue_args(acme_https, domain),
        # `--opt=value`: a base64url key may begin with "-", which argparse would take for an option.
        f"--eab-kid={kid}",
        f"--eab-hmac-key={key}",
        provisioner="eab",
    )
    assert acme_https.store.get_certificate(str(_leaf(tmp_path, domain).serial_number)) is not None
    bound = eab.list_keys(acme_https.store, provisioner="eab")[0]
    assert bound.account_id and bound.bound_at


def test_certbot_without_eab_is_refused(acme_https: ACMEHTTPS, tmp_path: Path) -> None:
    exe = shutil.which("certbot")
    assert exe is not None
    proc = subprocess.run(
        [
            exe,
            "--non-interactive",
            "--server",
            acme_https.directory("eab"),
            "--config-dir",
            str(tmp_path / "etc"),
            "--work-dir",
            str(tmp_path / "work"),
            "--logs-dir",
            str(tmp_path / "logs"),
            *_issue_args(acme_https, "no-eab.certbot.test"),
        ],
        env=client_env(REQUESTS_CA_BUNDLE=str(acme_https.ca_bundle)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "external account" in (proc.stdout + proc.stderr).lower()
    assert acme_https.ca.issued == []
