"""A linked Cirrus's `POST /revoke` with a revoke token (what a central Cirrus delivers), and its refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.test import Client

from shared.cli import main as cli_main
from shared.linked.revoke_tokens import COLLECTION, authenticate_revoke_token, issue_revoke_token
from shared.runtime import Services
from tests.helpers import make_csr, mint_sign_token

REPO = Path(__file__).resolve().parents[3]


def issue(api: Client, authority_dir: Path, name: str) -> str:
    csr, _ = make_csr(name)
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name)})
    assert r.status_code == 201, r.text
    from cryptography import x509

    return str(x509.load_pem_x509_certificate(r.get_json()["crt"].encode()).serial_number)


def revoke(api: Client, token: str, serial: str, **body: object) -> tuple[int, dict[str, object]]:
    r = api.post("/1.0/revoke", json={"serial": serial, "reasonCode": 1, "passive": True, **body},
                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    return r.status_code, r.get_json()


def test_a_revoke_token_revokes_what_this_authority_issued(api: Client, services: Services,
                                                           authority_dir: Path) -> None:  # fmt: skip
    token = issue_revoke_token(services.store, label="central", now=services.clock.now())
    serial = issue(api, authority_dir, "linked.example.com")
    assert revoke(api, token, serial, reason="dashboard: admin") == (200, {"status": "ok"})
    revocation = services.store.get_revocation(serial)
    assert revocation is not None and revocation.reason_code == 1
    assert revocation.provisioner_id == "revoke-token/" + token.split(".")[0]
    # Delivered again (an answer the central lost): refused as already revoked, not a second record.
    status, body = revoke(api, token, serial)
    assert status == 400 and "already revoked" in str(body["message"])


def test_revoke_tokens_that_do_not_authenticate(api: Client, services: Services, authority_dir: Path) -> None:
    token = issue_revoke_token(services.store, label="central", now=services.clock.now())
    serial = issue(api, authority_dir, "kept.example.com")
    token_id, secret = token.split(".")
    other_id = issue_revoke_token(services.store, label="other", now=services.clock.now()).split(".")[0]
    for wrong in (f"{token_id}.{secret[:-1]}A" if secret[-1] != "A" else f"{token_id}.{secret[:-1]}B",
                  f"{other_id}.{secret}",  # a real id with another token's secret
                  "rvk-000000000000." + "A" * 43,  # well-formed, unknown
                  f"{token_id}.{secret}x", "rvk-", f"{token_id}:{secret}"):
        status, body = revoke(api, wrong, serial)
        assert status == 401 and body == {"status": 401, "message": "invalid revoke token"}, wrong
    assert services.store.get_revocation(serial) is None
    # Still step-ca's checks on the body: passive, the serial, and only this authority's certificates.
    assert revoke(api, token, serial, passive=False)[0] == 501
    assert revoke(api, token, "not-a-serial")[0] == 400
    assert revoke(api, token, "123456789")[0] == 404
    assert revoke(api, token, serial, ott="x.y.z")[0] == 400
    assert services.store.get_revocation(serial) is None


def test_only_the_hash_is_kept_and_the_cli_prints_a_token(authority_dir: Path, services: Services,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    assert cli_main(["linked", "revoke-token", "--dir", str(authority_dir)]) == 0
    token = capsys.readouterr().out.strip()
    token_id = authenticate_revoke_token(services.store, f"Bearer {token}")
    data, _ = services.store.get_document(COLLECTION, token_id) or ({}, 0)
    assert token.split(".")[1] not in str(data) and len(str(data["tokenHash"])) == 64
    assert cli_main(["linked", "revoke-token", "--dir", str(authority_dir / "missing")]) != 0
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "token_text", "message"), [
    (["--revoke-url", "https://edge.example:9443/revoke"], None, "go together"),
    (["--revoke-url", "http://edge.example:9443/revoke"], "rvk-x.y", "must be an https:// URL"),
    (["--revoke-url", "https://edge.example/revoke"], "two words", "without spaces"),
    (["--revoke-url", "https://edge.example/revoke"], "", "give both"),
    (["--revoke-url", "https://edge.example/revoke", "--revoke-token-file", "/nonexistent/token"], None, "token"),
])  # fmt: skip
def test_linked_add_revoke_endpoint_mistakes_are_one_line(
    authority_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], token_text: str | None,
    message: str,
) -> None:
    if token_text is not None:
        (tmp_path / "tok").write_text(token_text + "\n")
        extra = [*extra, "--revoke-token-file", str(tmp_path / "tok")]
    root = str(authority_dir / "certs" / "root_ca.crt")
    assert cli_main(["linked", "add", "edge", "--root", root, *extra, "--dir", str(authority_dir)]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_linked_add_keeps_the_revoke_endpoint(authority_dir: Path, services: Services, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    (tmp_path / "tok").write_text("rvk-0123456789ab." + "B" * 43 + "\n")
    root = str(authority_dir / "certs" / "root_ca.crt")
    assert cli_main(["linked", "add", "edge", "--root", root, "--revoke-url", "https://edge.example/revoke",
                     "--revoke-token-file", str(tmp_path / "tok"), "--dir", str(authority_dir)]) == 0  # fmt: skip
    from shared.linked.registry import load

    link = load(services.store, "edge")
    assert link is not None and link.revoke_url == "https://edge.example/revoke"
    assert link.revoke_token == "rvk-0123456789ab." + "B" * 43 and "B" * 43 not in repr(link)


def test_a_withdrawn_revoke_token_is_refused_and_listed(api: Client, services: Services, authority_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """Rotation at the linked side: issue a new token, then `--withdraw` the old one (401 from then on)."""
    assert cli_main(["linked", "revoke-token", "--label", "old central", "--dir", str(authority_dir)]) == 0
    old = capsys.readouterr().out.strip()
    assert cli_main(["linked", "revoke-token", "--label", "new central", "--dir", str(authority_dir)]) == 0
    new = capsys.readouterr().out.strip()
    old_id, new_id = old.split(".")[0], new.split(".")[0]
    serial = issue(api, authority_dir, "rotated.example.com")

    assert cli_main(["linked", "revoke-token", "--withdraw", old_id, "--dir", str(authority_dir)]) == 0
    assert capsys.readouterr().out.startswith(f"{old_id} withdrawn ")
    status, body = revoke(api, old, serial)
    assert (status, body) == (401, {"status": 401, "message": "invalid revoke token"})
    assert services.store.get_revocation(serial) is None

    assert cli_main(["linked", "revoke-token", "--list", "--json", "--dir", str(authority_dir)]) == 0
    listed = {t["id"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed[old_id]["label"] == "old central" and listed[old_id]["withdrawnAt"]
    assert listed[new_id]["withdrawnAt"] is None and "tokenHash" not in listed[new_id]
    assert cli_main(["linked", "revoke-token", "--list", "--dir", str(authority_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{old_id}  withdrawn ") for line in lines)
    assert any(line.startswith(f"{new_id}  active ") and "label='new central'" in line for line in lines)

    assert revoke(api, new, serial) == (200, {"status": "ok"})  # the new token still revokes


@pytest.mark.parametrize(("args", "message"), [
    (["--withdraw", "rvk-000000000000"], "no revoke token rvk-000000000000"),
    (["--withdraw", "central"], "ids look like rvk-"),
    (["--withdraw", "rvk-000000000000", "--list"], "not allowed with argument"),
])
def test_withdraw_mistakes_are_one_line(authority_dir: Path, args: list[str], message: str) -> None:
    run = subprocess.run([sys.executable, "-m", "shared.cli", "linked", "revoke-token", *args,
                          "--dir", str(authority_dir)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], run.stderr
