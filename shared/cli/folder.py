"""The authority folder (`--dir`) as the commands find it.

`Settings.load` on a folder that is not an authority says "cannot read config
DIR/config.json: No such file or directory"; a newcomer who mistyped `--dir` is better
told which of the two went wrong (no such folder, or a folder `cirrus init` never made)
and what makes one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.cli.errors import CLIError
from shared.config import Settings


def config_path(directory: Path) -> Path:
    """`DIR/config.json`, after checking DIR is an authority folder."""
    if not directory.exists():
        raise CLIError(f"folder {directory} does not exist")
    if not directory.is_dir():
        raise CLIError(f"{directory} is not a folder")
    path = directory / "config.json"
    if not path.is_file():
        raise CLIError(f"{directory} is not an authority folder (no config.json; `cirrus init --dir` makes one)")
    return path


def load_settings(directory: Path) -> Settings:
    """The validated settings of the authority in `directory`.

    Raises:
        CLIError: not an authority folder.
        ConfigError: its config.json is unreadable or invalid.
    """
    return Settings.load(config_path(directory.resolve()))


def load_raw_config(directory: Path) -> dict[str, Any]:
    """`config.json` as parsed JSON, for the client commands (which need only the address)."""
    path = config_path(directory)
    try:
        value = json.loads(path.read_text())
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CLIError(f"{path} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise CLIError(f"{path} is not a JSON object")
    return value
