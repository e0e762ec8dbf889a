"""`cirrus acme eab add|list|remove` against a real `cirrus init` authority (SQLite store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.acme import eab
from shared.cli import main
from shared.config import Settings
from shared.store.open import open_store


def test_eab_cli_roundtrip(authority_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(authority_dir)
    assert main(["acme", "eab", "add", "--dir", d, "--provisioner", "acme", "--reference", "team-a", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["kid"] and len(added["hmacKey"]) >= 43
    # duplicate reference refused
    assert main(["acme", "eab", "add", "--dir", d, "--provisioner", "acme", "--reference", "team-a"]) == 1
    capsys.readouterr()
    assert main(["acme", "eab", "list", "--dir", d, "--provisioner", "acme", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [k["kid"] for k in listed] == [added["kid"]]
    assert "hmacKey" not in listed[0] and added["hmacKey"] not in json.dumps(listed)
    # the stored key is the one printed, and it is durable in the authority's store
    settings = Settings.load(authority_dir / "config.json")
    from shared.clock import SystemClock

    store = open_store(settings.store, clock=SystemClock())
    try:
        doc = store.get_document("acme_eab", added["kid"])
        assert doc is not None and doc[0]["key"] == added["hmacKey"]
    finally:
        store.close()
    assert main(["acme", "eab", "remove", added["kid"], "--dir", d, "--provisioner", "acme"]) == 0
    assert main(["acme", "eab", "remove", "nope", "--dir", d, "--provisioner", "acme"]) == 1
    store = open_store(settings.store, clock=SystemClock())
    try:
        assert eab.list_keys(store, provisioner="acme")[0].removed
    finally:
        store.close()


def test_eab_cli_unknown_provisioner(authority_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["acme", "eab", "add", "--dir", str(authority_dir), "--provisioner", "nope"]) == 1
    assert "no ACME provisioner" in capsys.readouterr().err


def test_every_kid_can_be_passed_to_remove_as_an_argument() -> None:
    """A base64url kid began with '-' one time in 64, and `cirrus acme eab remove KID` then read it as an option."""
    from shared.clock import SystemClock
    from shared.store.memory import MemoryStore

    store = MemoryStore()
    kids = [eab.add_key(store, SystemClock(), provisioner="acme")[0] for _ in range(300)]
    assert all(not k.startswith("-") and k.isalnum() for k in kids)
    assert len(set(kids)) == len(kids)
