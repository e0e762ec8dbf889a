"""Pick a blob backend from a URL in the settings.

`file:/abs/dir` is the embedded default; `gs://bucket[/prefix]` is Cloud
Storage. Backends are imported only when chosen, so the local shape never
loads the Cloud Storage SDK.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from shared.blobs.base import BlobStore
from shared.errors import ConfigError


def open_blobs(
    url: str,
    *,
    public_base_url: str | None = None,
    gcs_endpoint: str | None = None,
) -> BlobStore:
    """Return the `BlobStore` that `url` names.

    Args:
        url: `file:/abs/dir` (also `file:///abs/dir`) or `gs://bucket[/prefix]`.
        public_base_url: where relying parties fetch published objects.
        gcs_endpoint: a Cloud Storage emulator URL (local cloud mode, tests).

    Raises:
        ConfigError: the URL is malformed or names an unknown scheme.
    """
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError(f"blob URL {url!r}: file URLs must name a local path")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ConfigError(f"blob URL {url!r}: the directory must be absolute")
        from shared.blobs.local import LocalBlobStore

        return LocalBlobStore(root=Path(path), public_base_url=public_base_url)
    if parts.scheme == "gs":
        if not parts.netloc or parts.query or parts.fragment:
            raise ConfigError(f"blob URL {url!r}: expected gs://bucket[/prefix]")
        from shared.blobs.gcs import GCSBlobStore

        return GCSBlobStore(
            bucket=parts.netloc,
            prefix=unquote(parts.path).strip("/"),
            endpoint=gcs_endpoint,
            public_base_url=public_base_url,
        )
    raise ConfigError(f"blob URL {url!r}: unknown scheme (use file: or gs:)")
