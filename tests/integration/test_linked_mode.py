"""Linked authorities end to end: a central `cirrus up` over TLS, a second authority (its own
`cirrus init` folder) in linked mode reporting what it issues and revokes, and `cirrus linked
report` posting certificate files; the reported certificates then listed by `cirrus endpoints list`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.init import init_authority
from shared.config import Settings
from shared.events.delivery import TrackedSink
from shared.linked.registry import authority_id_of
from shared.linked.sink import LinkedSink
from shared.runtime import Services, build_services
from tests.helpers import make_csr, mint_sign_token
from tests.served import cirrus, free_port, serve

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def central(authority_dir: Path, tmp_path: Path) -> Iterator[str]:
    """The central authority served by `cirrus up`; yields its URL."""
    with serve(authority_dir, tmp_path / "central.log") as url:
        yield url


@pytest.fixture(scope="module")
def _other_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("linked-e2e") / "other"
    init_authority(d, name="Other", p2c=1000)
    return d


@pytest.fixture
def other_dir(_other_template: Path, tmp_path: Path) -> Path:
    d = tmp_path / "other"
    shutil.copytree(_other_template, d)
    return d


def add_link(central_dir: Path, other_dir: Path, name: str = "edge") -> str:
    out = cirrus("linked", "add", name, "--root", str(other_dir / "certs" / "root_ca.crt"),
                 "--intermediate", str(other_dir / "certs" / "intermediate_ca.crt"), "--dir", str(central_dir))  # fmt: skip
    token = out.stdout.strip()
    assert token.startswith(f"{name}.") and len(token.splitlines()) == 1
    return token


def issue(client: Client, folder: Path, name: str) -> x509.Certificate:
    csr, _ = make_csr(name)
    r = client.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(folder, name)})
    assert r.status_code == 201, r.text
    return x509.load_pem_x509_certificate(r.get_json()["crt"].encode())


def endpoints_at(central_dir: Path) -> dict[str, dict[str, Any]]:
    """`cirrus endpoints list --json` at the central, by endpoint name."""
    listed = json.loads(cirrus("endpoints", "list", "--dir", str(central_dir), "--json").stdout)
    return {e["name"]: e for e in listed}


def linked_services(other_dir: Path, url: str, token: str, central_dir: Path) -> Services:
    (other_dir / "secrets" / "linked-token").write_text(token + "\n")
    cfg = json.loads((other_dir / "config.json").read_text())
    cfg["linked"] = {"url": url, "tokenFile": "secrets/linked-token", "root": str(central_dir / "certs" / "root_ca.crt")}
    (other_dir / "config.json").write_text(json.dumps(cfg))
    return build_services(Settings.load(other_dir / "config.json"))


def test_second_cirrus_up_in_linked_mode_reports_issued_and_revoked(
    central: str, authority_dir: Path, other_dir: Path, tmp_path: Path
) -> None:
    token = add_link(authority_dir, other_dir)
    linked_services(other_dir, central, token, authority_dir).close()  # writes the "linked" config
    with serve(other_dir, tmp_path / "other.log"):
        for name in ("kept.linked.example", "gone.linked.example"):
            cirrus("certificate", name, str(tmp_path / f"{name}.crt"), str(tmp_path / f"{name}.key"),
                   "--dir", str(other_dir))  # fmt: skip
        gone = x509.load_pem_x509_certificate((tmp_path / "gone.linked.example.crt").read_bytes())
        cirrus("revoke", str(gone.serial_number), "--reason-code", "1", "--dir", str(other_dir))
        deadline = time.monotonic() + 20
        while True:  # the sink reports after the answer is sent
            seen = endpoints_at(authority_dir)
            statuses = {n: [c["status"] for c in seen[n]["certificates"]] for n in seen if ".linked." in n}
            if statuses == {"kept.linked.example": ["active"], "gone.linked.example": ["revoked"]}:
                break
            assert time.monotonic() < deadline, (statuses, (tmp_path / "other.log").read_text()[-3000:])
            time.sleep(0.2)
    kept = x509.load_pem_x509_certificate((tmp_path / "kept.linked.example.crt").read_bytes())
    assert seen["kept.linked.example"]["provisionerId"] == "linked/edge"
    assert [c["serial"] for c in seen["kept.linked.example"]["certificates"]] == [str(kept.serial_number)]


def test_linked_mode_keeps_what_the_central_did_not_take_and_redelivers_it(
    central: str, authority_dir: Path, other_dir: Path
) -> None:
    token = add_link(authority_dir, other_dir)
    other = linked_services(other_dir, f"https://127.0.0.1:{free_port()}", token, authority_dir)  # nothing there
    try:
        client = Client(CirrusApp(other, mounts=default_mounts(other)))
        late = issue(client, other_dir, "late.linked.example")  # the issuance is not undone by the sink
        pending = other.store.find_documents("event_deliveries", "state", "pending")
        assert len(pending) == 2  # certificate issued, endpoint created
        assert "late.linked.example" not in endpoints_at(authority_dir)
        # The central is reachable again; the sweep re-delivers (the endpoint event is not a report item).
        sink = next(s for s in other.sinks if isinstance(s, TrackedSink) and isinstance(s.sink, LinkedSink))
        assert isinstance(sink.sink, LinkedSink)
        sink.sink.url = central
        from shared.events.delivery import redeliver

        result = redeliver([sink], now=other.clock.now() + dt.timedelta(hours=1))
        assert result.delivered == 2 and result.dead == 0
    finally:
        other.close()
    seen = endpoints_at(authority_dir)
    assert [c["serial"] for c in seen["late.linked.example"]["certificates"]] == [str(late.serial_number)]


def test_linked_report_posts_certificate_files(central: str, authority_dir: Path, other_dir: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    token = add_link(authority_dir, other_dir)
    (tmp_path / "token").write_text(token + "\n")
    other = build_services(Settings.load(other_dir / "config.json"))
    try:
        client = Client(CirrusApp(other, mounts=default_mounts(other)))
        folder = tmp_path / "certs"
        folder.mkdir()
        for i, name in enumerate(["a.files.example", "b.files.example"]):
            cert = issue(client, other_dir, name)
            encoding = serialization.Encoding.PEM if i == 0 else serialization.Encoding.DER
            (folder / f"{name}.{'crt' if i == 0 else 'der'}").write_bytes(cert.public_bytes(encoding))
    finally:
        other.close()
    (folder / "notes.txt").write_text("skipped: not a certificate file name")
    common = ["linked", "report", "--ca-url", central, "--token-file", str(tmp_path / "token"),
              "--root", str(authority_dir / "certs" / "root_ca.crt")]  # fmt: skip
    first = cirrus(*common, str(folder))
    assert [line.split(": ")[1].split()[0] for line in first.stdout.splitlines()] == ["recorded", "recorded"]
    again = cirrus(*common, str(folder))
    assert [line.split(": ")[1].split()[0] for line in again.stdout.splitlines()] == ["replayed", "replayed"]
    revoked = cirrus(*common, "--revoked", "--reason-code", "4", str(folder / "a.files.example.crt"))
    assert "recorded" in revoked.stdout
    # The curl line of docs/linked.md, as written there.
    (tmp_path / "edge.token").write_text(token)
    shutil.copy(folder / "a.files.example.crt", tmp_path / "leaf.pem")
    shutil.copy(authority_dir / "certs" / "root_ca.crt", tmp_path / "central-root.pem")
    doc = (ROOT / "docs" / "linked.md").read_text()
    script = doc.split("### With curl\n\n```sh\n", 1)[1].split("```", 1)[0]
    script = script.replace("https://ca.example.com:9443", central)
    curl = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert curl.returncode == 0 and json.loads(curl.stdout)["results"][0]["status"] == "duplicate", curl
    seen = endpoints_at(authority_dir)
    assert [c["status"] for c in seen["a.files.example"]["certificates"]] == ["revoked"]
    assert [c["status"] for c in seen["b.files.example"]["certificates"]] == ["active"]
    assert all(e["provisionerId"] == "linked/edge" for n, e in seen.items() if n.endswith(".files.example"))
    assert authority_id_of("edge") == "linked-edge"


def test_linked_cli_mistakes_are_one_line(central: str, authority_dir: Path, other_dir: Path, tmp_path: Path) -> None:
    token = add_link(authority_dir, other_dir)
    (tmp_path / "token").write_text(token)
    (tmp_path / "wrong").write_text("edge." + "A" * 43)
    (tmp_path / "bad.crt").write_text("not a certificate")
    cert = other_dir / "certs" / "intermediate_ca.crt"
    root = str(authority_dir / "certs" / "root_ca.crt")
    cases = [
        (["linked", "add", "edge", "--root", str(other_dir / "certs" / "root_ca.crt"), "--dir", str(authority_dir)],
         "exists"),
        (["linked", "add", "Bad_Name", "--root", str(cert), "--dir", str(authority_dir)], "lowercase"),
        (["linked", "add", "x", "--root", str(tmp_path / "none.pem"), "--dir", str(authority_dir)], "cannot read"),
        (["linked", "report", "--ca-url", central, "--token-file", str(tmp_path / "none"), "--root", root,
          str(cert)], "cannot read token file"),
        (["linked", "report", "--ca-url", central, "--token-file", str(tmp_path / "token"), "--root", root,
          str(tmp_path / "missing.crt")], "no such file or folder"),
        (["linked", "report", "--ca-url", central, "--token-file", str(tmp_path / "token"), "--root", root,
          str(tmp_path / "bad.crt")], "holds no PEM or DER certificate"),
        (["linked", "report", "--ca-url", central, "--token-file", str(tmp_path / "wrong"), "--root", root,
          str(cert)], "refused the report (401)"),
        # The intermediate itself does not chain to the link's anchors as a leaf signed by them.
        (["linked", "report", "--ca-url", central, "--token-file", str(tmp_path / "token"), "--root", root,
          str(authority_dir / "certs" / "intermediate_ca.crt")], "refused the report (400): events[0]"),
    ]  # fmt: skip
    for args, expected in cases:
        out = cirrus(*args, check=False)
        assert out.returncode != 0 and len(out.stderr.strip().splitlines()) == 1, (args, out.stderr)
        assert expected in out.stderr, (args, out.stderr)
