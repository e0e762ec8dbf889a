"""`bench/store_throughput.py --baseline REV` measures REV's store, every module of it.

The bench extracts REV's `shared/` into a temporary tree and runs its measuring part in a
subprocess with PYTHONPATH at that tree. Checked here without timing: the worker's `--worker-where`
mode reports the file of every `shared` module it loaded, and each one (the SQLite store's role
modules and the codec's split modules included) must come from the baseline tree, none from
this checkout.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.store_throughput import ROOT, baseline_tree, run_worker


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def rev() -> str:
    try:
        return _git("rev-parse", "HEAD").strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")


def test_the_baseline_tree_holds_the_revisions_store(rev: str) -> None:
    with baseline_tree(rev) as tree:
        assert tree.resolve() != ROOT.resolve()
        for name in ("sqlite.py", "sqlite_issuance.py", "codec.py", "codec_certificates.py"):
            assert (tree / "shared" / "store" / name).read_text() == _git("show", f"{rev}:shared/store/{name}")
    assert not tree.exists()  # removed afterwards


def test_the_baseline_worker_imports_every_store_module_from_the_baseline_tree(rev: str) -> None:
    with baseline_tree(rev) as tree:
        # A change only the baseline tree has: the worker must see it, not this checkout's file.
        role = tree / "shared" / "store" / "sqlite_issuance.py"
        role.write_text(role.read_text() + "\nBASELINE_MARK = True\n")
        modules = run_worker(tree, "--worker-where")["modules"]
        root = str(tree.resolve())
        assert {"shared.store.sqlite", "shared.store.sqlite_issuance", "shared.store.codec"} <= set(modules)
        outside = {name: f for name, f in modules.items() if not str(Path(f).resolve()).startswith(root + "/")}
        assert outside == {}, outside
        marked = run_worker(tree, "--worker-where", "--worker-mark", "shared.store.sqlite_issuance")
        assert marked["mark"] is True
    # The current rounds run the same way on this checkout.
    current = run_worker(ROOT, "--worker-where")["modules"]
    assert str(Path(current["shared.store.sqlite"]).resolve()) == str((ROOT / "shared/store/sqlite.py").resolve())
