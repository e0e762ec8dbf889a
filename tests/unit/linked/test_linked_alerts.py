"""A linked authority's certificates are alerted on like the authority's own (one `endpoint.expiring`)."""

from __future__ import annotations

import base64
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.test import Client

from shared.events.base import ENDPOINT_EXPIRING
from shared.linked.registry import authority_id_of, linked_authority_ids, register
from shared.runtime import Services


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)])


def test_lapsing_linked_certificate_raises_one_expiring_alert(api: Client, services: Services) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder().subject_name(_name("Edge Root")).issuer_name(_name("Edge Root"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    # A 3-hour certificate with 30 minutes left: inside its default window (a third of its life, 1 h).
    leaf = (
        x509.CertificateBuilder().subject_name(_name("lapsing.edge.example")).issuer_name(root.subject)
        .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=150)).not_valid_after(now + dt.timedelta(minutes=30))
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    token = register(services.store, "edge", roots=[root], now=now)
    assert linked_authority_ids(services.store) == [authority_id_of("edge")]
    der = base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()
    r = api.post("/linked/v1/report", json={"events": [{"type": "issued", "certificate": der}]},
                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert services.expiry_alerts() == 1
    assert services.expiry_alerts() == 0  # exactly one per certificate across sweeps
    alerts = [e for e in services.store.list_events(limit=1000) if e.type == ENDPOINT_EXPIRING]
    record = services.store.get_certificate(str(leaf.serial_number))
    assert record is not None and [a.subject for a in alerts] == [record.endpoint_id]
    assert alerts[0].source.endswith(authority_id_of("edge"))
