"""Every Firestore query the store issues is served by an index the Terraform module creates.

The emulator serves any query without an index, so a query that production Firestore refuses
(`FAILED_PRECONDITION: The query requires an index`) passes every emulator test: issue 19's
`sweep` failed on every run that way, because the module switched off the single-field index on
`claims.expireAt` that `purge_expired` queries.

This test drives each query-issuing method of the real `FirestoreStore` on a real Firestore
client (no server: the structured query is read at `Query.stream`, where it would be sent), then
checks each query against `shared/store/firestore_indexes.json`, which the module applies
(composite indexes, and every field override: TTL policies and single-field index exemptions).
It also checks that every exemption is on a field no query touches.

Index rules applied (Firestore's, simplified to the shapes used here): equality filters plus an
order on the document id alone are served by single-field indexes, one per filtered field; one
range filter ordered by that field (and then the id) by the field's single-field index; anything
else needs a composite index of the equality fields followed by the ordered fields.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
STORE_SOURCE = REPO / "shared" / "store" / "firestore.py"
INDEX_FILE = REPO / "shared" / "store" / "firestore_indexes.json"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DOC_ID = "__name__"
EQUALITY = {"EQUAL", "IN", "ARRAY_CONTAINS", "ARRAY_CONTAINS_ANY"}

Query = dict[str, Any]


def _field(path: str) -> str:
    return path.replace("`", "")


def record_queries() -> dict[str, list[Query]]:
    """The structured queries each FirestoreStore method sends, by method name."""
    pytest.importorskip("google.cloud.firestore")
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore
    from google.cloud.firestore_v1.base_query import BaseQuery
    from google.cloud.firestore_v1.query import Query as FsQuery

    from shared.store.firestore import FirestoreStore

    client = firestore.Client(project="cirrus-queries", credentials=AnonymousCredentials())
    store = FirestoreStore(client=client)
    seen: dict[str, list[Query]] = {}
    current: list[str] = [""]

    def stream(self: BaseQuery, *args: Any, **kwargs: Any) -> Any:
        pb = self._to_protobuf()
        filters: list[tuple[str, str]] = []

        def walk(f: Any) -> None:
            kind = f._pb.WhichOneof("filter_type")
            if kind == "composite_filter":
                for sub in f.composite_filter.filters:
                    walk(sub)
            elif kind == "field_filter":
                filters.append((_field(f.field_filter.field.field_path), f.field_filter.op.name))
            elif kind == "unary_filter":
                filters.append((_field(f.unary_filter.field.field_path), f.unary_filter.op.name))

        if pb.where:
            walk(pb.where)
        seen.setdefault(current[0], []).append(
            {
                "collection": pb.from_[0].collection_id,
                "filters": filters,
                "orders": [(_field(o.field.field_path), o.direction.name) for o in pb.order_by],
            }
        )
        return iter(())

    original = FsQuery.stream
    FsQuery.stream = stream  # type: ignore[method-assign]
    try:
        calls = {
            "purge_expired": lambda: store.purge_expired(NOW),
            "list_certificates_by_endpoint": lambda: store.list_certificates_by_endpoint("ep"),
            "list_serials_issued_since": lambda: store.list_serials_issued_since("ca", NOW, after_serial="1"),
            "list_certificates_expiring": lambda: store.list_certificates_expiring("ca", NOW, NOW),
            "list_endpoints": lambda: (
                store.list_endpoints(),
                store.list_endpoints(authority_id="ca"),
                store.list_endpoints(authority_id="ca", after="ep"),
                store.list_endpoints(after="ep"),
            ),
            "revoked_since": lambda: store.revoked_since(NOW),
            "list_revocations": lambda: store.list_revocations("ca", not_after_since=NOW),
            "list_events": lambda: (store.list_events(), store.list_events(since=NOW)),
            "find_documents": lambda: store.find_documents("acme_orders", "account", "a1"),
            "list_endpoint_months": lambda: (
                store.list_endpoint_months("2026-01"),
                store.list_endpoint_months("2026-01", authority_id="ca"),
            ),
            # the endpoint's active certificates, read inside record_issuance's and revoke's transaction
            "metering_intervals": lambda: store._meter.intervals(None, {}, "ep", (0, 1)),
        }
        for name, call in calls.items():
            current[0] = name
            call()
    finally:
        FsQuery.stream = original  # type: ignore[method-assign]
    return seen


def query_methods() -> set[str]:
    """FirestoreStore methods whose body builds a query (`.where(` / `.order_by(`), read from the source."""
    tree = ast.parse(STORE_SOURCE.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == "FirestoreStore":
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    src = ast.unparse(item)
                    if ".where(" in src or ".order_by(" in src:
                        out.add(item.name)
    return out


class Indexes:
    """What firestore_indexes.json (as the Terraform module applies it) makes queryable."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.composites = [
            (i["collectionGroup"], [(f["fieldPath"], f.get("order", "ASCENDING")) for f in i["fields"]])
            for i in spec["indexes"]
        ]
        self.overrides = {(o["collectionGroup"], o["fieldPath"]): o for o in spec.get("fieldOverrides", [])}

    def single_field(self, collection: str, field: str, order: str = "ASCENDING") -> bool:
        """Is `field` (or its map parent) single-field indexed in `order`?"""
        if field == DOC_ID:
            return True
        parts = field.split(".")
        for n in range(len(parts), 0, -1):
            override = self.overrides.get((collection, ".".join(parts[:n])))
            if override is not None:
                return any(
                    i.get("order") == order and i.get("queryScope", "COLLECTION") == "COLLECTION"
                    for i in override.get("indexes", [])
                )
        return True  # Firestore's automatic single-field indexes

    def serves(self, q: Query) -> str | None:
        """None when served; otherwise why not."""
        col = q["collection"]
        equalities = [f for f, op in q["filters"] if op in EQUALITY and f != DOC_ID]
        ranges = sorted({f for f, op in q["filters"] if op not in EQUALITY and f != DOC_ID})
        orders = [(f, d) for f, d in q["orders"] if f != DOC_ID]
        if not ranges and not orders:
            missing = [f for f in equalities if not self.single_field(col, f)]
            return f"single-field index off for {missing}" if missing else None
        if not equalities and len(ranges) <= 1 and len({f for f, _ in orders} | set(ranges)) == 1:
            field = (ranges or [orders[0][0]])[0]
            direction = orders[0][1] if orders else "ASCENDING"
            return None if self.single_field(col, field, direction) else f"single-field index off for {field}"
        wanted_tail = orders + [(f, "ASCENDING") for f in ranges if f not in {o for o, _ in orders}]
        for group, fields in self.composites:
            if group != col or len(fields) != len(equalities) + len(wanted_tail):
                continue
            head, tail = fields[: len(equalities)], fields[len(equalities):]
            if {f for f, _ in head} == set(equalities) and tail == wanted_tail:
                return None
        return f"no composite index {col}: {equalities} + {wanted_tail}"


