"""The `cirrus` command: one thin dispatcher over per-concern subcommand modules.

Commands raise; `main` is the one place that turns a mistake into one line on stderr
and a non-zero exit (`shared.cli.errors`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from shared.cli.errors import INTERRUPTED, MISTAKES, Parser, report

# Each module exposes `register(subparsers)`; optional ones may be absent.
_MODULES = (
    "shared.cli.init",
    "shared.cli.up",
    "shared.cli.client",
    "shared.cli.endpoints",
    "shared.cli.crl",
    "shared.cli.ocsp",
    "shared.cli.acme",
    "shared.cli.ca",
    "shared.cli.usage",
    "shared.cli.bootstrap",
    "shared.cli.ssh",
    "shared.cli.dashboard",
    "shared.cli.store",
    "shared.cli.template",
    "shared.cli.linked",
    "shared.cli.events",
    "shared.cli.inventory",
)


def build_parser() -> Parser:
    """The full argument parser."""
    parser = Parser(prog="cirrus", description="Cirrus CA: a certificate authority.")
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
    """Entry point of the `cirrus` console script: the CLI's error boundary."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = str(getattr(args, "cli_prog", None) or "cirrus")
    if not getattr(args, "func", None):
        # `cirrus` or `cirrus crl` alone: the help of the level that was reached.
        words = list(sys.argv[1:] if argv is None else argv)
        try:
            parser.parse_args([*words, "--help"])
        except SystemExit:
            pass
        return 2
    try:
        code: int = args.func(args)
    except MISTAKES as exc:
        return report(prog, exc)
    except KeyboardInterrupt:
        return INTERRUPTED
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
