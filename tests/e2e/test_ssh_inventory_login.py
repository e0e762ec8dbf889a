"""An e-mail mapped to a POSIX user name in an SSH certificate, end to end (issue 15 item 4's example).

A real `cirrus up` over TLS; the JWK provisioner requires an entry in the `people` inventory, looked
up by the token's `email`, and its SSH template takes the certificate's principal from
`.Inventory.username`. The inventory is filled with `cirrus inventory` while the server runs; a
token carrying the e-mail (as `step ssh certificate` mints it, plus `email`) gets a user
certificate whose only principal `ssh-keygen -L` shows is `alice`. An e-mail without an entry is
step-ca's 403 and no certificate is recorded.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.config import Settings
from shared.store.sqlite import SQLiteStore
from tests.e2e.test_ssh_host_gcp import post
from tests.helpers import mint_token, sign_claims
from tests.interop.test_cli_session import cirrus
from tests.served import cirrus_up
from tests.sshhelpers import cert_line, keygen

pytestmark = pytest.mark.interop

TEMPLATE = """{
  "type": {{ toJson .Type }},
  "keyId": {{ toJson .KeyID }},
  "principals": [{{ toJson .Inventory.username }}],
  "extensions": {{ toJson .Extensions }}
}
"""
EMAIL = "alice.liddell@example.com"


@pytest.fixture
def ca(authority_dir: Path, tmp_path: Path) -> Iterator[str]:
    (authority_dir / "user.tpl").write_text(TEMPLATE)

    def edit(cfg: dict[str, Any]) -> None:
        jwk = next(p for p in cfg["authority"]["provisioners"] if p["type"] == "JWK")
        jwk["options"] = {"inventory": {"name": "people", "key": "email", "require": True},
                          "ssh": {"templateFile": "user.tpl"}}

    with cirrus_up(authority_dir, tmp_path, edit=edit, workers=1) as url:
        yield url


def _token(authority_dir: Path, ca: str, email: str) -> str:
    claims = sign_claims(email, None, op="ssh/sign", step={"ssh": {"certType": "user"}}, email=email)
    claims["aud"] = f"{ca}/1.0/ssh/sign"
    return mint_token(authority_dir, claims)


def _ssh_rows(authority_dir: Path) -> int:
    store = SQLiteStore(Settings.load(authority_dir / "config.json").store.removeprefix("sqlite:"))
    try:
        return len(store.list_endpoints(limit=100))
    finally:
        store.close()


def test_an_email_becomes_a_posix_user_name_in_the_ssh_certificate(ca: str, authority_dir: Path,
                                                                   tmp_path: Path) -> None:
    d, root = str(authority_dir), authority_dir / "certs" / "root_ca.crt"
    _, pub = keygen(tmp_path, "id_ed25519", "-t", "ed25519")
    cirrus("inventory", "create", "people", "--kind", "people", "--dir", d)

    # No entry yet: refused with step-ca's 403, nothing recorded.
    status, answer = post(f"{ca}/1.0/ssh/sign", {"publicKey": pub, "ott": _token(authority_dir, ca, EMAIL)}, root)
    assert (status, answer) == (403, {"status": 403, "message": "the credential has no entry in the inventory"})
    assert _ssh_rows(authority_dir) == 0

    cirrus("inventory", "set", "people", EMAIL, json.dumps({"username": "alice"}), "--dir", d)
    status, answer = post(f"{ca}/1.0/ssh/sign", {"publicKey": pub, "ott": _token(authority_dir, ca, EMAIL)}, root)
    assert status == 201, answer
    path = tmp_path / "id_ed25519-cert.pub"
    path.write_text(cert_line(str(answer["crt"])))
    shown = subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True, text=True, check=True).stdout
    assert "ssh-ed25519-cert-v01@openssh.com user certificate" in shown
    assert f'Key ID: "{EMAIL}"' in shown
    assert "Principals: \n                alice\n        Critical Options" in shown  # alice, and only alice
    assert "permit-pty" in shown.split("Extensions:")[1]
    assert _ssh_rows(authority_dir) == 1
