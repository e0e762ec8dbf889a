"""Secrets at rest: refuse to start when another local user could read them.

An authority folder made by `cirrus init` keeps secrets in two places: `secrets/`
(softkms keys, their password, the provisioner's JWK) and the SQLite store's folder
(`db/`: EAB HMAC keys, the ACME nonce key, every record). Both are created 0700 with
0600 files. A looser mode (a copy made with a umask of 022, a `chmod -R`, a store
file from an older release kept in a 0755 folder) would let any local user read the
keys and, with an EAB key, register ACME accounts on a `requireEAB` provisioner; so
`cirrus up` checks at start and refuses, with one line naming the path and the fix,
rather than silently changing modes of folders the operator chose (OpenSSH refuses a
readable private key for the same reason). Files the SQLite store creates itself it
keeps 0600 on open (`shared.store.sqlite_files`).

Checked: every folder that holds a secret, and each secret file in it. Any group or
other permission bit counts as loose.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from shared.cli.errors import CLIError
from shared.config import Settings

LOOSE_BITS = 0o077


def secret_paths(settings: Settings) -> list[tuple[Path, bool]]:
    """`(path, is_folder)` for every secret of a local authority, folders first."""
    files: list[Path] = []
    if settings.password_file is not None:
        files.append(settings.password_file)
    for uri in (settings.key, settings.ocsp.responder_key):
        if uri.startswith("softkms:"):
            from shared.keys.softkms import key_path

            files.append(key_path(uri))
    files.append(settings.base_dir / "secrets" / "provisioner.jwk")
    if settings.store.startswith("sqlite:"):
        db = Path(settings.store[len("sqlite:") :].split("?", 1)[0])
        files.extend(Path(f"{db}{suffix}") for suffix in ("", "-wal", "-shm"))
    folders = list(dict.fromkeys(f.parent for f in files))
    return [(d, True) for d in folders] + [(f, False) for f in files]


def check(settings: Settings) -> None:
    """Raise `CLIError` for the first secret another user could read.

    Paths that do not exist are skipped (a store not yet created, no password file).
    """
    for path, folder in secret_paths(settings):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(st.st_mode)
        if not mode & LOOSE_BITS:
            continue
        want = 0o700 if folder else 0o600
        what = "folder" if folder else "file"
        if st.st_uid == os.geteuid():
            fix = f"run: chmod {want:o} {path}"
        else:
            fix = f"keep it in a folder only this user can open (mode {want:o})"
        raise CLIError(f"{what} {path} holds secrets but other users can open it (mode {mode:04o}); {fix}")
