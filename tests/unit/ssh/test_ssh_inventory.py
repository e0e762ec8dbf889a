"""`options.inventory` on `/ssh/sign` (issue 15 item 4): the same gate as `/sign`, and `.Inventory` in
SSH templates.

Through the step API (WSGI app, real SQLite store, JWK tokens as `step ssh certificate` mints them):
a required entry refuses an unknown credential with step-ca's 403 and records nothing (the token
stays usable), `restrictNames` holds the principals to the entry's `allowedNames`, and a template
reads the entry. The key sources of an SSH credential are checked on the provisioners' own
authorizations (JWK, OIDC, a GCP instance identity).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.claims import resolve_claims
from shared.config import Settings
from shared.inventory.base import Inventory
from shared.inventory.gate import InventoryOption, ssh_credential_key
from shared.model import ProvisionerRef
from shared.provisioners.base import ReplayClaim
from shared.provisioners.ssh_sign import SSHIdentity, iid_ssh_authorization, oidc_ssh_authorization
from shared.runtime import Services, build_services
from shared.ssh.certificate import SSHCertificate, parse_certificate
from shared.ssh.options import SSHOptions
from tests.sshhelpers import keygen, ssh_token
from tests.unit.ssh import test_ssh_identity_provisioners as identity
from tests.unit.ssh.test_ssh_api import refused, ssh_rows

NOW = dt.datetime(2026, 12, 7, 12, tzinfo=dt.UTC)
# The identity provisioners' fixtures (a provisioner block -> app; the fake GCE and Azure metadata servers).
build, google, azure = identity.build, identity.google, identity.azure
USERNAME_TEMPLATE = """{
  "type": {{ toJson .Type }},
  "keyId": {{ toJson .KeyID }},
  "principals": [{{ toJson .Inventory.username }}],
  "extensions": {{ toJson .Extensions }}
}"""
Configure = Callable[[dict[str, Any]], tuple[Client, Services]]


@pytest.fixture
def configure(authority_dir: Path) -> Iterator[Configure]:
    """An app whose JWK provisioner has these `options`, and its services (to fill the inventory)."""
    made: list[Services] = []

    def make(options: dict[str, Any]) -> tuple[Client, Services]:
        path = authority_dir / "config.json"
        cfg = json.loads(path.read_text())
        cfg["authority"]["provisioners"][0]["options"] = options
        path.write_text(json.dumps(cfg))
        s = build_services(Settings.load(path))
        made.append(s)
        return Client(CirrusApp(s, mounts=default_mounts(s))), s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def pub(tmp_path: Path) -> str:
    return keygen(tmp_path, "id_ed25519", "-t", "ed25519")[1]


def _fill(s: Services, name: str, entries: dict[str, dict[str, Any]]) -> None:
    s.store.create_inventory(Inventory(name, "people", NOW))
    if entries:
        s.store.put_inventory_entries(name, entries)


def _issued(r: Any) -> SSHCertificate:
    assert r.status_code == 201, r.text
    return parse_certificate(base64.b64decode(r.get_json()["crt"]))


def test_a_required_entry_refuses_an_unknown_credential_and_records_nothing(configure: Configure,
                                                                            authority_dir: Path, pub: str) -> None:
    api, s = configure({"inventory": {"name": "people", "key": "subject", "require": True}})
    _fill(s, "people", {})
    ott = ssh_token(authority_dir, "alice@example.com", {"certType": "user", "principals": ["alice"]})
    r = api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": ott})
    refused(r, 403)
    assert r.get_json()["message"] == "the credential has no entry in the inventory"
    assert ssh_rows(authority_dir) == 0
    # The refusal did not use the token up: once the entry exists, the same token is accepted.
    s.store.put_inventory_entries("people", {"alice@example.com": {"team": "dba"}})
    cert = _issued(api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": ott}))
    assert cert.principals == ("alice",)
    assert ssh_rows(authority_dir) == 1


def test_restrict_names_holds_the_principals_to_the_entry(configure: Configure, authority_dir: Path,
                                                          pub: str) -> None:
    api, s = configure({"inventory": {"name": "people", "key": "subject", "require": True, "restrictNames": True}})
    _fill(s, "people", {"alice@example.com": {"allowedNames": ["alice", "Ops"]}})
    ott = ssh_token(authority_dir, "alice@example.com", {"certType": "user", "principals": ["alice", "root"]})
    r = api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": ott})
    refused(r, 403)
    assert r.get_json()["message"] == "name 'root' is not allowed by the inventory"
    assert ssh_rows(authority_dir) == 0
    ott = ssh_token(authority_dir, "alice@example.com", {"certType": "user", "principals": ["alice", "ops"]})
    cert = _issued(api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": ott}))
    assert cert.principals == ("alice", "ops")  # compared without regard to case, kept as asked


def test_the_entry_is_dot_inventory_in_the_ssh_template(configure: Configure, authority_dir: Path,
                                                        pub: str) -> None:
    """The issue's example: an e-mail mapped to a POSIX user name (the JWK token carries `email`)."""
    api, s = configure({"inventory": {"name": "people", "key": "email", "require": True},
                        "ssh": {"template": USERNAME_TEMPLATE}})
    _fill(s, "people", {"alice.smith@example.com": {"username": "asmith"}})
    ott = ssh_token(authority_dir, "alice.smith@example.com", {"certType": "user"}, email="alice.smith@example.com")
    cert = _issued(api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": ott}))
    assert (cert.key_id, cert.principals) == ("alice.smith@example.com", ("asmith",))
    # Without an email claim the credential proves no key: refused, not issued for an empty user name.
    ott = ssh_token(authority_dir, "alice.smith@example.com", {"certType": "user"})
    refused(api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": ott}), 403)
    assert ssh_rows(authority_dir) == 1


def test_without_the_option_nothing_is_looked_up(configure: Configure, authority_dir: Path, pub: str) -> None:
    api, _ = configure({})
    ott = ssh_token(authority_dir, "bob@example.com", {"certType": "user", "principals": ["bob"]})
    assert _issued(api.post("/1.0/ssh/sign", json={"publicKey": pub, "ott": ott})).principals == ("bob",)


def _identity() -> SSHIdentity:
    ref = ProvisionerRef(id="p-1", name="cloud", type="GCP")
    return SSHIdentity(ref, resolve_claims({"enableSSHCA": True}, None), ReplayClaim("ns", "k", NOW),
                       {"instanceID": "4711", "account": "cirrus-test"})


@pytest.mark.parametrize(("source", "want"), [
    ("instanceID", "4711"), ("account", "cirrus-test"), ("san", "vm-1.c.cirrus-test.internal"),
    ("subject", "vm-1"), ("email", None),
])
def test_an_instance_identity_proves_its_instance_and_account(source: str, want: str | None) -> None:
    auth = iid_ssh_authorization(_identity(), key_id="vm-1", principals=("vm-1.c.cirrus-test.internal",),
                                 disable_custom_sans=True, request=SSHOptions())
    assert ssh_credential_key(InventoryOption("hosts", source), auth, {}) == want


def test_an_oidc_credential_proves_its_email_and_subject() -> None:
    auth = oidc_ssh_authorization(_identity(), email="alice@example.com", admin=False, request=SSHOptions())
    token = {"sub": "1234567890", "email": "alice@example.com"}
    assert ssh_credential_key(InventoryOption("people", "email"), auth, token) == "alice@example.com"
    assert ssh_credential_key(InventoryOption("people", "subject"), auth, token) == "1234567890"
    assert ssh_credential_key(InventoryOption("people", "san"), auth, token) == "alice"
    assert ssh_credential_key(InventoryOption("people", "email"), auth, {"email": ""}) is None


# ------------------------------------------------ cloud instance identities, through their provisioners
HOST_TEMPLATE = ('{"type": "host", "keyId": {{ toJson .KeyID }}, '
                 '"principals": {{ toJson (append .Principals (printf "%s.workloads.internal" .Inventory.workload)) }}}')


def _hosts_inventory(authority_dir: Path, key: str, entry: dict[str, Any]) -> None:
    from shared.store.sqlite import SQLiteStore

    store = SQLiteStore(Settings.load(authority_dir / "config.json").store.removeprefix("sqlite:"))
    try:
        store.create_inventory(Inventory("hosts", "hosts", NOW))
        store.put_inventory_entries("hosts", {key: entry})
    finally:
        store.close()


INVENTORY = {"inventory": {"name": "hosts", "key": "instanceID", "require": True}, "ssh": {"template": HOST_TEMPLATE}}


def test_gcp_instance_id_finds_the_entry(build: Any, google: Any, authority_dir: Path, pub: str) -> None:
    api = build({**identity.gcp_block(google[1], disableCustomSANs=True), "options": INVENTORY})
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": identity.metadata_token(google[1])}), 403)
    _hosts_inventory(authority_dir, google[0].instance.instance_id, {"workload": "billing"})
    cert = _issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": identity.metadata_token(google[1])}))
    assert cert.principals == (*identity.GCP_NAMES, "billing.workloads.internal")


def test_aws_instance_id_finds_the_entry(build: Any, authority_dir: Path, tmp_path: Path, pub: str) -> None:
    api = identity.aws_api(build, tmp_path, disableCustomSANs=True, options=INVENTORY)
    _hosts_inventory(authority_dir, "i-0a1b2c3d4e5f67890", {"workload": "payroll"})
    cert = _issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": identity.aws_token()}))
    assert cert.principals == (*identity.AWS_NAMES, "payroll.workloads.internal")


def test_azure_vm_name_finds_the_entry(build: Any, azure: Any, authority_dir: Path, pub: str) -> None:
    api = identity.azure_api(build, azure[0], disableCustomSANs=True, options=INVENTORY)
    refused(api.post("/ssh/sign", json={"publicKey": pub, "ott": azure[0].access_token()}), 403)
    _hosts_inventory(authority_dir, "vm-1", {"workload": "web"})
    cert = _issued(api.post("/ssh/sign", json={"publicKey": pub, "ott": azure[0].access_token()}))
    assert cert.principals == ("vm-1", "web.workloads.internal")
