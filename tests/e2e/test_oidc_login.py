"""`cirrus certificate --provisioner sso`: a person signs in with the loopback OpenID provider.

`cirrus up` serves an OIDC provisioner whose provider is the fake; the client runs the
authorization-code flow with PKCE on a loopback redirect, with `$BROWSER` set to curl (which
follows the provider's redirect back to the client's listener, as a browser would), and gets a
certificate with step-ca's token-derived names that `openssl verify` accepts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.fakes.oidc_issuer import FakeIssuer, serve_fake_issuer
from tests.interop.test_cli_session import openssl_verify
from tests.served import cirrus_up

pytestmark = pytest.mark.interop


@pytest.fixture
def issuer() -> Iterator[tuple[FakeIssuer, str]]:
    with serve_fake_issuer() as served:
        yield served


@pytest.fixture
def ca(authority_dir: Path, tmp_path: Path, issuer: tuple[FakeIssuer, str]) -> Iterator[None]:
    provisioner = {"type": "OIDC", "name": "sso", "clientID": "cirrus-cli", "clientSecret": "public-secret",
                   "configurationEndpoint": issuer[1], "domains": ["example.com"]}
    with cirrus_up(authority_dir, tmp_path, provisioners=[provisioner]):
        yield


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl plays the browser")
def test_person_signs_in_and_gets_a_certificate(ca: None, issuer: Any, authority_dir: Path, tmp_path: Path) -> None:
    crt, key = tmp_path / "me.crt", tmp_path / "me.key"
    env = {**os.environ, "BROWSER": "curl -sfL -o /dev/null %s"}
    out = subprocess.run(
        [sys.executable, "-m", "shared.cli", "certificate", "1001", str(crt), str(key), "--dir", str(authority_dir),
         "--provisioner", "sso"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert out.returncode == 0, out.stderr
    openssl_verify(authority_dir, crt)
    cert = x509.load_pem_x509_certificates(crt.read_bytes())[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["alice@example.com"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [f"{issuer[1]}#1001"]
    assert issuer[0].codes == {}  # the code was redeemed (with the PKCE verifier)