@pytest.fixture(scope="module")
def recorded() -> dict[str, list[Query]]:
    return record_queries()


@pytest.fixture(scope="module")
def indexes() -> Indexes:
    return Indexes(json.loads(INDEX_FILE.read_text(encoding="utf-8")))


def test_every_query_building_method_is_driven(recorded: dict[str, list[Query]]) -> None:
    """A new query in the store must be added to record_queries(), or this list is incomplete."""
    assert query_methods() - {"_first_events"} <= set(recorded), sorted(query_methods() - set(recorded))
    assert all(recorded.values())


def test_every_query_is_served_by_an_index(recorded: dict[str, list[Query]], indexes: Indexes) -> None:
    failures = [
        f"{method}: {q} -> {why}"
        for method, queries in recorded.items()
        for q in queries
        if (why := indexes.serves(q)) is not None
    ]
    assert not failures, "Firestore would refuse:\n" + "\n".join(failures)


def test_every_exemption_is_unqueried(recorded: dict[str, list[Query]], indexes: Indexes) -> None:
    touched = {
        (q["collection"], f) for queries in recorded.values() for q in queries for f, _ in [*q["filters"], *q["orders"]]
    }
    for (collection, field), override in indexes.overrides.items():
        if override.get("indexes"):
            continue
        hits = {t for t in touched if t[0] == collection and (t[1] == field or t[1].startswith(field + "."))}
        assert not hits, f"{collection}.{field} is exempted from indexing but queried: {hits}"


def test_purge_expired_query_needs_the_claims_index(recorded: dict[str, list[Query]]) -> None:
    """The checker itself: with claims.expireAt exempted (issue 19's module), sweep's query is refused."""
    spec = json.loads(INDEX_FILE.read_text(encoding="utf-8"))
    for override in spec["fieldOverrides"]:
        if (override["collectionGroup"], override["fieldPath"]) == ("claims", "expireAt"):
            override["indexes"] = []
    broken = Indexes(spec)
    (query,) = recorded["purge_expired"]
    assert query["collection"] == "claims" and query["filters"] == [("expireAt", "LESS_THAN")]
    assert broken.serves(query) == "single-field index off for expireAt"
    # and a composite the file lacks is reported
    assert Indexes({"indexes": [], "fieldOverrides": []}).serves(recorded["list_revocations"][0]) is not None


def test_the_module_applies_every_override_as_written() -> None:
    """The module's google_firestore_field takes each override's own index list (none ignored)."""
    text = (REPO / "terraform" / "modules" / "cirrus" / "firestore.tf").read_text(encoding="utf-8")
    assert 'for o in try(local.index_spec.fieldOverrides, []) :\n    "${o.collectionGroup}/${o.fieldPath}" => o\n  }' in text
    assert "for_each = each.value.indexes" in text
    spec = json.loads(INDEX_FILE.read_text(encoding="utf-8"))
    assert all("indexes" in o for o in spec["fieldOverrides"]), "say which single-field indexes each override keeps"
