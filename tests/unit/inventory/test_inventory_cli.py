"""`cirrus inventory ...` (issue 15 item 4): managing inventories from the command line.

Runs the CLI in-process on a real authority folder (SQLite store inside it); the mistakes
are also run as a subprocess to see the one line on stderr and no traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.cli import main as cirrus
from shared.clock import SystemClock
from shared.config import Settings
from shared.store.open import open_store

REPO = Path(__file__).resolve().parents[3]


def _events(authority_dir: Path) -> list[dict[str, object]]:
    store = open_store(Settings.load(authority_dir / "config.json").store, clock=SystemClock())
    try:
        return [dict(e.data) for e in store.list_events(limit=1000) if e.type == "dev.cirrus.inventory.changed"]
    finally:
        store.close()


def test_create_import_get_set_delete_with_events(authority_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--dir", str(authority_dir)]
    assert cirrus(["inventory", "create", "hosts", "--kind", "hosts", *d]) == 0
    csv_file = tmp_path / "hosts.csv"
    csv_file.write_text("key,workload,allowedNames[]\nvm-1,billing,vm-1.example billing.example\n\nvm-2,web,\n")
    assert cirrus(["inventory", "import", "hosts", str(csv_file), *d]) == 0
    capsys.readouterr()
    assert cirrus(["inventory", "get", "hosts", "vm-1", "--json", *d]) == 0
    assert json.loads(capsys.readouterr().out) == {"workload": "billing",
                                                   "allowedNames": ["vm-1.example", "billing.example"]}
    json_file = tmp_path / "more.json"
    json_file.write_text(json.dumps([{"key": "vm-3", "workload": "db", "tier": 2}]))
    assert cirrus(["inventory", "import", "hosts", str(json_file), *d]) == 0
    assert cirrus(["inventory", "set", "hosts", "vm-2", '{"workload": "web", "zone": "b"}', *d]) == 0
    capsys.readouterr()
    assert cirrus(["inventory", "get", "hosts", "--json", *d]) == 0
    listed = json.loads(capsys.readouterr().out)["entries"]
    assert [e["key"] for e in listed] == ["vm-1", "vm-2", "vm-3"]
    assert listed[1]["entry"] == {"workload": "web", "zone": "b"} and listed[2]["entry"]["tier"] == 2
    assert cirrus(["inventory", "get", "hosts", "--after", "vm-1", "--limit", "1", "--json", *d]) == 0
    assert [e["key"] for e in json.loads(capsys.readouterr().out)["entries"]] == ["vm-2"]
    assert cirrus(["inventory", "list", "--json", *d]) == 0
    assert [(i["name"], i["kind"]) for i in json.loads(capsys.readouterr().out)] == [("hosts", "hosts")]
    assert cirrus(["inventory", "delete", "hosts", "vm-3", *d]) == 0
    assert cirrus(["inventory", "delete", "hosts", *d]) == 0
    capsys.readouterr()
    assert cirrus(["inventory", "list", "--json", *d]) == 0
    assert json.loads(capsys.readouterr().out) == []
    events = _events(authority_dir)
    assert [(e["action"], e["count"]) for e in events] == [
        ("created", 0), ("imported", 2), ("imported", 1), ("set", 1), ("entryDeleted", 1), ("deleted", 0)]
    assert events[1]["keys"] == ["vm-1", "vm-2"] and all(e["actor"] == "cli" and e["inventory"] == "hosts"
                                                         for e in events)
    assert "billing" not in json.dumps(events)  # entry contents never go into events


def test_an_import_with_bad_rows_imports_nothing_and_names_each(authority_dir: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--dir", str(authority_dir)]
    assert cirrus(["inventory", "create", "people", "--kind", "people", *d]) == 0
    bad = tmp_path / "people.csv"
    bad.write_text("key,uid\nalice@example.com,alice\n,nobody\nbob@example.com,bob\nalice@example.com,again\n"
                   "carol@example.com,carol,extra\n" + "x" * 300 + ",long\n")
    capsys.readouterr()
    assert cirrus(["inventory", "import", "people", str(bad), *d]) == 1
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[2] for line in err[:-1]] == ["line 3", "line 5", "line 6", "line 7"]
    assert "duplicate key 'alice@example.com' (first at line 2)" in err[1]
    assert "3 fields where the header has 2" in err[2] and "longer than 256" in err[3]
    assert err[-1].endswith("4 bad row(s); nothing imported")
    assert cirrus(["inventory", "get", "people", "--json", *d]) == 0
    assert json.loads(capsys.readouterr().out) == {"entries": []}  # the good rows were not imported either
    bad_json = tmp_path / "people.json"
    bad_json.write_text('[\n  {"key": "a@example.com", "uid": "a"},\n  "not an object",\n  {"uid": "no key"}\n]\n')
    assert cirrus(["inventory", "import", "people", str(bad_json), *d]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "line 3 (item 1): the item must be a JSON object" in err[0]
    assert "line 4 (item 2): the item has no string 'key'" in err[1]
    assert [e["action"] for e in _events(authority_dir)] == ["created"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["inventory", "import", "hosts", "/nonexistent/hosts.csv"], "file /nonexistent/hosts.csv does not exist"),
        (["inventory", "get", "ghost"], "no inventory 'ghost'"),
        (["inventory", "set", "hosts", "k", "{not json"], "the entry is not valid JSON"),
        (["inventory", "set", "hosts", "k", "[1]"], "the entry must be a JSON object"),
        (["inventory", "set", "ghost", "k", "{}"], "no inventory 'ghost'"),
        (["inventory", "create", "hosts", "--kind", "hosts"], "inventory 'hosts' already exists"),
        (["inventory", "create", "Hosts!", "--kind", "hosts"], "inventory name must be"),
        (["inventory", "delete", "hosts", "missing"], "no entry 'missing' in inventory 'hosts'"),
        (["inventory", "get", "hosts", "--limit", "0"], "must be a number from 1 to 1000"),
        (["inventory", "create", "x", "--kind", "cars"], "invalid choice: 'cars'"),
    ],
)
def test_mistakes_are_one_line_without_traceback(authority_dir: Path, argv: list[str], message: str) -> None:
    assert cirrus(["inventory", "create", "hosts", "--kind", "hosts", "--dir", str(authority_dir)]) == 0
    run = subprocess.run(
        [sys.executable, "-m", "shared.cli", *argv, "--dir", str(authority_dir)],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
    )
    assert run.returncode != 0
    assert message in run.stderr and "Traceback" not in run.stderr
    assert len([line for line in run.stderr.splitlines() if line.strip() and not line.startswith("usage:")]) == 1
