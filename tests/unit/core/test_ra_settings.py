"""The `"ra"` config block (registration authority mode): each invalid field is one clear ConfigError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.errors import ConfigError
from shared.ra import RASettings, load_private_jwk, ra_settings
from shared.runtime import build_services

GOOD = {"upstream": "https://ca.internal:9443", "provisioner": "ra", "key": "secrets/up.jwk"}


def test_valid_block_resolves_paths_and_defaults_root(tmp_path: Path) -> None:
    got = ra_settings(GOOD, base_dir=tmp_path, default_roots=[tmp_path / "root.crt"])
    assert got == RASettings(
        upstream="https://ca.internal:9443", provisioner="ra", key=tmp_path / "secrets/up.jwk",
        roots=(tmp_path / "root.crt",), timeout=10.0, arl="upstream",
    )
    assert ra_settings({**GOOD, "arl": "blobs"}, base_dir=tmp_path, default_roots=[]).arl == "blobs"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"upstream": "http://ca.internal"}, "ra.upstream"),
        ({"provisioner": ""}, "ra.provisioner"),
        ({"key": None}, "ra.key"),
        ({"root": 3}, "ra.root"),
        ({"timeout": 0}, "ra.timeout"),
        ({"timeout": True}, "ra.timeout"),
        ({"arl": "https://elsewhere/arl.crl"}, "ra.arl"),
        ({"arl": None}, "ra.arl"),
    ],
)
def test_invalid_fields(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ra_settings({**GOOD, **change}, base_dir=tmp_path, default_roots=[])


def test_key_must_be_a_private_jwk_for_the_owner_only(tmp_path: Path, authority_dir: Path) -> None:
    key = tmp_path / "up.jwk"
    jwk = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())
    key.write_text(json.dumps({k: v for k, v in jwk.items() if k != "d"}))
    key.chmod(0o600)
    with pytest.raises(ConfigError, match="not a private JWK"):
        load_private_jwk(key)
    key.write_text(json.dumps(jwk))
    assert load_private_jwk(key)["d"] == jwk["d"]
    key.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_private_jwk(key)


def test_ra_config_needs_no_key_but_refuses_crl_publication(authority_dir: Path) -> None:
    cfg = json.loads((authority_dir / "config.json").read_text())
    del cfg["key"]
    cfg["ra"] = {"upstream": "https://127.0.0.1:1", "provisioner": "admin", "key": "secrets/provisioner.jwk"}
    (authority_dir / "secrets" / "provisioner.jwk").chmod(0o600)
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"crl\.enabled"):
        build_services(Settings.load(authority_dir / "config.json"))
    cfg["crl"]["enabled"] = False
    (authority_dir / "config.json").write_text(json.dumps(cfg))
    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        assert services.ra_upstream is not None
        assert services.issuing().issuer.certificate == services.intermediates[0]
    finally:
        services.close()
