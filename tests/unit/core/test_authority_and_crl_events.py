"""`authority.expiring` once per CA certificate, and `crl.failed` when publication fails (issue 17 item 1)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.alerts import run_authority_alerts
from shared.cli.crl import run_publish
from shared.config import Settings
from shared.runtime import build_services
from shared.store.memory import MemoryStore

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def _ca(days_left: int) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"CA {days_left}")])
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(NOW - dt.timedelta(days=3000))
        .not_valid_after(NOW + dt.timedelta(days=days_left))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip


def test_authority_expiring_once_per_certificate() -> None:
    store = MemoryStore()
    soon, later = _ca(60), _ca(400)
    raised = run_authority_alerts([soon, later], authority_id="a", ledger=store, events=store, now=NOW)
    assert [(e.type, e.subject) for e in raised] == [("dev.cirrus.authority.expiring", str(soon.serial_number))]
    again = run_authority_alerts([soon, later], authority_id="a", ledger=store, events=store,
                                 now=NOW + dt.timedelta(days=1))  # fmt: skip
    assert again == []
    assert [e.type for e in store.list_events(limit=10)] == ["dev.cirrus.authority.expiring"]


def test_crl_publication_failure_is_an_event(authority_dir: Path, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "blobs-file"
    not_a_folder.write_text("a file where the CRL folder should be")
    config = json.loads((authority_dir / "config.json").read_text())
    config["blobs"] = f"file:{not_a_folder}"
    (authority_dir / "config.json").write_text(json.dumps(config))
    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        with pytest.raises(Exception):  # noqa: B017 - whatever the blob store raises is re-raised
            run_publish(services)
        failed = [e for e in services.store.list_events(limit=100) if e.type == "dev.cirrus.crl.failed"]
        assert len(failed) == 1 and failed[0].data["authorityId"] == services.settings.authority_id
        assert "error" in failed[0].data
    finally:
        services.close()
