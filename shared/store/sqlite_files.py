"""The SQLite store's files are private: 0600, whoever's umask created them.

The database holds EAB HMAC keys and the ACME nonce key besides every record, so no
other local user may read it. SQLite creates a new database file with mode 0644
(`SQLITE_DEFAULT_FILE_PERMISSIONS`, less the umask) and gives its `-wal` and `-shm`
files the database file's mode. So the database file is created here first, empty and
0600 (an empty file is a valid empty database), and SQLite's companions follow it;
changing the process umask instead would race with other threads (`cirrus up` opens
stores from several). A file left looser by an older release is narrowed to 0600 on
open: these are the store's own files, and nothing is meant to share them. The folder
is the operator's (see `cirrus init`, which makes `db/` 0700, and `shared.cli.at_rest`,
which refuses to start when it is open to others).
"""

from __future__ import annotations

import contextlib
import os
import stat

FILE_MODE = 0o600
#: The database's companions: SQLite's journal files and the writers' lock file.
SUFFIXES = ("", "-wal", "-shm", ".writelock")


def in_memory(path: str) -> bool:
    """Whether `path` names an in-memory database (no files)."""
    return path == ":memory:" or path.startswith("file::memory:")


def create_private(path: str) -> None:
    """Create the database file 0600 if it is not there yet (a no-op for in-memory ones).

    A missing folder is left for SQLite to report (`unable to open database file`).
    """
    if in_memory(path):
        return
    with contextlib.suppress(FileNotFoundError, FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def narrow(path: str) -> None:
    """Set each existing file of the store that others could open to 0600."""
    if in_memory(path):
        return
    for suffix in SUFFIXES:
        name = path + suffix
        try:
            mode = stat.S_IMODE(os.stat(name).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            with contextlib.suppress(PermissionError):  # not ours: `cirrus up`'s check reports it
                os.chmod(name, FILE_MODE)
