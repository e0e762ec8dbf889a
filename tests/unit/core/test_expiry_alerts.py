"""Expiry alerts: once per certificate, only for an endpoint's newest, unrevoked certificate."""

from __future__ import annotations

import datetime as dt

import pytest

from shared.alerts import AlertStores, run_expiry_alerts
from shared.model import CertificateKind, CertificateRecord, Endpoint, ProvisionerRef, Revocation
from shared.store.memory import MemoryStore

T0 = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def record(store: MemoryStore, serial: str, endpoint_id: str, *, issued: dt.datetime, not_after: dt.datetime, new: bool) -> None:
    rec = CertificateRecord(
        serial=serial, authority_id="a", kind=CertificateKind.X509, der=b"\x30\x00", not_before=issued,
        not_after=not_after, provisioner=ProvisionerRef("p", "p", "JWK"), endpoint_id=endpoint_id,
        subject_key="k", common_name="n", sans=("n",), issued_at=issued,
    )
    ep = Endpoint(id=endpoint_id, authority_id="a", provisioner_id="p", subject_key="k", name="n", created_at=issued)
    store.record_issuance(rec, new_endpoint=ep if new else None)


def stores(store: MemoryStore) -> AlertStores:
    return AlertStores(expiring=store, certificates=store, revocations=store, ledger=store, events=store)


def test_expiring_then_expired_once_each() -> None:
    store = MemoryStore()
    record(store, "1", "ep-1", issued=T0, not_after=T0 + dt.timedelta(hours=24), new=True)
    # Renewed: the old certificate of ep-2 expires soon but a newer one exists.
    record(store, "2", "ep-2", issued=T0, not_after=T0 + dt.timedelta(hours=24), new=True)
    record(store, "3", "ep-2", issued=T0 + dt.timedelta(hours=16), not_after=T0 + dt.timedelta(hours=40), new=False)
    # Revoked: no alert.
    record(store, "4", "ep-3", issued=T0, not_after=T0 + dt.timedelta(hours=24), new=True)
    store.revoke(Revocation(serial="4", authority_id="a", revoked_at=T0, not_after=T0 + dt.timedelta(hours=24)))

    at = T0 + dt.timedelta(hours=17)  # 7 h left: inside the 8 h window
    raised = run_expiry_alerts(stores(store), authority_id="a", now=at)
    assert [(e.type, e.subject, e.data["serial"]) for e in raised] == [("dev.cirrus.endpoint.expiring", "ep-1", "1")]
    assert run_expiry_alerts(stores(store), authority_id="a", now=at + dt.timedelta(minutes=5)) == []  # once

    after = T0 + dt.timedelta(hours=25)
    raised = run_expiry_alerts(stores(store), authority_id="a", now=after)
    assert [(e.type, e.subject) for e in raised] == [("dev.cirrus.endpoint.expired", "ep-1")]
    assert run_expiry_alerts(stores(store), authority_id="a", now=after) == []
    logged = [e.type for e in store.list_events(limit=100)]
    assert logged.count("dev.cirrus.endpoint.expiring") == 1 and logged.count("dev.cirrus.endpoint.expired") == 1


def test_default_window_is_a_third_of_the_lifetime() -> None:
    """Issue 17: a 90-day certificate alerts 30 days ahead, a 24 h one 8 h ahead (not a fixed 8 h)."""
    store = MemoryStore()
    record(store, "1", "ep-long", issued=T0, not_after=T0 + dt.timedelta(days=90), new=True)
    record(store, "2", "ep-short", issued=T0, not_after=T0 + dt.timedelta(hours=24), new=True)
    at = T0 + dt.timedelta(days=59)  # 31 days left on the long one
    raised = run_expiry_alerts(stores(store), authority_id="a", now=T0 + dt.timedelta(hours=15))
    assert raised == []  # 9 h left of 24 h: outside a third
    raised = run_expiry_alerts(stores(store), authority_id="a", now=T0 + dt.timedelta(hours=17))
    assert [e.subject for e in raised] == ["ep-short"]
    assert run_expiry_alerts(stores(store), authority_id="a", now=at) == []
    raised = run_expiry_alerts(stores(store), authority_id="a", now=at + dt.timedelta(days=2))
    assert [e.subject for e in raised] == ["ep-long"]


def test_provisioner_window_overrides_the_default() -> None:
    from shared.alerts import AlertWindows

    store = MemoryStore()
    record(store, "1", "ep-1", issued=T0, not_after=T0 + dt.timedelta(hours=24), new=True)
    windows = AlertWindows(by_provisioner={"p": dt.timedelta(hours=1)})
    assert run_expiry_alerts(stores(store), authority_id="a", now=T0 + dt.timedelta(hours=20), windows=windows) == []
    raised = run_expiry_alerts(stores(store), authority_id="a", now=T0 + dt.timedelta(hours=23, minutes=30), windows=windows)
    assert [e.subject for e in raised] == ["ep-1"]


def test_alert_windows_from_config(tmp_path) -> None:
    import json

    from shared.cli.init import init_authority
    from shared.config import Settings
    from shared.errors import ConfigError

    init_authority(tmp_path / "ca", p2c=1000)
    path = tmp_path / "ca" / "config.json"
    config = json.loads(path.read_text())
    config["authority"]["provisioners"][0]["alerts"] = {"expiringWithin": "2h"}
    config["alerts"] = {"horizon": "2160h"}
    path.write_text(json.dumps(config))
    windows = Settings.load(path).alert_windows
    assert windows.default is None and windows.by_provisioner == {"admin": dt.timedelta(hours=2)}
    assert windows.scan_horizon() == dt.timedelta(days=90)
    config["authority"]["provisioners"][0]["alerts"] = {"expiringWithin": "\uff12h"}
    path.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="expiringWithin"):
        Settings.load(path)
