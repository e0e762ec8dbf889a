"""The blob seam: named objects with generation preconditions.

Every overwrite names the generation it expects, so two publishers can never
overwrite each other's newer output (DESIGN.md s.3). Generation 0 in
`if_generation_match` means "only if the object does not exist", as in Cloud
Storage. Deletes take the same precondition (superseded serial-index
segments are deleted by `shared.validation.serial_index`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class PreconditionFailed(Exception):
    """The object's generation was not the one the writer expected."""


@dataclass(frozen=True, slots=True)
class Blob:
    """An object's bytes and metadata."""

    name: str
    data: bytes
    generation: int
    content_type: str


class BlobStore(Protocol):
    """Read and conditionally write named objects."""

    def read(self, name: str) -> Blob | None:
        """Return the object or None if absent."""
        ...

    def write(
        self,
        name: str,
        data: bytes,
        *,
        content_type: str,
        if_generation_match: int | None,
        cache_control: str | None = None,
    ) -> int:
        """Write `data`; return the new generation.

        `if_generation_match=None` writes unconditionally (only for first-time
        setup and tests); otherwise raises `PreconditionFailed` unless the
        current generation equals it (0 = absent).
        Raises `shared.errors.BackendError` for backend failures.
        """
        ...

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        """Delete the object; True if it was there, False if it was already absent.

        With `if_generation_match`, raises `PreconditionFailed` unless the
        current generation equals it, so a clean-up never removes newer output
        (an absent object is False whatever the precondition, as in Cloud Storage).
        Raises `shared.errors.BackendError` for backend failures.
        """
        ...

    def public_url(self, name: str) -> str:
        """The URL relying parties fetch the object from."""
        ...
