"""The CLI's error boundary and its atomic output files, in process."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest

import shared.cli.client as client
from shared.cli import at_rest, files, main
from shared.cli.errors import CLIError
from shared.cli.folder import load_settings
from shared.errors import BackendError


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only mistakes become one line; a ValueError from Cirrus itself must still be reported as a bug."""

    def broken(args: argparse.Namespace) -> int:
        raise ValueError("a bug")

    monkeypatch.setattr(client, "cmd_health", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["health", "--ca-url", "https://127.0.0.1:1"])


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (FileNotFoundError(2, "No such file or directory", "x.pem"), "cirrus health: x.pem: No such file or directory"),
        (BackendError("sqlite store: open failed"), "cirrus health: sqlite store: open failed"),
        (CLIError("two\nlines"), "cirrus health: two lines"),
    ],
)
def test_mistakes_become_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], exc: Exception, line: str
) -> None:
    def failing(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(client, "cmd_health", failing)
    assert main(["health", "--ca-url", "https://127.0.0.1:1"]) == 1
    assert capsys.readouterr().err == line + "\n"


def test_outputs_are_written_whole_and_keys_private(tmp_path: Path) -> None:
    crt, key = tmp_path / "a.crt", tmp_path / "a.key"
    crt.write_text("old certificate")
    old_umask = os.umask(0o022)
    try:
        with files.outputs((crt, False), (key, True)) as (crt_out, key_out):
            temps = sorted(p for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
            assert len(temps) == 2  # made before the CA is asked
            assert all(stat.S_IMODE(p.stat().st_mode) in (0o600, 0o644) for p in temps)
            assert crt.read_text() == "old certificate"  # untouched until commit
            key_out.commit(b"KEY")
            crt_out.commit(b"CERT")
    finally:
        os.umask(old_umask)
    assert key.read_bytes() == b"KEY" and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert crt.read_bytes() == b"CERT" and stat.S_IMODE(crt.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.crt", "a.key"]


def test_a_failure_after_preparing_leaves_the_old_files(tmp_path: Path) -> None:
    crt = tmp_path / "a.crt"
    crt.write_text("old certificate")
    with pytest.raises(RuntimeError), files.outputs((crt, False), (tmp_path / "a.key", True)):
        raise RuntimeError("the CA refused")
    assert crt.read_text() == "old certificate"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.crt"]


def test_init_makes_the_store_folder_private(authority_dir: Path) -> None:
    assert stat.S_IMODE((authority_dir / "db").stat().st_mode) == 0o700
    assert stat.S_IMODE((authority_dir / "secrets").stat().st_mode) == 0o700
    at_rest.check(load_settings(authority_dir))  # a fresh authority passes


@pytest.mark.parametrize(("relative", "mode"), [("db", 0o750), ("secrets", 0o701), ("secrets/provisioner.jwk", 0o640)])
def test_at_rest_check_refuses_loose_modes(authority_dir: Path, relative: str, mode: int) -> None:
    path = authority_dir / relative
    path.chmod(mode)
    with pytest.raises(CLIError, match=f"{path.resolve()} holds secrets but other users can open it"):
        at_rest.check(load_settings(authority_dir))


def test_every_option_has_help() -> None:
    """Issue 12 item 10: `--san`, `--key`, `--provisioner` had none; no option may lack it."""
    from shared.cli import build_parser

    missing: list[str] = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            elif action.help is None:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(build_parser(), "cirrus")
    assert missing == []
