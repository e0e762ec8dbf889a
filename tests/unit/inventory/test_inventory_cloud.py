"""The platform's example: a VM's instance identity looked up in a hosts inventory (AWS, fake IMDSv2).

The instance id the signed identity document proves is the key; the entry's workload name
goes into the certificate through the template. Without an entry the instance is refused.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509

from shared.inventory.base import Inventory
from shared.store.sqlite import SQLiteStore
from tests.unit.provisioners.test_aws import DNS, make_api, sign, step_token  # noqa: F401 - make_api is a fixture

TEMPLATE = ('{"subject": {"commonName": {{ toJson .Subject.CommonName }}},'
            ' "sans": {{ toJson (append .SANs (dict "type" "dns" "value" (printf "%s.workloads.internal" .Inventory.workload))) }},'
            ' "keyUsage": ["digitalSignature"], "extKeyUsage": ["serverAuth", "clientAuth"]}')


def test_instance_id_selects_the_workload_and_unknown_instances_are_refused(
    make_api: Any, authority_dir: Path  # noqa: F811 - the fixture imported above
) -> None:
    api = make_api(options={"x509": {"template": TEMPLATE},
                            "inventory": {"name": "vms", "key": "instanceID", "require": True}})
    store = SQLiteStore(authority_dir / "db" / "cirrus.db")
    try:
        store.create_inventory(Inventory("vms", "hosts", dt.datetime.now(dt.UTC)))
        store.put_inventory_entries("vms", {"i-0ffffffffffffffff": {"workload": "someone-else"}})
        token = step_token()
        refused = sign(api, token)
        assert refused.status_code == 403 and "no entry in the inventory" in refused.get_json()["message"]
        store.put_inventory_entries("vms", {"i-0a1b2c3d4e5f67890": {"workload": "billing"}})
        answer = sign(api, token)  # trust on first use was not spent by the refusal
        assert answer.status_code == 201, answer.text
    finally:
        store.close()
    cert = x509.load_pem_x509_certificate(answer.get_json()["crt"].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [DNS, "billing.workloads.internal"]
    assert cert.subject.rfc4514_string() == f"CN={DNS}"
