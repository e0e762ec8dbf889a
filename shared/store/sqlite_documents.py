"""The SQLite store's documents (ACME accounts, orders, nonces ...): JSON rows with a version for compare-and-set.

Split from `shared.store.sqlite` by concern. `find_documents` uses a partial expression
index per searched (collection, field), `json_extract(data, '$."field"')` over that
collection's rows, created on the first search and from then on maintained by SQLite in
every process; a write pays only for the indexes of its own collection that someone
searches (ACME: one), not one row per string field.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from shared.clock import Clock
from shared.errors import TokenAlreadyUsed
from shared.model import TokenClaim
from shared.store import codec, sqlite_rows
from shared.store.sqlite_connections import SQLiteConnections

# Create-if-absent at version 1, and compare-and-set on the version (with or without a token claim).
_DOCUMENT_INSERT = "INSERT OR IGNORE INTO documents (collection, id, data, version, expires_at) VALUES (?, ?, ?, 1, ?)"
_DOCUMENT_UPDATE = (
    "UPDATE documents SET data = ?, version = version + 1 WHERE collection = ? AND id = ? AND version = ?"
)


def _sql_text(value: str) -> str:
    """A SQL string literal (for DDL and partial-index predicates, which cannot bind values)."""
    return "'" + value.replace("'", "''") + "'"


def _document_index(collection: str, field: str) -> tuple[str, str, str] | None:
    """`(index name, indexed expression, partial-index predicate)` for one searched field.

    The expression must be spelled identically in the index and in the query for SQLite to
    use the index, so both come from here. None when the field cannot be written as a
    quoted JSON path label (it contains a double quote) or either name holds a NUL.
    """
    if '"' in field or "\x00" in field or "\x00" in collection:
        return None
    digest = hashlib.sha256(f"{collection}\x00{field}".encode()).hexdigest()[:24]
    path = '$."' + field + '"'
    expr = f"json_extract(data, {_sql_text(path)})"
    return f"documents_by_field_{digest}", expr, f"collection = {_sql_text(collection)}"


class SQLiteDocuments(SQLiteConnections):
    """Document create / compare-and-set / find / expiry sweep, and the token-claiming writes."""

    _clock: Clock
    # find_documents SQL per (collection, field) whose expression index is known to exist.
    _find_sql: dict[tuple[str, str], str]

    def create_document(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Create a document at version 1 if absent."""
        text = codec.dump_json(data, "document data")
        expires_us = codec.to_epoch_us(expires_at, "expires_at") if expires_at is not None else None
        with self._write("create document") as conn:
            return conn.execute(_DOCUMENT_INSERT, (collection, doc_id, text, expires_us)).rowcount == 1

    def get_document(self, collection: str, doc_id: str) -> tuple[dict[str, Any], int] | None:
        """Return `(data, version)` or None."""
        with self._read("get document") as conn:
            row = conn.execute(
                "SELECT data, version FROM documents WHERE collection = ? AND id = ?",
                (collection, doc_id),
            ).fetchone()
        return (codec.load_json_object(row[0]), int(row[1])) if row is not None else None

    def get_documents(self, keys: Sequence[tuple[str, str]]) -> list[tuple[dict[str, Any], int] | None]:
        """`get_document` for each key, in order, in one statement (one snapshot)."""
        if not keys:
            return []
        where = " OR ".join(["(collection = ? AND id = ?)"] * len(keys))
        with self._read("get documents") as conn:
            rows = conn.execute(
                f"SELECT collection, id, data, version FROM documents WHERE {where}",  # noqa: S608 (placeholders only)
                [part for key in keys for part in key],
            ).fetchall()
        found = {(collection, doc_id): (data, version) for collection, doc_id, data, version in rows}
        out: list[tuple[dict[str, Any], int] | None] = []
        for key in keys:
            row = found.get((key[0], key[1]))
            out.append((codec.load_json_object(row[0]), int(row[1])) if row is not None else None)
        return out

    def update_document(
        self, collection: str, doc_id: str, data: dict[str, Any], *, expected_version: int
    ) -> bool:
        """Replace the document if its version is still `expected_version`."""
        text = codec.dump_json(data, "document data")
        with self._write("update document") as conn:
            return conn.execute(_DOCUMENT_UPDATE, (text, collection, doc_id, expected_version)).rowcount == 1

    def find_documents(
        self, collection: str, field: str, value: str, *, limit: int = 100
    ) -> Sequence[tuple[str, dict[str, Any], int]]:
        """Return documents whose top-level string `field` equals `value`, by id."""
        if limit <= 0:
            return []
        sql = self._find_sql.get((collection, field)) or self._find_query(collection, field)
        with self._read("find documents") as conn:
            if sql:
                rows = conn.execute(sql, (value, limit)).fetchall()
            else:  # a field name no JSON path can spell: scan the collection
                rows = conn.execute(
                    "SELECT id, data, version FROM documents WHERE collection = ? ORDER BY id",
                    (collection,),
                ).fetchall()
        out: list[tuple[str, dict[str, Any], int]] = []
        for doc_id, text, version in rows:
            data = codec.load_json_object(text)
            if codec.field_matches(data, field, value):  # the exact predicate of every backend
                out.append((doc_id, data, int(version)))
                if len(out) == limit:
                    break
        return out

    def _find_query(self, collection: str, field: str) -> str:
        """The indexed `find_documents` query for one (collection, field); creates its index.

        The index is partial (only this collection's rows) over the field's JSON value, so a
        write pays for it only in the collection it searches, and SQLite keeps it up to date
        in every process. It is made on the first search (once per database, later searches
        in any process find it in the schema); until then no write pays anything. Returns ""
        for a field name a JSON path cannot quote (then the caller scans the collection).
        """
        index = _document_index(collection, field)
        if index is None:
            return ""
        name, expr, where = index
        with self._read("find document index") as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
            ).fetchone()
        if exists is None:
            with self._write("create document index") as conn:
                conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON documents ({expr}, id) WHERE {where}")
        # The type test keeps a JSON object or number whose text equals `value` out of the
        # SQL result, so LIMIT counts only real matches.
        sql = (
            f"SELECT id, data, version FROM documents INDEXED BY {name} "  # noqa: S608
            f"WHERE {where} AND {expr} = ? AND {expr.replace('json_extract', 'json_type')} = 'text' "
            "ORDER BY id LIMIT ?"
        )
        self._find_sql[(collection, field)] = sql
        return sql

    def purge_expired_documents(self, now: dt.datetime | None = None) -> int:
        """Delete documents whose `expires_at` is before `now` (default: the clock)."""
        now_us = codec.to_epoch_us(now if now is not None else self._clock.now(), "now")
        with self._write("purge expired documents") as conn:
            return conn.execute(
                "DELETE FROM documents WHERE expires_at IS NOT NULL AND expires_at < ?",
                (now_us,),
            ).rowcount

    def create_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        claim: TokenClaim,
        expires_at: dt.datetime | None = None,
    ) -> bool:
        """Claim the token and create the document in one transaction (both or neither)."""
        text = codec.dump_json(data, "document data")
        expires_us = codec.to_epoch_us(expires_at, "expires_at") if expires_at is not None else None
        return self._write_claiming(
            "create document claiming",
            claim,
            _DOCUMENT_INSERT,
            (collection, doc_id, text, expires_us),
        )

    def update_document_claiming(
        self,
        collection: str,
        doc_id: str,
        data: dict[str, Any],
        *,
        expected_version: int,
        claim: TokenClaim,
    ) -> bool:
        """Claim the token and compare-and-set the document in one transaction (both or neither)."""
        text = codec.dump_json(data, "document data")
        return self._write_claiming(
            "update document claiming",
            claim,
            _DOCUMENT_UPDATE,
            (text, collection, doc_id, expected_version),
        )

    def _write_claiming(self, what: str, claim: TokenClaim, statement: str, params: tuple[Any, ...]) -> bool:
        """Run a one-row document write and claim the token with it: TokenAlreadyUsed if the token
        is spent (nothing written), False if the write matched no row (token left unspent)."""
        claim_row = sqlite_rows.claim_row(claim)
        with self._write(what) as conn:
            if conn.execute("SELECT 1 FROM used_tokens WHERE digest = ?", claim_row[:1]).fetchone():
                raise TokenAlreadyUsed()
            if conn.execute(statement, params).rowcount != 1:
                return False
            conn.execute(sqlite_rows.CLAIM_INSERT, claim_row)
            return True
