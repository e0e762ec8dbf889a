"""The SQLite store's schema: tables, indexes, and the in-place upgrades between versions.

Split from `shared.store.sqlite` (whose role modules keep connections, locking and the store
operations) so the record layout and its migrations read in one place. The schema is
created on open, idempotently, and versioned in `schema_version`; an older file is
upgraded in place inside the schema transaction (all of it or none of it), see
`MIGRATE_1_TO_2`, `MIGRATE_2_TO_3`, `MIGRATE_3_TO_4` and `MIGRATE_4_TO_5`.
"""

from __future__ import annotations

import hashlib
import sqlite3

from shared.errors import ConfigError

SCHEMA_VERSION = 5

_EVENTS_TABLE = """CREATE TABLE IF NOT EXISTS events (
        id TEXT NOT NULL,
        type TEXT NOT NULL,
        source TEXT NOT NULL,
        subject TEXT NOT NULL,
        time INTEGER NOT NULL,
        data TEXT NOT NULL
    )"""
_EVENTS_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS events_by_time ON events (time, id)"

# Version 1 -> 2, in place, inside the schema transaction (so all of it or none of it):
# - events lose the `id` primary key (rebuilt: SQLite cannot drop a key) and `(time, id)`
#   becomes unique;
# - the `document_fields` table goes: `find_documents` uses expression indexes created on
#   first use, which SQLite maintains itself (no per-field rows on every write).
MIGRATE_1_TO_2: tuple[str, ...] = (
    _EVENTS_TABLE.replace("EXISTS events", "EXISTS events_v2"),
    "INSERT OR IGNORE INTO events_v2 (id, type, source, subject, time, data) "
    "SELECT id, type, source, subject, time, data FROM events ORDER BY time, id",
    "DROP TABLE events",
    "ALTER TABLE events_v2 RENAME TO events",
    _EVENTS_INDEX,
    "DROP TABLE IF EXISTS document_fields",
    "UPDATE schema_version SET version = 2 WHERE id = 1",
)

_USED_TOKENS_TABLE = """CREATE TABLE IF NOT EXISTS used_tokens (
        digest BLOB NOT NULL,
        namespace TEXT NOT NULL,
        key TEXT NOT NULL,
        expires_at INTEGER NOT NULL
    )"""

# Version 2 -> 3, the same way: `used_tokens` becomes a rowid table (rows appended in claim
# order) unique by `digest` instead of a WITHOUT ROWID table keyed by (namespace, key).
# `cirrus_claim_digest` is `_claim_digest`, registered on the connection for the copy.
MIGRATE_2_TO_3: tuple[str, ...] = (
    _USED_TOKENS_TABLE.replace("EXISTS used_tokens", "EXISTS used_tokens_v3"),
    "INSERT INTO used_tokens_v3 (digest, namespace, key, expires_at) "
    "SELECT cirrus_claim_digest(namespace, key), namespace, key, expires_at FROM used_tokens",
    "DROP TABLE used_tokens",
    "ALTER TABLE used_tokens_v3 RENAME TO used_tokens",
    "UPDATE schema_version SET version = 3 WHERE id = 1",
)

_ENDPOINT_MONTHS_TABLE = """CREATE TABLE IF NOT EXISTS endpoint_months (
        month TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        authority_id TEXT NOT NULL,
        name TEXT NOT NULL,
        billable_from INTEGER NOT NULL,
        billable_to INTEGER NOT NULL,
        peak_active INTEGER NOT NULL,
        PRIMARY KEY (month, endpoint_id)
    ) WITHOUT ROWID"""
# An endpoint's certificates still active after an instant: what metering reads per write.
_CERTIFICATES_BY_ENDPOINT_EXPIRY = (
    "CREATE INDEX IF NOT EXISTS certificates_by_endpoint_expiry ON certificates (endpoint_id, not_after)"
)

# Version 3 -> 4: endpoint-month usage records (`shared.metering`), kept by every issuance
# and revocation. The table and the index are created, then `sqlite_usage.backfill` builds
# the records of the certificates already stored, all in the schema transaction.
MIGRATE_3_TO_4: tuple[str, ...] = (
    _ENDPOINT_MONTHS_TABLE,
    _CERTIFICATES_BY_ENDPOINT_EXPIRY,
)

_INVENTORIES_TABLE = """CREATE TABLE IF NOT EXISTS inventories (
        name TEXT PRIMARY KEY NOT NULL,
        kind TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) WITHOUT ROWID"""
_INVENTORY_ENTRIES_TABLE = """CREATE TABLE IF NOT EXISTS inventory_entries (
        inventory TEXT NOT NULL,
        key TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (inventory, key)
    ) WITHOUT ROWID"""

# Version 4 -> 5: inventories (`shared.store.sqlite_inventory`); two new tables, nothing to copy.
MIGRATE_4_TO_5: tuple[str, ...] = (
    _INVENTORIES_TABLE,
    _INVENTORY_ENTRIES_TABLE,
)

