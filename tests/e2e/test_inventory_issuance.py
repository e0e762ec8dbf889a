"""Inventories at issuance, end to end (issue 15 item 4): a real `cirrus up`, the real `cirrus` client.

The JWK provisioner gets `options.inventory` (looked up by the token's subject, required,
names restricted) and an X.509 template that reads `.Inventory`: the entry adds a SAN and a
custom extension to the certificate. The inventory is filled with `cirrus inventory` while
the server runs (no restart: every issuance reads the store). A subject without an entry,
and a SAN outside the entry's `allowedNames`, are refused with step-ca's 403 and no
certificate is recorded.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from shared.config import Settings
from shared.store.sqlite import SQLiteStore
from tests.served import cirrus_up

pytestmark = pytest.mark.interop

WORKLOAD_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.99.1")
TEMPLATE = """{
  "subject": {"commonName": {{ toJson .Subject.CommonName }}},
  "sans": {{ toJson (append .SANs (dict "type" "dns" "value" .Inventory.workloadDNS)) }},
  "extensions": [{"id": "1.3.6.1.4.1.57264.99.1", "critical": false, "value": {{ toJson .Inventory.workloadDER }}}],
  "keyUsage": ["digitalSignature"],
  "extKeyUsage": ["serverAuth", "clientAuth"]
}
"""


def cirrus(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def server(authority_dir: Path, tmp_path: Path) -> Iterator[Path]:
    (authority_dir / "leaf.tpl").write_text(TEMPLATE)

    def edit(cfg: dict[str, Any]) -> None:
        jwk = next(p for p in cfg["authority"]["provisioners"] if p["type"] == "JWK")
        jwk["options"] = {
            "x509": {"templateFile": "leaf.tpl"},
            "inventory": {"name": "hosts", "key": "subject", "require": True, "restrictNames": True},
        }

    with cirrus_up(authority_dir, tmp_path, edit=edit, workers=1):
        yield authority_dir


def _fill(d: str, tmp_path: Path) -> None:
    der = base64.b64encode(b"\x0c\x07billing").decode()  # DER UTF8String "billing"
    hosts = tmp_path / "hosts.json"
    hosts.write_text(json.dumps({"svc.example.internal": {
        "workloadDNS": "billing.workloads.internal", "workloadDER": der,
        "allowedNames": ["svc.example.internal", "10.1.2.3"]}}))
    assert cirrus("inventory", "create", "hosts", "--kind", "hosts", "--dir", d).returncode == 0
    assert cirrus("inventory", "import", "hosts", str(hosts), "--dir", d).returncode == 0


def _certificates(authority_dir: Path) -> int:
    store = SQLiteStore(Settings.load(authority_dir / "config.json").store.removeprefix("sqlite:"))
    try:
        return len(store.list_endpoints(limit=100))
    finally:
        store.close()


def test_an_inventory_entry_changes_the_sans_and_an_extension(server: Path, tmp_path: Path) -> None:
    d = str(server)
    _fill(d, tmp_path)
    crt, key = tmp_path / "svc.crt", tmp_path / "svc.key"
    done = cirrus("certificate", "svc.example.internal", str(crt), str(key), "--dir", d,
                  "--san", "svc.example.internal", "--san", "10.1.2.3")
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificates(crt.read_bytes())[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["svc.example.internal", "billing.workloads.internal"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    ext = cert.extensions.get_extension_for_oid(WORKLOAD_OID)
    assert not ext.critical and ext.value.value == b"\x0c\x07billing"  # type: ignore[attr-defined]
    verify = subprocess.run(["openssl", "verify", "-CAfile", str(server / "certs" / "root_ca.crt"), "-untrusted",
                             str(server / "certs" / "intermediate_ca.crt"), str(crt)], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr

    # The entry changes (no restart): the next certificate carries the new workload.
    new_der = base64.b64encode(b"\x0c\x07payroll").decode()
    entry = {"workloadDNS": "payroll.workloads.internal", "workloadDER": new_der,
             "allowedNames": ["svc.example.internal"]}
    assert cirrus("inventory", "set", "hosts", "svc.example.internal", json.dumps(entry), "--dir", d).returncode == 0
    crt2, key2 = tmp_path / "svc2.crt", tmp_path / "svc2.key"
    done = cirrus("certificate", "svc.example.internal", str(crt2), str(key2), "--dir", d)
    assert done.returncode == 0, done.stderr
    cert = x509.load_pem_x509_certificates(crt2.read_bytes())[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["svc.example.internal", "payroll.workloads.internal"]
    assert cert.extensions.get_extension_for_oid(WORKLOAD_OID).value.value == b"\x0c\x07payroll"  # type: ignore[attr-defined]


def test_the_inventory_refuses_unknown_subjects_and_names_outside_the_entry(server: Path, tmp_path: Path) -> None:
    d = str(server)
    _fill(d, tmp_path)
    crt, key = tmp_path / "x.crt", tmp_path / "x.key"
    refused = cirrus("certificate", "unknown.example.internal", str(crt), str(key), "--dir", d)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "refused the request (403): the credential has no entry in the inventory" in refused.stderr
    refused = cirrus("certificate", "svc.example.internal", str(crt), str(key), "--dir", d,
                     "--san", "svc.example.internal", "--san", "evil.example.com")
    assert refused.returncode == 1 and "'evil.example.com' is not allowed by the inventory" in refused.stderr
    assert not crt.exists()
    assert _certificates(server) == 0  # nothing was issued or recorded
