"""`list_serials_issued_since` on every store backend: the published serial index's only query.

The index publisher pages through new issuances with an `(issued_at, serial)`
cursor, so every backend must order the same way, include `issued_at == since`
when no serial is given, and never skip or repeat a row across pages, even
when many certificates share one timestamp.
"""

from __future__ import annotations

import datetime as dt

from test_store_contract import T0, cert

from shared.model import CertificateKind
from shared.store.base import Store

US = dt.timedelta(microseconds=1)


def _all(store: Store, authority_id: str, since: dt.datetime, limit: int) -> list[str]:
    out: list[str] = []
    cursor_time, cursor_serial = since, ""
    while True:
        page = store.list_serials_issued_since(  # type: ignore[attr-defined]
            authority_id, cursor_time, limit=limit, after_serial=cursor_serial
        )
        assert len(page) <= limit
        if not page:
            return out
        out.extend(serial for _, serial, _, _ in page)
        cursor_time, cursor_serial = page[-1][0], page[-1][1]


def test_cursor_order_ties_and_authority_filter(store: Store) -> None:
    # five certificates in the same microsecond, others around it, one of another authority
    same = [f"5{i}" for i in range(5)]
    for i, serial in enumerate(same):
        store.record_issuance(cert(serial, endpoint_id=f"e{i}", issued_at=T0))
    store.record_issuance(cert("9", endpoint_id="a", issued_at=T0 - US))
    store.record_issuance(cert("1", endpoint_id="b", issued_at=T0 + US))
    store.record_issuance(cert("7", endpoint_id="c", issued_at=T0 + dt.timedelta(hours=1)))
    store.record_issuance(cert("8", endpoint_id="d", issued_at=T0, authority_id="other"))
    ssh = cert("6", endpoint_id="s", issued_at=T0 + dt.timedelta(minutes=1), kind=CertificateKind.SSH)
    store.record_issuance(ssh)

    rows = store.list_serials_issued_since("auth-1", T0, limit=100)  # type: ignore[attr-defined]
    assert [r[1] for r in rows] == [*same, "1", "6", "7"]  # >= since, (issued_at, serial) order
    first = rows[0]
    assert first[0] == T0 and first[2] == T0 + dt.timedelta(days=1) and first[3] == "x509"
    assert rows[-2][3] == "ssh"
    assert all(r[0].tzinfo is not None and r[0].utcoffset() == dt.timedelta(0) for r in rows)
    # strictly after the cursor (T0, "52"): the rest of the tie, then later ones
    after = store.list_serials_issued_since("auth-1", T0, limit=100, after_serial="52")  # type: ignore[attr-defined]
    assert [r[1] for r in after] == ["53", "54", "1", "6", "7"]
    # paging with every page size gives each row exactly once
    for limit in (1, 2, 3, 7):
        assert _all(store, "auth-1", T0 - dt.timedelta(days=1), limit) == ["9", *same, "1", "6", "7"]
    assert store.list_serials_issued_since("auth-1", T0, limit=0) == []  # type: ignore[attr-defined]
    assert store.list_serials_issued_since("nobody", T0 - dt.timedelta(days=1), limit=10) == []  # type: ignore[attr-defined]
