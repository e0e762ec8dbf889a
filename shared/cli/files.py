"""The local files client commands read and write: certificates, keys, output paths.

Outputs are checked, and their temporary files created, *before* the CA is asked: a
certificate that is issued and recorded but cannot be written is lost to the user (the
endpoint exists, nothing on disk shows for it). Creating the temporary file in the
target's own folder is the check that cannot lie (it fails exactly as the final write
would: missing folder, no permission, read-only file system, full disk), which
`os.access` is not (it answers for the real uid, and root passes it everywhere).
Once the CA has answered, the content is written to the temporary file and renamed
over the target (`os.replace` in one folder is atomic: a reader sees the old file or
the new one, never half of one). A key's temporary file is 0600 from creation
(`tempfile.mkstemp`), so the key is never readable by others, even for a moment.

Inputs are read with messages that name the file and say what is wrong with it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from shared.cli.errors import CLIError

PUBLIC_MODE = 0o644


class Output:
    """One file to write once the CA answers: a temporary file beside it until then."""

    def __init__(self, path: Path, *, private: bool) -> None:
        self.path = path
        if path.is_dir():
            raise CLIError(f"cannot write {path}: it is a folder")
        folder = path.parent
        if not folder.is_dir():
            raise CLIError(f"cannot write {path}: folder {folder} does not exist")
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")  # 0600
        except OSError as exc:
            raise CLIError(f"cannot write {path}: {exc.strerror}") from exc
        self._fd: int | None = fd
        self._tmp = Path(tmp)
        if not private:
            mask = os.umask(0)  # read the umask (the CLI is single-threaded)
            os.umask(mask)
            os.fchmod(fd, PUBLIC_MODE & ~mask)

    def commit(self, data: bytes) -> None:
        """Write `data` and rename it over the target."""
        assert self._fd is not None, "committed twice"
        fd, self._fd = self._fd, None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self._tmp.unlink(missing_ok=True)
            raise CLIError(f"cannot write {self.path}: {exc.strerror}") from exc

    def discard(self) -> None:
        """Remove the temporary file (the target is left as it was)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def outputs(*targets: tuple[Path, bool]) -> Iterator[list[Output]]:
    """Prepare every `(path, private)` output up front; discard the uncommitted ones on exit.

    Raises:
        CLIError: an output cannot be written, or two outputs are one file.
    """
    resolved = [p.resolve() for p, _ in targets]
    if len(set(resolved)) != len(resolved):
        raise CLIError("the output files must be different files")
    prepared: list[Output] = []
    try:
        for path, private in targets:
            prepared.append(Output(path, private=private))
        yield prepared
    finally:
        for out in prepared:
            out.discard()


def read(path: Path, what: str) -> bytes:
    """A file's bytes, or a `CLIError` naming it."""
    try:
        return path.read_bytes()
    except IsADirectoryError as exc:
        raise CLIError(f"cannot read {what} {path}: it is a folder") from exc
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path}: {exc.strerror}") from exc


def load_chain(path: Path) -> list[x509.Certificate]:
    """The PEM certificates in `path`, leaf first."""
    data = read(path, "certificate")
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CLIError(f"{path} holds no PEM certificate") from exc
    return chain


def load_key(path: Path) -> PrivateKeyTypes:
    """The unencrypted PEM private key in `path`."""
    data = read(path, "private key")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # encrypted, and no password given
        raise CLIError(f"{path} is an encrypted private key; give an unencrypted one") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CLIError(f"{path} holds no PEM private key") from exc


def load_pair(cert_path: Path, key_path: Path) -> tuple[list[x509.Certificate], PrivateKeyTypes]:
    """A certificate chain and the private key of its leaf, checked to belong together."""
    chain = load_chain(cert_path)
    key = load_key(key_path)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        raise CLIError(f"the key {key_path} does not match the certificate {cert_path}")
    return chain, key
