"""Import parsing (issue 15 item 4, "Bad input"): properties over generated files, derandomized.

A CSV written by the standard library's writer from any set of entries reads back as those
entries; bad rows inserted anywhere make the import fail naming exactly their lines.
"""

from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.inventory.imports import MAX_IMPORT_BYTES, ImportRejected, parse_import

_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)
_KEYS = _TEXT.filter(lambda k: k.strip() == k)
_ENTRIES = st.dictionaries(_KEYS, st.fixed_dictionaries({}, optional={"workload": _TEXT, "zone": _TEXT}),
                           min_size=0, max_size=15)
_SETTINGS = settings(max_examples=150, derandomize=True, database=None, deadline=None)


def _csv(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


@_SETTINGS
@given(_ENTRIES)
def test_a_written_csv_reads_back_as_its_entries(entries: dict[str, dict[str, str]]) -> None:
    rows = [["key", "workload", "zone"]] + [[k, e.get("workload", ""), e.get("zone", "")] for k, e in entries.items()]
    assert parse_import(_csv(rows), fmt="csv") == entries
    assert parse_import(json.dumps(entries).encode()) == entries
    listed = [{"key": k, **e} for k, e in entries.items()]
    assert parse_import(json.dumps(listed).encode()) == entries


@_SETTINGS
@given(_ENTRIES, st.lists(st.tuples(st.integers(min_value=0, max_value=20),
                                    st.sampled_from(["nokey", "short", "long", "control"])), min_size=1, max_size=4))
def test_bad_rows_anywhere_are_all_named_and_nothing_is_returned(
    entries: dict[str, dict[str, str]], bad: list[tuple[int, str]]
) -> None:
    rows: list[list[str]] = [[k, e.get("workload", "")] for k, e in entries.items()]
    marked: list[int] = []
    for position, kind in bad:
        row = {"nokey": ["", "x"], "short": ["only-one-field"], "long": ["k" * 300, "x"],
               "control": ["a\x01b", "x"]}[kind]
        at = min(position, len(rows))
        rows.insert(at, row)
        marked = [m + 1 if m >= at else m for m in marked] + [at]
    data = _csv([["key", "workload"], *rows])
    with pytest.raises(ImportRejected) as caught:
        parse_import(data, fmt="csv")
    named = sorted(int(p.split(":")[0].removeprefix("line ")) for p in caught.value.problems)
    assert named == sorted(m + 2 for m in marked)  # line 1 is the header


def test_whole_file_mistakes() -> None:
    for data, fmt, expected in [
        (b"name,workload\nvm-1,x\n", "csv", "line 1: the header row has no 'key' column"),
        (b"key,key\nvm-1,x\n", "csv", "line 1: the header row has an empty or repeated column name"),
        (b'key,x\n"unterminated\n', "csv", "line 2: not CSV"),
        (b"\xff\xfekey\n", None, "line 1: not UTF-8 text"),
        (b'{"a": {"x": 1}, "a": {"x": 2}}', "json", "file: not acceptable JSON: duplicate member 'a'"),
        (b'{"a": 1}', "json", "entry 'a': the entry must be a JSON object"),
        (b'"text"', "json", "file: JSON import must be an object of entries or an array of objects"),
        (b"[1, ", "json", "line 1: not JSON"),
        (b"x" * (MAX_IMPORT_BYTES + 1), None, "file: larger than"),
    ]:
        with pytest.raises(ImportRejected) as caught:
            parse_import(data, fmt=fmt)
        assert caught.value.problems[0].startswith(expected), (data[:40], caught.value.problems)
    many = _csv([["key"], *([f"k{i}"] for i in range(10_001))])
    with pytest.raises(ImportRejected, match="bad row"):
        parse_import(many, fmt="csv")
