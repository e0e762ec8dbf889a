"""The CLI's one error boundary: what a mistake looks like to the person typing.

A mistake (a wrong argument, a missing or unreadable file, a folder that is not an
authority, a CA that does not answer) is one line on stderr, `cirrus COMMAND: what is
wrong`, and a non-zero exit status; never a traceback. Commands raise; only `main`
prints. What counts as a mistake rather than a bug:

- `CLIError`: raised by the commands themselves with a message written for the user;
- the library's own error roots (`CAError`, `ConfigError`, `BackendError`), whose
  messages are written to be shown;
- `OSError` (files, sockets, TLS: `ssl.SSLError` is one), described by its file name
  and `strerror`.

Anything else (`ValueError`, `TypeError`, ...) is a bug in Cirrus and keeps its
traceback, so it gets reported instead of hidden behind a tidy line.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from shared.errors import BackendError, CAError, ConfigError


class CLIError(Exception):
    """A user mistake or an unmet precondition; the message is shown as is."""


#: Exit status for a mistake (argparse's own usage errors exit 2, as everywhere).
MISTAKE = 1
INTERRUPTED = 130


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, without internals."""
    if isinstance(exc, OSError) and not isinstance(exc, CLIError):
        reason = exc.strerror or (str(exc.args[-1]) if exc.args else type(exc).__name__)
        return f"{exc.filename}: {reason}" if exc.filename else str(reason)
    if isinstance(exc, CAError):
        return exc.detail
    text = " ".join(str(exc).split())  # one line, whatever the message held
    return text or type(exc).__name__


#: What the boundary turns into one line; everything else propagates.
MISTAKES: tuple[type[BaseException], ...] = (CLIError, CAError, ConfigError, BackendError, OSError)


def report(prog: str, exc: BaseException) -> int:
    """Print `prog: message` on stderr; return the exit status."""
    print(f"{prog}: {describe(exc)}", file=sys.stderr)
    return MISTAKE


class Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line and the command's name kept for messages.

    argparse prints the whole usage block before its error; a newcomer then has to find
    the one line that matters. Here the error is that line, with a pointer to `--help`.
    Subparsers inherit the class (`add_subparsers` uses `type(self)`), so every level of
    `cirrus a b c` behaves the same.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The innermost command's name (`cirrus crl publish`) for messages: a subparser's
        # defaults are copied over its parent's, so the deepest level reached wins.
        self.set_defaults(cli_prog=self.prog)

    def error(self, message: str) -> NoReturn:
        """One line, then exit 2 (argparse's status for a usage error)."""
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")
