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
STORE_SOURCES = {
    "FirestoreStore": REPO / "shared" / "store" / "firestore.py",
    "ShardedQueries": REPO / "shared" / "store" / "firestore_queries.py",
    "FirestoreMeter": REPO / "shared" / "store" / "firestore_usage.py",
    "FirestoreInventories": REPO / "shared" / "store" / "firestore_inventory.py",
}
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
    from google.cloud.firestore_v1.aggregation import AggregationQuery
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

    def aggregate(self: Any, *args: Any, **kwargs: Any) -> Any:
        stream(self._nested_query)  # an aggregation is served by its query's index
        return []

    original = FsQuery.stream
    original_aggregate = AggregationQuery.get
    FsQuery.stream = stream  # type: ignore[method-assign]
    AggregationQuery.get = aggregate  # type: ignore[method-assign]
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
            "page_endpoint_months": lambda: (
                store.page_endpoint_months("2026-01"), store.page_endpoint_months("2026-01", after="ep", limit=5)),
            "usage_total": lambda: (store.usage_total("2026-01"), store.usage_total("2026-01", authority_id="ca")),
            # the endpoint's active certificates, read inside record_issuance's and revoke's transaction
            "intervals": lambda: store._meter.intervals(None, {}, "ep", (0, 1)),
            "backfill_shards": store.backfill_shards,
            "list_inventories": store.list_inventories,
            "_entries_page_query": lambda: (
                store._entries_page_query("hosts", "", 10).stream(),
                store._entries_page_query("hosts", "vm-1", 10).stream(),
            ),
        }
        for name, call in calls.items():
            current[0] = name
            call()
    finally:
        FsQuery.stream = original  # type: ignore[method-assign]
        AggregationQuery.get = original_aggregate  # type: ignore[method-assign]
    return seen


def query_methods() -> set[str]:
    """FirestoreStore methods whose body builds a query (`.where(` / `.order_by(`), read from the source."""
    out = set()
    for class_name, source in STORE_SOURCES.items():
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == class_name:
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
    assert query_methods() - {"_first_events", "_in_shard"} <= set(recorded), sorted(query_methods() - set(recorded))
    assert all(recorded.values())


def test_every_query_is_served_by_an_index(recorded: dict[str, list[Query]], indexes: Indexes) -> None:
    failures = [
        f"{method}: {q} -> {why}"
        for method, queries in recorded.items()
        for q in queries
        if (why := indexes.serves(q)) is not None
    ]
    assert not failures, "Firestore would refuse:\n" + "\n".join(failures)


def test_every_query_on_an_exempted_field_is_served_by_a_composite(
    recorded: dict[str, list[Query]], indexes: Indexes
) -> None:
    """An exemption removes the single-field index only: a query on that field must have its composite."""
    for (collection, field), override in indexes.overrides.items():
        if override.get("indexes"):
            continue
        for method, queries in recorded.items():
            for q in queries:
                fields = {f for f, _ in [*q["filters"], *q["orders"]]}
                if q["collection"] == collection and any(f == field or f.startswith(field + ".") for f in fields):
                    assert indexes.serves(q) is None, f"{collection}.{field} is exempted; {method} queries it: {q}"


def test_purge_expired_query_needs_the_claims_index(recorded: dict[str, list[Query]]) -> None:
    """The checker itself: without the (shard, expireAt) composite (claims.expireAt is exempted), sweep is refused.

    Issue 19's `sweep` failed in production this way when the single-field index was switched off.
    """
    spec = json.loads(INDEX_FILE.read_text(encoding="utf-8"))
    spec["indexes"] = [i for i in spec["indexes"] if i["collectionGroup"] != "claims"]
    broken = Indexes(spec)
    query = recorded["purge_expired"][0]
    assert query["collection"] == "claims" and query["filters"] == [("shard", "EQUAL"), ("expireAt", "LESS_THAN")]
    assert Indexes(json.loads(INDEX_FILE.read_text(encoding="utf-8"))).serves(query) is None
    assert broken.serves(query) is not None
    # and a composite the file lacks is reported
    assert Indexes({"indexes": [], "fieldOverrides": []}).serves(recorded["list_revocations"][0]) is not None


def test_the_module_applies_every_override_as_written() -> None:
    """The module's google_firestore_field takes each override's own index list (none ignored)."""
    text = (REPO / "terraform" / "modules" / "cirrus" / "firestore.tf").read_text(encoding="utf-8")
    assert 'for o in try(local.index_spec.fieldOverrides, []) :\n    "${o.collectionGroup}/${o.fieldPath}" => o\n  }' in text
    assert "for_each = each.value.indexes" in text
    spec = json.loads(INDEX_FILE.read_text(encoding="utf-8"))
    assert all("indexes" in o for o in spec["fieldOverrides"]), "say which single-field indexes each override keeps"


