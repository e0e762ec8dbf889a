"""The provisioner option `inventory` (issue 15 item 4): checked at config load, applied at `/sign`.

The config checks run through `Settings`/`build_services` as a deployment loads them; the
lookups run through the step API (WSGI app, real SQLite store, JWK tokens as step mints them).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.claims import resolve_claims
from shared.config import Settings
from shared.errors import ConfigError, Forbidden, Unavailable
from shared.inventory.base import Inventory
from shared.inventory.gate import InventoryOption, credential_key, inventory_entry
from shared.model import ProvisionerRef
from shared.provisioners.base import ReplayClaim, SignAuthorization
from shared.runtime import Services, build_services
from shared.store.memory import MemoryStore
from tests.helpers import make_csr, mint_sign_token

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TEMPLATE = ('{"subject": {"commonName": {{ toJson .Subject.CommonName }}}, "sans": {{ toJson .SANs }},'
            ' "extKeyUsage": {{ if .Inventory.clientOnly }}["clientAuth"]{{ else }}["serverAuth", "clientAuth"]{{ end }},'
            ' "keyUsage": ["digitalSignature"]}')


def _configure(authority_dir: Path, options: dict[str, Any]) -> Settings:
    path = authority_dir / "config.json"
    cfg = json.loads(path.read_text())
    jwk = next(p for p in cfg["authority"]["provisioners"] if p["type"] == "JWK")
    jwk["options"] = options
    path.write_text(json.dumps(cfg))
    return Settings.load(path)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("hosts", "options.inventory must be an object"),
        ({"name": "Hosts!", "key": "subject"}, "options.inventory.name: inventory name must be"),
        ({"name": "hosts", "key": "hostname"}, "options.inventory.key must be one of subject, email, instanceID"),
        ({"name": "hosts"}, "options.inventory.key must be one of"),
        ({"name": "hosts", "key": "san", "require": "yes"}, "options.inventory.require must be true or false"),
        ({"name": "hosts", "key": "san", "restrictNames": 1}, "options.inventory.restrictNames must be true or false"),
        ({"name": "hosts", "key": "san", "requires": True}, "unknown field 'requires'"),
    ],
)
def test_a_bad_option_is_refused_when_the_config_loads(authority_dir: Path, option: Any, message: str) -> None:
    settings = _configure(authority_dir, {"inventory": option})
    with pytest.raises(ConfigError, match="provisioner 'admin': ") as caught:
        build_services(settings).close()
    assert message in str(caught.value)


def _auth(**kw: Any) -> SignAuthorization:
    claims = resolve_claims(None, {})
    base: dict[str, Any] = {"provisioner": ProvisionerRef("p", "p", "OIDC"), "claims": claims, "subject": "cn",
                            "sans": ("a.example", "b.example"), "replay": ReplayClaim("n", "k", T0)}
    base.update(kw)
    return SignAuthorization(**base)


def test_each_key_source_reads_what_the_credential_proves() -> None:
    auth = _auth(token_claims={"sub": "1234", "email": "Alice@Example.com"},
                 identity={"instanceID": "i-0abc", "account": "123456789012"})
    got = {k: credential_key(InventoryOption("inv", k), auth) for k in ("subject", "email", "instanceID", "account",
                                                                        "san")}
    assert got == {"subject": "1234", "email": "Alice@Example.com", "instanceID": "i-0abc",
                   "account": "123456789012", "san": "a.example"}
    bare = _auth(subject="from-csr", sans=())
    assert credential_key(InventoryOption("inv", "subject"), bare) == "from-csr"  # no token `sub`: the subject
    assert [credential_key(InventoryOption("inv", k), bare) for k in ("email", "instanceID", "san")] == [None] * 3


def test_require_and_restrict_names() -> None:
    store = MemoryStore()
    store.create_inventory(Inventory("inv", "hosts", T0))
    store.put_inventory_entries("inv", {"a.example": {"allowedNames": ["A.example", "b.example", "cn"]},
                                        "c.example": {"workload": "x"}})
    strict = InventoryOption("inv", "san", require=True, restrict_names=True)
    assert inventory_entry(None, store, _auth(), common_name="cn", names=()) is None  # no option: no lookup
    entry = inventory_entry(strict, store, _auth(), common_name="cn", names=["a.example", "B.EXAMPLE"])
    assert entry == {"allowedNames": ["A.example", "b.example", "cn"]}
    with pytest.raises(Forbidden, match=r"'d\.example' is not allowed by the inventory"):
        inventory_entry(strict, store, _auth(), common_name="cn", names=["a.example", "d.example"])
    with pytest.raises(Forbidden, match="'other' is not allowed"):
        inventory_entry(strict, store, _auth(), common_name="other", names=["a.example"])
    with pytest.raises(Forbidden, match="allows no names"):
        inventory_entry(strict, store, _auth(sans=("c.example",)), common_name="", names=["c.example"])
    with pytest.raises(Forbidden, match="no entry in the inventory"):
        inventory_entry(strict, store, _auth(sans=("z.example",)), common_name="", names=["z.example"])
    with pytest.raises(Forbidden, match="no entry in the inventory"):  # a credential that proves no key
        inventory_entry(strict, store, _auth(sans=()), common_name="cn", names=[])
    lenient = InventoryOption("inv", "san")
    assert inventory_entry(lenient, store, _auth(sans=("z.example",)), common_name="", names=["z.example"]) == {}
    missing = InventoryOption("no-such-inventory", "san", require=True)
    with pytest.raises(Forbidden):
        inventory_entry(missing, store, _auth(), common_name="", names=[])
    with pytest.raises(Unavailable):  # an option but no store to read: refused, never issued unchecked
        inventory_entry(lenient, None, _auth(), common_name="", names=[])


@pytest.fixture
def wired(authority_dir: Path) -> tuple[Services, Client]:
    settings = _configure(authority_dir, {"x509": {"template": TEMPLATE},
                                          "inventory": {"name": "people", "key": "subject", "require": True}})
    services = build_services(settings)
    return services, Client(CirrusApp(services, mounts=default_mounts(services)))


def _sign(api: Client, authority_dir: Path, subject: str, token: str | None = None) -> Any:
    csr, _ = make_csr(subject, [subject])
    return api.post("/1.0/sign", json={"csr": csr, "ott": token or mint_sign_token(authority_dir, subject, [subject])})


def test_sign_refused_with_step_ca_json_then_allowed_once_the_entry_exists(
    wired: tuple[Services, Client], authority_dir: Path
) -> None:
    services, api = wired
    store = services.store
    store.create_inventory(Inventory("people", "people", T0))
    token = mint_sign_token(authority_dir, "alice.example.com", ["alice.example.com"])
    refused = _sign(api, authority_dir, "alice.example.com", token)
    assert refused.status_code == 403
    body = refused.get_json()
    assert body["status"] == 403 and "no entry in the inventory" in body["message"]
    assert store.list_endpoints(limit=10) == []
    # The refusal did not use up the token: once the entry exists the same token works.
    store.put_inventory_entries("people", {"alice.example.com": {"clientOnly": True}})
    answer = _sign(api, authority_dir, "alice.example.com", token)
    assert answer.status_code == 201, answer.text
    cert = x509.load_pem_x509_certificate(answer.get_json()["crt"].encode())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]  # `.Inventory.clientOnly` chose this
    store.put_inventory_entries("people", {"bob.example.com": {}})
    answer = _sign(api, authority_dir, "bob.example.com")
    assert answer.status_code == 201, answer.text
    eku = x509.load_pem_x509_certificate(answer.get_json()["crt"].encode()).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert len(list(eku)) == 2
    services.close()
