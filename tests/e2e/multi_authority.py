"""The multi-authority deployment the issue 16 tests share, made with the ceremony commands.

One root (path length 2) and three issuing CAs under it: the default authority's
(root -> default), `teams` (root -> teams, at `/teams/`) and `deep` two levels down
(root -> mid -> deep, at `/deep/`). Each further authority has a JWK provisioner of
its own (`teams-admin`, `deep-admin`; the test key, another name) and a caIssuers URL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli import main as cirrus
from shared.config import Settings
from shared.runtime import Services, build_services
from tests.helpers import AUDIENCE_HOST, make_csr, mint_token, sign_claims


@dataclass
class Deployment:
    dir: Path
    root: Path
    issuers: dict[str, Path]  # authority -> its issuing CA certificate
    chains: dict[str, Path]  # authority -> the certificates between its leaves and the root
    services: Services
    api: Client


def ca_step(*args: str) -> None:
    assert cirrus(["ca", *args]) == 0, args


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def _ceremony(_authority_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hierarchy, made once per module with the ceremony commands; each test gets a copy."""
    base = tmp_path_factory.mktemp("authorities")
    d, off = base / "ca", base / "offline"
    shutil.copytree(_authority_template, d)
    off.mkdir()
    pw = str(d / "secrets" / "password")
    root = off / "root.crt"
    ca_step("root", "--kms", f"softkms:path={off}/root_key", "--create", "EC-P256", "--path-len", "2",
        "--password-file", pw, "--name", "Multi", "--out", str(root))  # fmt: skip

    def issuing(name: str, signer_uri: str, signer_cert: Path, path_len: int = 0, key_dir: Path = d / "secrets",
                days: int = 365) -> Path:
        csr, crt = off / f"{name}.csr", off / f"{name}.crt"
        ca_step("intermediate-csr", "--kms", f"softkms:path={key_dir}/{name}_key", "--create", "EC-P256",
            "--password-file", pw, "--name", name.capitalize(), "--out", str(csr))  # fmt: skip
        ca_step("sign-intermediate", str(csr), "--root-kms", signer_uri, "--root", str(signer_cert), "--out", str(crt),
            "--days", str(days), "--path-len", str(path_len), "--password-file", pw)  # fmt: skip
        return crt

    root_uri = f"softkms:path={off}/root_key"
    default = issuing("default", root_uri, root)
    ca_step("install", "--dir", str(d), "--cert", str(default), "--kms", "softkms:path=secrets/default_key",
        "--root", str(root))  # fmt: skip
    teams = issuing("teams", root_uri, root)
    ca_step("install", "--dir", str(d), "--authority", "teams", "--prefix", "teams", "--cert", str(teams),
        "--kms", "softkms:path=secrets/teams_key")  # fmt: skip
    mid = issuing("mid", root_uri, root, path_len=1, key_dir=off, days=400)
    deep = issuing("deep", f"softkms:path={off}/mid_key", mid)
    ca_step("install", "--dir", str(d), "--authority", "deep", "--prefix", "deep", "--cert", str(deep),
        "--chain", str(mid), "--kms", "softkms:path=secrets/deep_key")  # fmt: skip

    config = json.loads((d / "config.json").read_text())
    admin = config["authority"]["provisioners"][0]
    by_name = {a["name"]: a for a in config["authorities"]}
    for name in ("teams", "deep"):  # each gets a JWK provisioner of its own (the test's key, another name)
        by_name[name]["provisioners"] = [{**admin, "name": f"{name}-admin"}]
        by_name[name]["caIssuersURL"] = f"http://ca.test/{name}.crt"
    config["crl"] = {**config.get("crl", {}), "baseURL": "http://ca.test"}
    (d / "config.json").write_text(json.dumps(config))

    (off / "chain-deep.crt").write_bytes(deep.read_bytes() + mid.read_bytes())
    return base


@pytest.fixture
def deployment(_ceremony: Path, tmp_path: Path) -> Iterator[Deployment]:
    shutil.copytree(_ceremony, tmp_path / "deployment")
    d, off = tmp_path / "deployment" / "ca", tmp_path / "deployment" / "offline"
    root, default, teams, deep, chain_deep = (off / f"{n}.crt" for n in ("root", "default", "teams", "deep", "chain-deep"))
    services = build_services(Settings.load(d / "config.json"))
    try:
        yield Deployment(
            dir=d, root=root, issuers={"default": default, "teams": teams, "deep": deep},
            chains={"default": default, "teams": teams, "deep": chain_deep}, services=services,
            api=Client(CirrusApp(services, mounts=default_mounts(services))),
        )  # fmt: skip
    finally:
        services.close()


def token_for(dep: Deployment, provisioner: str, subject: str, *, op: str = "sign", prefix: str = "", **extra: Any) -> str:
    claims = sign_claims(subject, [subject] if op == "sign" else None, op=op, iss=provisioner, **extra)
    claims["aud"] = f"https://{AUDIENCE_HOST}{prefix}/1.0/{op}"
    return mint_token(dep.dir, claims)


def sign_at(dep: Deployment, provisioner: str, name: str, *, path: str = "/1.0/sign", prefix: str = "") -> dict[str, Any]:
    csr, _ = make_csr(name, [name])
    answer = dep.api.post(prefix + path, json={"csr": csr, "ott": token_for(dep, provisioner, name, prefix=prefix)})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.get_json()
    return body


def openssl_verify(dep: Deployment, leaf_pem: str, untrusted: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(leaf_pem)
    return subprocess.run(["openssl", "verify", "-CAfile", str(dep.root), "-untrusted", str(untrusted), str(leaf)],
                          capture_output=True, text=True)  # fmt: skip


def cert_of(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def crt_of(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sign_and_key(dep: Deployment, provisioner: str, name: str) -> tuple[x509.Certificate, Any]:
    csr, key = make_csr(name, [name])
    answer = dep.api.post("/sign", json={"csr": csr, "ott": token_for(dep, provisioner, name)})
    assert answer.status_code == 201, answer.text
    return cert_of(answer.get_json()["crt"]), key


def config_of(d: Path) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((d / "config.json").read_text())
    return config


def cirrus_up(d: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", "up", "--dir", str(d)], capture_output=True,
                          text=True, timeout=60, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2]),
                                                      "PATH": "/usr/bin:/bin"})  # fmt: skip
