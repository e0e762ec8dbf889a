"""Blobs in a Cloud Storage bucket: where the serverless shape publishes CRLs.

Every conditional write passes `if_generation_match`, so Cloud Storage itself
arbitrates between publishers running on different instances: the loser gets
HTTP 412, which we surface as `PreconditionFailed`. Failures that another
attempt may cure (5xx, 429, connection errors) become
`BackendError(transient=True)` for the retry layer; anything else is a
permanent `BackendError`. Error messages never carry response bodies, which
may echo bucket internals.

`google.cloud.storage` is imported in the constructor only, so a function that
never publishes does not pay its ~200 ms import.

Every store of one process shares one `storage.Client` per endpoint and project
(`_shared_client`): an OCSP responder opens the bucket twice (its answers and the
bucket copy of the rotation record), and a second client costs a second credential
discovery (on Google Cloud: Application Default Credentials asking the metadata
server), a second access token and a second connection pool, all on the cold
start's first request. The key includes the process id, so a forked worker never
uses its parent's pooled connections.
"""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import quote

from shared.blobs.base import Blob, PreconditionFailed
from shared.errors import BackendError

_PUBLIC_HOST = "https://storage.googleapis.com"
_clients: dict[tuple[int, str | None, str | None], Any] = {}
_clients_lock = threading.Lock()


def _shared_client(endpoint: str | None, project: str | None) -> Any:
    """This process's `storage.Client` for `endpoint` (an emulator) or Cloud Storage, made on first use."""
    key = (os.getpid(), endpoint, project)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            from google.cloud.storage import Client

            if endpoint is not None:
                from google.auth.credentials import AnonymousCredentials

                client = Client(
                    project=project or "cirrus-emulator",
                    credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                    client_options={"api_endpoint": endpoint},
                )
            else:
                client = Client(project=project)
            _clients[key] = client
    return client


class GCSBlobStore:
    """A `BlobStore` over one bucket (optionally under a name prefix)."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        client: Any | None = None,
        endpoint: str | None = None,
        project: str | None = None,
        public_base_url: str | None = None,
        timeout: float = 10.0,
        retry_deadline: float | None = 10.0,
    ) -> None:
        """Bind to `bucket`.

        Args:
            bucket: the bucket name.
            prefix: prepended to every object name (no leading slash).
            client: a ready `google.cloud.storage.Client` (tests, shared pools).
            endpoint: an emulator URL such as fake-gcs-server's; uses anonymous
                credentials, because emulators accept no real ones.
            project: the project for the client (defaults from the environment
                via Application Default Credentials).
            public_base_url: overrides the public URL base
                (default `https://storage.googleapis.com/<bucket>`).
            timeout: seconds for one HTTP request.
            retry_deadline: how long the SDK may retry transient failures of
                one call before we report them; None disables SDK retries and
                leaves them all to the caller's retry layer.
        """
        import requests.exceptions
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions
        from google.cloud.storage.retry import DEFAULT_RETRY

        if client is None:
            client = _shared_client(endpoint, project)
        self._client = client
        self._bucket = client.bucket(bucket)
        self._bucket_name = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._timeout = timeout
        self._retry = None if retry_deadline is None else DEFAULT_RETRY.with_timeout(retry_deadline)
        self._exc = api_exceptions
        self._transient: tuple[type[BaseException], ...] = (
            api_exceptions.TooManyRequests,
            api_exceptions.InternalServerError,
            api_exceptions.BadGateway,
            api_exceptions.ServiceUnavailable,
            api_exceptions.GatewayTimeout,
            api_exceptions.RetryError,
            auth_exceptions.TransportError,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            ConnectionError,
            TimeoutError,
        )
        base = public_base_url or (
            f"{endpoint.rstrip('/')}/{bucket}" if endpoint else f"{_PUBLIC_HOST}/{bucket}"
        )
        self._public_base = base.rstrip("/")

    def _key(self, name: str) -> str:
        if not name or name.startswith("/"):
            raise ValueError(f"invalid blob name {name!r}")
        return self._prefix + name

    def _backend_error(self, action: str, exc: BaseException) -> BackendError:
        """Classify an SDK exception; the message names only the status class."""
        transient = isinstance(exc, self._transient)
        kind = type(exc).__name__
        return BackendError(f"cloud storage {action} failed ({kind})", transient=transient)

    def read(self, name: str) -> Blob | None:
        """Return the object or None if absent (one request: data + metadata)."""
        blob = self._bucket.blob(self._key(name))
        try:
            data = blob.download_as_bytes(timeout=self._timeout, retry=self._retry)
        except self._exc.NotFound:
            return None
        except Exception as exc:
            raise self._backend_error("read", exc) from exc
        return Blob(
            name=name,
            data=bytes(data),
            generation=int(blob.generation),
            content_type=str(blob.content_type or "application/octet-stream"),
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
        """Upload `data`, conditionally on the object's generation.

        A retried upload whose first attempt landed but whose answer was lost
        comes back as 412 on the retry; callers treat `PreconditionFailed` as
        "someone newer wrote", re-read and decide, which is also right here.
        """
        blob = self._bucket.blob(self._key(name))
        if cache_control is not None:
            blob.cache_control = cache_control
        try:
            blob.upload_from_string(
                data,
                content_type=content_type,
                if_generation_match=if_generation_match,
                timeout=self._timeout,
                retry=self._retry,
            )
        except self._exc.PreconditionFailed as exc:
            raise PreconditionFailed(
                f"{name}: generation did not match {if_generation_match}"
            ) from exc
        except Exception as exc:
            raise self._backend_error("write", exc) from exc
        return int(blob.generation)

    def delete(self, name: str, *, if_generation_match: int | None = None) -> bool:
        """Delete the live object, conditionally on its generation (HTTP 412 -> `PreconditionFailed`).

        In a versioned bucket (the module's CRL bucket) the object becomes
        noncurrent, and the bucket's lifecycle rule deletes it later.
        """
        blob = self._bucket.blob(self._key(name))
        try:
            blob.delete(if_generation_match=if_generation_match, timeout=self._timeout, retry=self._retry)
        except self._exc.NotFound:
            return False
        except self._exc.PreconditionFailed as exc:
            raise PreconditionFailed(f"{name}: generation did not match {if_generation_match}") from exc
        except Exception as exc:
            raise self._backend_error("delete", exc) from exc
        return True

    def public_url(self, name: str) -> str:
        """The URL relying parties fetch the object from."""
        return f"{self._public_base}/{quote(self._key(name), safe='/')}"
