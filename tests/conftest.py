"""Fixtures shared by every test folder: a real authority made by `cirrus init`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.init import init_authority
from shared.config import Settings
from shared.runtime import Services, build_services
from tests.fakes import softhsm


@pytest.fixture(scope="session")
def _authority_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("authority-template") / "ca"
    # A low PBES2 count keeps the fixture fast; `cirrus init` uses 600,000.
    init_authority(d, name="Test", p2c=1000)
    return d


@pytest.fixture(scope="session")
def softhsm_token(tmp_path_factory: pytest.TempPathFactory) -> softhsm.SoftHSM:
    """One SoftHSM2 token directory per test process (the module reads its config once)."""
    assert softhsm.available(), "SoftHSM2 is not installed (infra/test.sh installs softhsm2)"
    return softhsm.init_token(tmp_path_factory.mktemp("softhsm"))


@pytest.fixture
def authority_dir(_authority_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of an initialised authority (SQLite store inside it)."""
    d = tmp_path / "ca"
    shutil.copytree(_authority_template, d)
    return d


@pytest.fixture
def services(authority_dir: Path) -> Iterator[Services]:
    s = build_services(Settings.load(authority_dir / "config.json"))
    yield s
    s.close()


@pytest.fixture
def api(services: Services) -> Client:
    """A WSGI test client for the full app (no network)."""
    return Client(CirrusApp(services, mounts=default_mounts(services)))


@pytest.fixture(autouse=True)
def _lint_every_issued_certificate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every certificate the in-process authority issues during a test must pass pkilint's
    RFC 5280 certificate lints with no ERROR (issue 2); the test fails at teardown otherwise."""
    from cryptography.hazmat.primitives import serialization

    from shared.authority_records import IssuanceRecorder
    from tests.helpers import pkilint_errors

    issued: list[bytes] = []
    original = IssuanceRecorder.record

    def recording(self: IssuanceRecorder, cert, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = original(self, cert, *args, **kwargs)
        issued.append(cert.public_bytes(serialization.Encoding.DER))
        return result

    monkeypatch.setattr(IssuanceRecorder, "record", recording)
    yield
    findings = {i: pkilint_errors(der) for i, der in enumerate(issued)}
    bad = {i: f for i, f in findings.items() if f}
    assert not bad, f"pkilint ERROR findings in issued certificates: {bad}"


@pytest.fixture(autouse=True)
def _hostile_never_reaches_the_500_net(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test marked `hostile` fails if any request reached the generic 500 handler (issue 12)."""
    if request.node.get_closest_marker("hostile") is None:
        yield
        return
    from tests.hostile import NetWatch

    with NetWatch() as watch:
        yield
    assert not watch.reached, f"hostile input reached the generic 500 handler: {watch.reached}"
