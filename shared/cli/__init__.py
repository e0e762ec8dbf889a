"""The `cirrus` command: one thin dispatcher over per-concern subcommand modules."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes `register(subparsers)`; optional ones may be absent.
_MODULES = (
    "shared.cli.init",
    "shared.cli.up",
    "shared.cli.client",
    "shared.cli.endpoints",
    "shared.cli.crl",
    "shared.cli.ocsp",
    "shared.cli.acme",
    "shared.cli.ssh",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(prog="cirrus", description="Cirrus CA: a certificate authority.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cirrus` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
