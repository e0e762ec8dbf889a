"""lego (Debian `lego`) against Cirrus: http-01, tls-alpn-01 and dns-01 on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from tests.interop.conftest import ACMEHTTPS, client_env

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _lego(acme: ACMEHTTPS, tmp_path: Path, domain: str, *challenge: str, extra_env=None) -> Path:  # type: ignore[no-untyped-def]
    return lego(acme.directory(), acme.ca_bundle, tmp_path, domain, *challenge, extra_env=extra_env)


def lego(directory: str, ca_bundle: Path, tmp_path: Path, domain: str, *challenge: str, extra_env=None) -> Path:  # type: ignore[no-untyped-def]
    """Run `lego ... run` against an ACME directory; return the certificate file it wrote."""
    if shutil.which("lego") is None:
        pytest.fail("lego is missing: apt-get install lego")
    env = client_env(LEGO_CA_CERTIFICATES=str(ca_bundle), **(extra_env or {}))
    cmd = [
        "lego",
        "--server",
        directory,
        "--accept-tos",
        "--email",
        "ops@example.com",
        "--path",
        str(tmp_path / "lego"),
        "--domains",
        domain,
        *challenge,
        "run",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    crt = tmp_path / "lego" / "certificates" / f"{domain.replace('*', '_')}.crt"
    return crt


def _check(acme: ACMEHTTPS, crt: Path, domain: str) -> None:
    chain = x509.load_pem_x509_certificates(crt.read_bytes())
    leaf = chain[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == [domain]
    assert chain[1] == acme.ca.intermediate
    assert acme.store.get_certificate(str(leaf.serial_number)) is not None


def test_lego_http01(acme_https: ACMEHTTPS, tmp_path: Path) -> None:
    crt = _lego(acme_https, tmp_path, "http.lego.test", "--http", "--http.port", f"127.0.0.1:{acme_https.http01_port}")
    _check(acme_https, crt, "http.lego.test")


def test_lego_tlsalpn01(acme_https: ACMEHTTPS, tmp_path: Path) -> None:
    crt = _lego(acme_https, tmp_path, "tls.lego.test", "--tls", "--tls.port", f"127.0.0.1:{acme_https.tlsalpn01_port}")
    _check(acme_https, crt, "tls.lego.test")


def test_lego_dns01_with_challtestsrv(acme_https: ACMEHTTPS, tmp_path: Path) -> None:
    hook = tmp_path / "dns-hook.py"
    hook.write_text(
        "import json, sys, urllib.request\n"
        f"mgmt = 'http://127.0.0.1:{acme_https.dns.mgmt_port}'\n"
        "action, fqdn, value = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "path, body = ('set-txt', {'host': fqdn, 'value': value}) if action == 'present' "
        "else ('clear-txt', {'host': fqdn})\n"
        "req = urllib.request.Request(f'{mgmt}/{path}', data=json.dumps(body).encode(), method='POST')\n"
        "urllib.request.urlopen(req, timeout=5).read()\n"
    )
    wrapper = tmp_path / "dns-hook.sh"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {hook} "$@"\n')
    wrapper.chmod(0o755)
    env = {"EXEC_PATH": str(wrapper), "EXEC_POLLING_INTERVAL": "1", "EXEC_PROPAGATION_TIMEOUT": "30"}
    crt = _lego(
        acme_https,
        tmp_path,
        "*.dns.lego.test",
        "--dns",
        "exec",
        "--dns.resolvers",
        acme_https.dns.resolver,
        "--dns.disable-cp",
        extra_env=env,
    )
    _check(acme_https, crt, "*.dns.lego.test")
