"""Reading an inventory import: CSV with a header row, or JSON (an object of entries, or an array).

An import is all or nothing: every row is checked first and, if any is bad, nothing is
written and `ImportRejected` lists every bad row with where it is (a CSV line number, a JSON
array item's line and index, or a JSON object's key) and why. The standard library's `csv`
and `json` do the parsing; what is written here is only the mapping to entries and the row
checks, which no library knows.

CSV: the header must name a `key` column; every other non-empty cell becomes a string field
of the entry, and a column whose header ends in `[]` (e.g. `allowedNames[]`) is split on
whitespace into a list. JSON: `{"KEY": {...}, ...}`, or `[{"key": "KEY", ...}, ...]` whose
items lose their `key` member.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from shared.inventory.base import MAX_IMPORT_ENTRIES, InventoryError, check_key, entry_text
from shared.strict_json import StrictJSONError, loads_strict

MAX_IMPORT_BYTES = 16 * 1024 * 1024
_MAX_REPORTED = 1000


class ImportRejected(ValueError):
    """An import with bad rows; `problems` names each one ("line 3: ...")."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{len(problems)} bad row(s); nothing imported")


def parse_import(data: bytes, *, fmt: str | None = None) -> dict[str, dict[str, Any]]:
    """The entries of an import file, keyed; `fmt` is "csv" or "json" (None: guessed from the text).

    Raises:
        ImportRejected: any bad row, or a file that is not the format at all.
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise ImportRejected([f"file: larger than {MAX_IMPORT_BYTES} bytes"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRejected([f"line {line}: not UTF-8 text"]) from None
    if fmt is None:
        fmt = "json" if text.lstrip()[:1] in ("{", "[") else "csv"
    rows = _json_rows(text) if fmt == "json" else _csv_rows(text)
    entries: dict[str, dict[str, Any]] = {}
    seen: dict[str, str] = {}
    problems: list[str] = []
    for where, key, entry, problem in rows:
        if problem is None:
            try:
                check_key(key)
                entry_text(entry)
            except InventoryError as exc:
                problem = str(exc)
        if problem is None and key in seen:
            problem = f"duplicate key {key!r} (first at {seen[key]})"
        if problem is not None:
            problems.append(f"{where}: {problem}")
            if len(problems) >= _MAX_REPORTED:
                problems.append("... (stopped after this many problems)")
                break
            continue
        seen[key] = where
        entries[key] = entry
    if not problems and len(entries) > MAX_IMPORT_ENTRIES:
        problems.append(f"file: more than {MAX_IMPORT_ENTRIES} entries in one import")
    if problems:
        raise ImportRejected(problems)
    return entries


Row = tuple[str, str, dict[str, Any], str | None]  # where, key, entry, problem


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        yield ("line 1", "", {}, f"not CSV: {exc}")
        return
    if header is None:
        return
    names = [h.strip() for h in header]
    if "key" not in names:
        yield ("line 1", "", {}, "the header row has no 'key' column")
        return
    if any(not n for n in names) or len(set(names)) != len(names):
        yield ("line 1", "", {}, "the header row has an empty or repeated column name")
        return
    key_at = names.index("key")
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield (f"line {reader.line_num}", "", {}, f"not CSV: {exc}")
            return
        where = f"line {reader.line_num}"
        if not cells or cells == [""]:
            continue  # a blank line
        if len(cells) != len(names):
            yield (where, "", {}, f"{len(cells)} fields where the header has {len(names)}")
            continue
        entry: dict[str, Any] = {}
        for name, cell in zip(names, cells, strict=True):
            if name == "key" or cell == "":
                continue
            if name.endswith("[]"):
                entry[name[:-2]] = cell.split()
            else:
                entry[name] = cell
        yield (where, cells[key_at], entry, None)


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _json_rows(text: str) -> Iterator[Row]:
    try:
        value = loads_strict(text.encode("utf-8"))
    except StrictJSONError as exc:
        yield ("file", "", {}, f"not acceptable JSON: {exc}")
        return
    except json.JSONDecodeError as exc:
        yield (f"line {exc.lineno}", "", {}, f"not JSON: {exc.msg}")
        return
    if isinstance(value, dict):
        for key, entry in value.items():
            where = f"entry {key!r}"[:300]
            if not isinstance(entry, dict):
                yield (where, key, {}, "the entry must be a JSON object")
            else:
                yield (where, key, entry, None)
        return
    if not isinstance(value, list):
        yield ("file", "", {}, "JSON import must be an object of entries or an array of objects")
        return
    starts = _item_lines(text)
    for i, item in enumerate(value):
        where = f"line {starts[i]} (item {i})" if i < len(starts) else f"item {i}"
        if not isinstance(item, dict):
            yield (where, "", {}, "the item must be a JSON object")
            continue
        key = item.get("key")
        if not isinstance(key, str):
            yield (where, "", {}, "the item has no string 'key'")
            continue
        yield (where, key, {k: v for k, v in item.items() if k != "key"}, None)


def _item_lines(text: str) -> list[int]:
    """The line on which each top-level array item starts (the text is known to be valid JSON)."""
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    out: list[int] = []
    end = len(text)
    while pos < end:
        while pos < end and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= end or text[pos] == "]":
            break
        out.append(_line(text, pos))
        _, pos = decoder.raw_decode(text, pos)
    return out