_SCHEMA: tuple[str, ...] = (
    _USED_TOKENS_TABLE,
    # Unique by digest, not by (namespace, key): see `_claim_digest`.
    "CREATE UNIQUE INDEX IF NOT EXISTS used_tokens_by_digest ON used_tokens (digest)",
    # (expires_at, rowid): claims of one second are appended in claim order, not by random key.
    "CREATE INDEX IF NOT EXISTS used_tokens_by_expiry ON used_tokens (expires_at)",
    """CREATE TABLE IF NOT EXISTS certificates (
        serial TEXT PRIMARY KEY NOT NULL,
        authority_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        der BLOB NOT NULL,
        not_before INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        provisioner_id TEXT NOT NULL,
        provisioner_name TEXT NOT NULL,
        provisioner_type TEXT NOT NULL,
        endpoint_id TEXT NOT NULL,
        subject_key TEXT NOT NULL,
        common_name TEXT NOT NULL,
        sans TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        renewed_from TEXT,
        operation TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS certificates_by_endpoint
        ON certificates (endpoint_id, issued_at, serial)""",
    _CERTIFICATES_BY_ENDPOINT_EXPIRY,
    # One row per (month, endpoint) with an active certificate: the usage report reads these.
    _ENDPOINT_MONTHS_TABLE,
    # The published serial index reads new issuances by (issued_at, serial) cursor.
    """CREATE INDEX IF NOT EXISTS certificates_by_authority_issued
        ON certificates (authority_id, issued_at, serial)""",
    # Expiry alerts read certificates by expiry window.
    """CREATE INDEX IF NOT EXISTS certificates_by_authority_expiry
        ON certificates (authority_id, not_after, serial)""",
    """CREATE TABLE IF NOT EXISTS endpoints (
        id TEXT PRIMARY KEY NOT NULL,
        authority_id TEXT NOT NULL,
        provisioner_id TEXT NOT NULL,
        subject_key TEXT NOT NULL,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS endpoints_by_authority ON endpoints (authority_id, id)",
    """CREATE TABLE IF NOT EXISTS revocations (
        serial TEXT PRIMARY KEY NOT NULL,
        authority_id TEXT NOT NULL,
        revoked_at INTEGER NOT NULL,
        not_after INTEGER NOT NULL,
        reason_code INTEGER NOT NULL,
        reason TEXT NOT NULL,
        provisioner_id TEXT NOT NULL,
        mtls INTEGER NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS revocations_by_authority_expiry
        ON revocations (authority_id, not_after)""",
    """CREATE INDEX IF NOT EXISTS revocations_by_time ON revocations (revoked_at)""",
    # No primary key on `id`: a random-UUID key is a B-tree insert at a random leaf, the
    # costliest write of an issuance. `(time, id)` is unique instead, and time-ordered inserts
    # land on the same few hot pages; a retried event (same object, same time) is still ignored.
    _EVENTS_TABLE,
    _EVENTS_INDEX,
    """CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY NOT NULL,
        value INTEGER NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS documents (
        collection TEXT NOT NULL,
        id TEXT NOT NULL,
        data TEXT NOT NULL,
        version INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (collection, id)
    )""",
    """CREATE INDEX IF NOT EXISTS documents_by_expiry
        ON documents (expires_at) WHERE expires_at IS NOT NULL""",
    _INVENTORIES_TABLE,
    _INVENTORY_ENTRIES_TABLE,
)


def claim_digest(namespace: str, key: str) -> bytes:
    """What makes a claim unique: SHA-256 over the length-prefixed namespace, then the key.

    Why a digest: claim keys are random (a token's `jti`), so every claim lands at a random
    leaf of the unique index. 32-byte entries instead of ~110 characters of (namespace, key)
    fit about three times as many to a page, so page splits (three pages written each) are
    rarer; with the rowid table and the expiry index this took about 25 us off an issuance
    (measured, 5 issuances per commit). The length prefix keeps ("a", "bc") and ("ab", "c")
    apart; SHA-256 collisions are not a practical concern.
    """
    return hashlib.sha256(f"{len(namespace)}:{namespace}{key}".encode()).digest()


def create_or_upgrade(conn: sqlite3.Connection) -> None:
    """Create the schema, or upgrade an older one, inside the caller's write transaction.

    Raises:
        ConfigError: the file was written by a newer release.
    """
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_version (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            version INTEGER NOT NULL
        )"""
    )
    row = conn.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    if row is not None and row[0] > SCHEMA_VERSION:
        raise ConfigError(
            f"sqlite store: database schema version {row[0]} is newer than this "
            f"release supports ({SCHEMA_VERSION}); upgrade Cirrus"
        )
    if row is not None and row[0] == 1:
        for statement in MIGRATE_1_TO_2:
            conn.execute(statement)
    if row is not None and row[0] in (1, 2):
        conn.create_function("cirrus_claim_digest", 2, claim_digest, deterministic=True)
        for statement in MIGRATE_2_TO_3:
            conn.execute(statement)
    if row is not None and row[0] in (1, 2, 3):
        from shared.store import sqlite_usage  # the backfill needs the metering code, only here

        for statement in MIGRATE_3_TO_4:
            conn.execute(statement)
        sqlite_usage.backfill(conn)
        conn.execute("UPDATE schema_version SET version = 4 WHERE id = 1")
    if row is not None and row[0] in (1, 2, 3, 4):
        for statement in MIGRATE_4_TO_5:
            conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = 5 WHERE id = 1")
    for statement in _SCHEMA:
        conn.execute(statement)
    if row is None:
        conn.execute(
            "INSERT INTO schema_version (id, version) VALUES (1, ?)", (SCHEMA_VERSION,)
        )
