"""Blobs in a local directory: the embedded default for one-process mode.

The object's bytes live at `root/<name>` exactly as published, so the
directory can be served statically or inspected with `openssl crl -in`.
Its generation, content type and cache control live in a sidecar JSON under
`root/.cirrus-meta/`. Several processes (a CLI `crl publish` next to the
server) may write at once, so each compare-and-write runs under an exclusive
`fcntl` lock on a per-object lock file, and readers take a shared lock so they
never pair new bytes with an old generation.

Crash order: the sidecar (new generation) is replaced before the data. A crash
between the two leaves the old bytes under a newer generation, so a writer
holding the old generation still fails its precondition; the safe direction.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from shared.blobs.base import Blob, PreconditionFailed
from shared.errors import BackendError

_META_DIR = ".cirrus-meta"


def _check_name(name: str) -> PurePosixPath:
    """Reject names that could escape the root or collide with our sidecars."""
    path = PurePosixPath(name)
    if (
        not name
        or "\x00" in name
        or "\\" in name
        or path.is_absolute()
        or any(part in ("", ".", "..") for part in name.split("/"))
        or path.parts[0] == _META_DIR
        or path.name.startswith(".tmp-")
    ):
        raise ValueError(f"invalid blob name {name!r}")
    return path


class LocalBlobStore:
    """A `BlobStore` over a directory, safe across processes on one host."""

    def __init__(
        self, *, root: Path, public_base_url: str | None = None, fsync: bool = True
    ) -> None:
        """Use `root` (created if missing).

        Args:
            root: the directory that holds the objects.
            public_base_url: where relying parties fetch objects (the local
                server's `/crl` mount, for instance); a `file:` URL otherwise.
            fsync: flush files to disk before they become visible; tests on
                tmpfs may turn it off.
        """
        self._root = root.resolve()
        self._meta = self._root / _META_DIR
        self._public_base = public_base_url.rstrip("/") if public_base_url else None
        self._fsync = fsync
        try:
            self._meta.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendError(f"cannot create blob directory: {exc}") from exc

    def _paths(self, name: str) -> tuple[Path, Path, Path]:
        rel = _check_name(name)
        data = self._root.joinpath(*rel.parts)
        meta = self._meta.joinpath(*rel.parts[:-1], rel.name + ".json")
        lock = self._meta.joinpath(*rel.parts[:-1], rel.name + ".lock")
        return data, meta, lock

    @contextlib.contextmanager
    def _locked(self, lock: Path, mode: int) -> Iterator[None]:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _read_meta(meta: Path) -> dict[str, Any] | None:
        try:
            loaded: dict[str, Any] = json.loads(meta.read_bytes())
        except FileNotFoundError:
            return None
        return loaded

    def _replace(self, target: Path, data: bytes) -> None:
        """Write `data` to `target` atomically (temp file in the same dir + rename)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self._fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def read(self, name: str) -> Blob | None:
        """Return the object or None if absent."""
        data_path, meta_path, lock = self._paths(name)
        try:
            with self._locked(lock, fcntl.LOCK_SH):
                meta = self._read_meta(meta_path)
                if meta is None:
                    return None
                data = data_path.read_bytes()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot read blob: {exc}") from exc
        return Blob(
            name=name,
            data=data,
            generation=int(meta["generation"]),
            content_type=str(meta["content_type"]),
        )

    def write(
        self,
        name: str,
        data: bytes,
        *,
        content_type: str,
        if_generation_match: int | None,
        cache_control: str | None = None,
    ) -> int:
        """Write `data` if the current generation matches; return the new one."""
        data_path, meta_path, lock = self._paths(name)
        try:
            with self._locked(lock, fcntl.LOCK_EX):
                meta = self._read_meta(meta_path)
                current = int(meta["generation"]) if meta is not None else 0
                if if_generation_match is not None and if_generation_match != current:
                    raise PreconditionFailed(
                        f"{name}: generation is {current}, expected {if_generation_match}"
                    )
                generation = current + 1
                new_meta = {
                    "generation": generation,
                    "content_type": content_type,
                    "cache_control": cache_control,
                }
                self._replace(meta_path, json.dumps(new_meta).encode())
                self._replace(data_path, data)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot write blob: {exc}") from exc
        return generation

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        """Remove the object and its sidecar if the generation matches.

        The per-object lock file stays: removing it while another process waits
        on it would let a third lock a new file of the same name at the same time.
        The data goes before the sidecar, so a crash in between leaves a sidecar
        without bytes, which `read` reports as absent and the next write replaces.
        """
        data_path, meta_path, lock = self._paths(name)
        try:
            with self._locked(lock, fcntl.LOCK_EX):
                meta = self._read_meta(meta_path)
                if meta is None:
                    return False  # as Cloud Storage answers 404 before it checks a precondition
                current = int(meta["generation"])
                if if_generation_match is not None and if_generation_match != current:
                    raise PreconditionFailed(f"{name}: generation is {current}, expected {if_generation_match}")
                with contextlib.suppress(FileNotFoundError):
                    data_path.unlink()
                meta_path.unlink()
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot delete blob: {exc}") from exc
        return True

    def public_url(self, name: str) -> str:
        """The URL relying parties fetch the object from."""
        data_path, _, _ = self._paths(name)
        if self._public_base is not None:
            return f"{self._public_base}/{name}"
        return data_path.as_uri()
