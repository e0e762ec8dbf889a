"""Group commit: `/sign` answers held for one shared SQLite commit (shared/groupcommit.py).

The real app, authority and SQLite store, driven the way the HTTP loop drives
them: each request runs with the loop's group and a tag, then `settle()`.
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.clock import SystemClock
from shared.groupcommit import ENVIRON_KEY, CommitGroup
from shared.runtime import Services
from shared.store.base import BatchIssuanceLedger
from shared.store.open import open_store
from tests.helpers import make_csr, mint_sign_token


def counts(authority_dir: Path) -> dict[str, int]:
    db = sqlite3.connect(authority_dir / "db" / "cirrus.db")
    try:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("certificates", "used_tokens", "events")}
    finally:
        db.close()


def run(
    app: CirrusApp, group: CommitGroup, tag: int, body: dict[str, Any], path: str = "/1.0/sign", **extra: Any
) -> tuple[str, bytes]:
    """One request as the loop runs it inline: with the group in its environ and its tag begun."""
    raw = json.dumps(body).encode()
    environ = {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(raw)), "CONTENT_TYPE": "application/json", "SERVER_NAME": "localhost",
        "SERVER_PORT": "9443", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(raw), "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, ENVIRON_KEY: group,
        **extra,
    }
    group.begin(tag, environ)
    status: list[str] = []
    out = b"".join(app(environ, lambda s, h, e=None: status.append(s)))
    return status[0], out


@pytest.fixture
def app(services: Services) -> CirrusApp:
    return CirrusApp(services, mounts=default_mounts(services))


def test_held_answers_are_recorded_together_and_a_replay_in_the_group_is_refused(
    app: CirrusApp, authority_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    group = app.commit_group()
    assert group is not None  # the SQLite store can batch
    csr, _ = make_csr("a.example.com", ["a.example.com"])
    token = mint_sign_token(authority_dir, "a.example.com", ["a.example.com"])
    other = mint_sign_token(authority_dir, "a.example.com", ["a.example.com"])
    before = counts(authority_dir)
    caplog.set_level("INFO", logger="cirrus.events")
    answers = {
        1: run(app, group, 1, {"csr": csr, "ott": token}),
        2: run(app, group, 2, {"csr": csr, "ott": token}),  # the same token again, same turn
        3: run(app, group, 3, {"csr": csr, "ott": other}),
    }
    # Nothing is recorded (or published) before the turn's commit, and every answer is held.
    assert counts(authority_dir) == before
    assert all(group.holds(t) for t in answers)
    assert not [r for r in caplog.records if r.name == "cirrus.events"]
    replaced = group.settle()
    # The replay lost in its savepoint: its answer becomes step-ca's 401, the others stand.
    assert set(replaced) == {2}
    status, headers, body = replaced[2]
    assert status.startswith("401") and json.loads(body)["status"] == 401
    assert dict(headers).get("X-Request-Id")
    after = counts(authority_dir)
    assert after["certificates"] - before["certificates"] == 2
    assert after["used_tokens"] - before["used_tokens"] == 2
    recorded = {app.services.store.get_certificate(str(x509.load_pem_x509_certificate(
        json.loads(answers[t][1])["crt"].encode()).serial_number)) is not None for t in (1, 3)}
    assert recorded == {True}
    # Events go out for the two recorded certificates only.
    published = [json.loads(line) for r in caplog.records if r.name == "cirrus.events" for line in r.getMessage().splitlines()]
    assert sum(1 for e in published if e["type"].endswith("certificate.issued")) == 2
    # The group starts empty again.
    assert group.settle() == {}


def test_a_failed_commit_turns_every_held_answer_into_a_503(app: CirrusApp, authority_dir: Path) -> None:
    # The same database file, opened with a short busy timeout so the test need not wait long.
    ledger = open_store(f"sqlite:{authority_dir / 'db' / 'cirrus.db'}?busy_timeout_ms=50", clock=SystemClock())
    assert isinstance(ledger, BatchIssuanceLedger)
    group = CommitGroup(ledger, app._held_answer_failed)
    csr, _ = make_csr("b.example.com", ["b.example.com"])
    run(app, group, 7, {"csr": csr, "ott": mint_sign_token(authority_dir, "b.example.com", ["b.example.com"])})
    before = counts(authority_dir)
    # Another connection holds SQLite's write lock past that timeout: the commit fails.
    blocker = sqlite3.connect(authority_dir / "db" / "cirrus.db", timeout=0.05)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        replaced = group.settle()
    finally:
        blocker.rollback()
        blocker.close()
        ledger.close()
    assert set(replaced) == {7}
    assert replaced[7][0].startswith("503") and ("Retry-After", "5") in replaced[7][1]
    assert counts(authority_dir) == before  # nothing recorded, the token is still unused


def test_an_mtls_renewal_is_held_for_the_group_too(app: CirrusApp, authority_dir: Path) -> None:
    group = app.commit_group()
    assert group is not None
    csr, _ = make_csr("r.example.com", ["r.example.com"])
    status, out = run(app, group, 1, {"csr": csr, "ott": mint_sign_token(authority_dir, "r.example.com", ["r.example.com"])})
    assert group.settle() == {} and status.startswith("201")
    leaf_pem = json.loads(out)["crt"]
    before = counts(authority_dir)
    # The loop's TLS layer verified the client certificate and passes it as SSL_CLIENT_CERT.
    status, out = run(app, group, 2, {}, path="/1.0/renew", SSL_CLIENT_CERT=leaf_pem)
    assert status.startswith("201") and group.holds(2)
    assert counts(authority_dir) == before
    assert group.settle() == {}
    renewed = x509.load_pem_x509_certificate(json.loads(out)["crt"].encode())
    assert app.services.store.get_certificate(str(renewed.serial_number)) is not None
