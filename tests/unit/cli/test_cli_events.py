"""`cirrus events tail`: the event log for people (issue 17 item 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from werkzeug.test import Client

from shared.cli import main as cirrus
from shared.events.base import CERTIFICATE_REVOKED, authority_event
from shared.inventory.changes import changes_for
from shared.provisioners.changes import check_services
from shared.runtime import Services
from tests.helpers import make_csr, mint_sign_token, mint_token, sign_claims

REPO = Path(__file__).resolve().parents[3]


def _issue(api: Client, authority_dir: Path, name: str) -> str:
    csr, _ = make_csr(name, [name])
    answer = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name, [name])})
    assert answer.status_code == 201, answer.text
    from cryptography import x509

    return str(x509.load_pem_x509_certificate(answer.get_json()["crt"].encode()).serial_number)


def test_tail_prints_recent_events_and_filters_by_type(
    api: Client, authority_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _issue(api, authority_dir, "one.example.com")
    _issue(api, authority_dir, "two.example.com")
    token = mint_token(authority_dir, sign_claims(first, None, op="revoke"))
    assert api.post("/1.0/revoke", json={"serial": first, "ott": token, "passive": True}).status_code == 200

    assert cirrus(["events", "tail", "--dir", str(authority_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    kinds = [line.split()[1] for line in lines]
    assert kinds.count("certificate.issued") == 2 and kinds.count("endpoint.created") == 2
    assert kinds[-1] == "certificate.revoked" and f"serial={first}" in lines[-1]

    assert cirrus(["events", "tail", "--dir", str(authority_dir), "--type", "certificate.revoked", "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["type"] for e in events] == ["dev.cirrus.certificate.revoked"]
    assert events[0]["specversion"] == "1.0" and events[0]["data"]["serial"] == first

    assert cirrus(["events", "tail", "--dir", str(authority_dir), "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1


def test_follow_prints_new_events(api: Client, authority_dir: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "events", "tail", "--dir", str(authority_dir), "--follow",
         "--json", "--interval", "0.1", "--type", "certificate.issued"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    try:
        time.sleep(1.5)  # let it print the (empty) past and start polling
        serial = _issue(api, authority_dir, "later.example.com")
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert json.loads(line)["data"]["serial"] == serial
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--since", "\uff12h"], "not a duration"),
        (["--since=0s"], "positive"),
        (["--limit", "0"], "from 1 to 10000"),
    ],
)
def test_tail_mistakes_are_one_line(authority_dir: Path, args: list[str], message: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "shared.cli", "events", "tail", "--dir", str(authority_dir), *args],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[-1], run.stderr


def test_tail_on_a_folder_that_is_not_an_authority(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "shared.cli", "events", "tail", "--dir", str(tmp_path)],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_tail_summarises_inventory_provisioner_and_linked_events(
    services: Services, authority_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each newer event type shows its key fields in the line, not just its subject."""
    changes = changes_for(services, actor="ops@example.com")
    changes.create("hosts", "hosts")
    changes.put("hosts", {"web-1": {"name": "web"}, "db 2": {"name": "db"}})
    assert check_services(services) is not None  # the first record of this authority's provisioners
    now = services.clock.now()
    services.store.append_events([authority_event(
        "linked-edge", CERTIFICATE_REVOKED, "1234", now,
        {"serial": "1234", "endpointId": "ep-1", "reasonCode": 1, "linkedAuthority": "edge"})])  # fmt: skip

    assert cirrus(["events", "tail", "--dir", str(authority_dir)]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()}
    inventory = lines["inventory.changed"]
    assert "inventory=hosts kind=hosts action=imported count=2" in inventory
    assert "actor=ops@example.com" in inventory
    assert "keys=[db\\x202,web-1]" in inventory  # one field stays one word
    names = ",".join(p.ref.name for p in sorted(services.provisioners, key=lambda p: p.ref.id))
    assert f"added=[{names}]" in lines["provisioner.changed"]
    assert "serial=1234 endpointId=ep-1 reasonCode=1 linkedAuthority=edge" in lines["certificate.revoked"]


def test_tail_names_the_revoke_token_a_central_revoked_with(
    api: Client, services: Services, authority_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At a linked Cirrus, a revocation the central delivered shows which revoke token it came with."""
    from shared.linked.revoke_tokens import issue_revoke_token

    serial = _issue(api, authority_dir, "edge.example.com")
    token = issue_revoke_token(services.store, label="central", now=services.clock.now())
    r = api.post("/1.0/revoke", json={"serial": serial, "reasonCode": 4, "passive": True},
                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert cirrus(["events", "tail", "--dir", str(authority_dir), "--type", "certificate.revoked"]) == 0
    line = capsys.readouterr().out.strip()
    assert f"serial={serial}" in line and "reasonCode=4" in line and f"revokeToken={token.split('.')[0]}" in line


def test_tail_summarises_linked_revocation_outcomes(
    services: Services, authority_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A central's delivery outcome shows how many attempts it took and what the link said."""
    from shared.events.base import LINKED_REVOCATION_DELIVERED, LINKED_REVOCATION_FAILED

    now = services.clock.now()
    services.store.append_events([
        authority_event("linked-edge", LINKED_REVOCATION_DELIVERED, "77", now,
                        {"serial": "77", "linkedAuthority": "edge", "reasonCode": 4, "attempts": 2,
                         "result": "revoked by the linked authority (200)"}),
        authority_event("linked-edge", LINKED_REVOCATION_FAILED, "78", now,
                        {"serial": "78", "linkedAuthority": "edge", "reasonCode": 1, "attempts": 8,
                         "error": "the linked authority answered 401"}),
    ])  # fmt: skip
    assert cirrus(["events", "tail", "--dir", str(authority_dir), "--type", "linked.revocation.delivered",
                   "--type", "linked.revocation.failed"]) == 0  # fmt: skip
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()}
    delivered, failed = lines["linked.revocation.delivered"], lines["linked.revocation.failed"]
    assert "serial=77 reasonCode=4 linkedAuthority=edge attempts=2 result=revoked\\x20by" in delivered
    assert "serial=78 reasonCode=1 linkedAuthority=edge attempts=8 error=the\\x20linked" in failed
