"""`cirrus crl publish|show` on an authority made by `cirrus init`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509

from shared.cli import main


def test_publish_then_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca"
    assert main(["init", "--dir", str(ca)]) == 0
    capsys.readouterr()
    assert main(["crl", "publish", "--dir", str(ca), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(["crl", "publish", "--dir", str(ca), "--json"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert first[0]["published"] and second[0]["crlNumber"] == first[0]["crlNumber"] + 1
    assert main(["crl", "show", "--dir", str(ca), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["crlNumber"] == second[0]["crlNumber"] and shown["entries"] == 0
    published = next(ca.rglob("*.crl"))
    crl = x509.load_der_x509_crl(published.read_bytes())
    inter = x509.load_pem_x509_certificate((ca / "certs" / "intermediate_ca.crt").read_bytes())
    assert crl.is_signature_valid(inter.public_key())  # type: ignore[arg-type]