# Fields whose values rise with time as documents are written (the store's encodings in
# shared/store/codec.py and firestore_docs.py). Firestore sustains about 500 writes/s into an
# index range that rises monotonically, so no index may hold one of these without a leading shard.
TIME_FIELDS = {
    "certificates": {"issued_at", "not_before", "not_after", "ev_first", "ev_last"},
    "revocations": {"revoked_at", "not_after", "ev_first", "ev_last"},
    "events": {"ev_first", "ev_last"},
    "claims": {"expireAt"},
    "endpoints": {"created_at"},
    # billable_to follows the newest certificate's not_after, billable_from its month's first
    # issuance: both rise with time as issuances rewrite the month documents. (`month` is a time
    # too, but constant for a whole month: its index entries sort by document id,
    # "YYYY-MM|endpoint id", random after the month, so they scatter; list_endpoint_months needs it.)
    "endpoint_months": {"billable_from", "billable_to"},
}
SHARD = "shard"
# An equality on a field whose values are random keys, leading the index, bounds each index
# range to one key: the metering read (certificates of one endpoint with not_after after a
# time, in issuance's and revocation's transaction) uses (endpoint_id, not_after). Endpoint ids
# are random on Firestore (`FirestoreStore.endpoint_id_order`; endpoints from before that keep
# their ids but gain no new neighbours in time order), so concurrent issuances write entries
# scattered over the endpoint ids, and not_after rises only within one endpoint, at that
# endpoint's own issuance rate (which its transaction serialises anyway): no range rises at the
# service's rate. Sharding it instead would cost N queries inside every issuance's transaction.
RANDOM_KEY_PREFIX = {"certificates": "endpoint_id"}


def bounded_by_random_key(collection: str, leading: str) -> bool:
    """Is an index on `collection` leading with `leading` one random key's range (see above)?"""
    from shared.store.firestore import FirestoreStore

    return RANDOM_KEY_PREFIX.get(collection) == leading and FirestoreStore.endpoint_id_order == "random"


def unsharded_time_indexes(spec: dict[str, Any]) -> list[str]:
    """Every index in `spec` over a time field that does not lead with `shard` (automatic ones included)."""
    problems = []
    for ix in spec["indexes"]:
        fields = [f["fieldPath"] for f in ix["fields"]]
        timed = set(fields) & TIME_FIELDS.get(ix["collectionGroup"], set())
        if timed and fields[0] != SHARD and not bounded_by_random_key(ix["collectionGroup"], fields[0]):
            problems.append(f"composite {ix['collectionGroup']}{fields} holds {sorted(timed)} without a leading shard")
    exempted = {(o["collectionGroup"], o["fieldPath"]) for o in spec.get("fieldOverrides", []) if not o.get("indexes")}
    for collection, fields in TIME_FIELDS.items():
        for field in sorted(fields):
            if (collection, field) not in exempted:
                problems.append(f"single-field index on {collection}.{field} (automatic unless exempted)")
    return problems


def test_no_index_over_a_time_field_is_unsharded() -> None:
    spec = json.loads(INDEX_FILE.read_text(encoding="utf-8"))
    assert unsharded_time_indexes(spec) == []


def test_the_shard_check_fails_on_an_unsharded_time_index() -> None:
    """The checker itself: the pre-shard layout (issue 18) is reported, index by index."""
    spec = json.loads(INDEX_FILE.read_text(encoding="utf-8"))
    spec["indexes"].append(
        {"collectionGroup": "certificates", "fields": [{"fieldPath": "authority_id"}, {"fieldPath": "issued_at"}]}
    )
    spec["fieldOverrides"] = [o for o in spec["fieldOverrides"] if o["collectionGroup"] != "claims"]
    problems = unsharded_time_indexes(spec)
    assert len(problems) == 2, problems
    assert "['authority_id', 'issued_at']" in problems[0] and "claims.expireAt" in problems[1]


def test_every_time_ordered_query_reads_one_shard(recorded: dict[str, list[Query]]) -> None:
    """A query ranging or ordering on a time field must name its shard (the fan-out merges them)."""
    for method, queries in recorded.items():
        for q in queries:
            timed = {f for f, _ in [*q["filters"], *q["orders"]]} & TIME_FIELDS.get(q["collection"], set())
            leading = q["filters"][0] if q["filters"] else ("", "")
            if timed and not (leading[1] == "EQUAL" and bounded_by_random_key(q["collection"], leading[0])):
                assert (SHARD, "EQUAL") in q["filters"], f"{method} queries {sorted(timed)} unsharded: {q}"


def test_the_random_key_exception_is_narrow() -> None:
    """The checker itself: (endpoint_id, not_after) passes only on certificates, and only as the leading field."""
    spec = json.loads(INDEX_FILE.read_text(encoding="utf-8"))
    assert {
        "collectionGroup": "certificates",
        "queryScope": "COLLECTION",
        "fields": [
            {"fieldPath": "endpoint_id", "order": "ASCENDING"},
            {"fieldPath": "not_after", "order": "ASCENDING"},
        ],
    } in spec["indexes"]
    spec["indexes"] += [
        {"collectionGroup": "revocations", "fields": [{"fieldPath": "endpoint_id"}, {"fieldPath": "not_after"}]},
        {
            "collectionGroup": "certificates",
            "fields": [{"fieldPath": "authority_id"}, {"fieldPath": "endpoint_id"}, {"fieldPath": "not_after"}],
        },
    ]
    spec["fieldOverrides"] = [o for o in spec["fieldOverrides"] if o["collectionGroup"] != "endpoint_months"]
    problems = unsharded_time_indexes(spec)
    assert len(problems) == 4, problems
    assert "revocations['endpoint_id', 'not_after']" in problems[0]
    assert "['authority_id', 'endpoint_id', 'not_after']" in problems[1]
    assert "endpoint_months.billable_from" in problems[2] and "endpoint_months.billable_to" in problems[3]


def test_the_metering_query_leads_with_its_endpoint(recorded: dict[str, list[Query]]) -> None:
    """The one time-ranged query without a shard is bounded to one endpoint by an equality."""
    (query,) = recorded["intervals"]
    assert query["collection"] == "certificates"
    assert query["filters"] == [("endpoint_id", "EQUAL"), ("not_after", "GREATER_THAN")]
