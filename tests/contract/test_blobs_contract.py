"""One contract for every BlobStore: local directory and Cloud Storage (fake-gcs-server).

The property that matters (DESIGN.md s.3): a publisher holding a stale
generation can never overwrite newer output; it gets `PreconditionFailed`.
fake-gcs-server enforces `ifGenerationMatch` like Cloud Storage does, so the
same assertions exercise the real SDK path. If `STORAGE_EMULATOR_HOST` is set
(infra/emulators.sh), that server is used; otherwise the suite starts its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.blobs.base import BlobStore, PreconditionFailed
from shared.blobs.local import LocalBlobStore
from shared.blobs.open import open_blobs
from shared.errors import BackendError, ConfigError
from tests.fakes.gcs_server import fake_gcs_server, stopped_port

BUCKET = "cirrus-contract"
CRL = "application/pkix-crl"


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    existing = os.environ.get("STORAGE_EMULATOR_HOST")
    if existing:
        url = existing if "://" in existing else f"http://{existing}"
        _ensure_bucket(url)
        yield url
        return
    with fake_gcs_server() as url:
        _ensure_bucket(url)
        yield url


def _ensure_bucket(url: str) -> None:
    from google.api_core.exceptions import Conflict
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="cirrus-test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": url},
    )
    with contextlib.suppress(Conflict):
        client.create_bucket(BUCKET)


def _gcs(endpoint: str) -> BlobStore:
    from shared.blobs.gcs import GCSBlobStore

    # A fresh prefix per test keeps tests independent on a shared emulator.
    return GCSBlobStore(bucket=BUCKET, prefix=f"t-{uuid.uuid4().hex}", endpoint=endpoint)


@pytest.fixture(params=["local", pytest.param("gcs", marks=pytest.mark.gcs)])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(root=tmp_path / "blobs", fsync=False)
    return _gcs(request.getfixturevalue("gcs_endpoint"))


def test_absent_object_reads_as_none(blob_store: BlobStore) -> None:
    assert blob_store.read("crl/none.crl") is None


def test_create_then_read_round_trips_bytes_and_metadata(blob_store: BlobStore) -> None:
    data = bytes(range(256)) * 4
    gen = blob_store.write("crl/ca-1.crl", data, content_type=CRL, if_generation_match=0)
    assert gen > 0
    blob = blob_store.read("crl/ca-1.crl")
    assert blob is not None
    assert (blob.name, blob.data, blob.generation, blob.content_type) == (
        "crl/ca-1.crl",
        data,
        gen,
        CRL,
    )


def test_empty_object(blob_store: BlobStore) -> None:
    gen = blob_store.write("empty", b"", content_type="text/plain", if_generation_match=0)
    blob = blob_store.read("empty")
    assert blob is not None and blob.data == b"" and blob.generation == gen


def test_create_only_if_absent(blob_store: BlobStore) -> None:
    blob_store.write("x", b"first", content_type=CRL, if_generation_match=0)
    with pytest.raises(PreconditionFailed):
        blob_store.write("x", b"second", content_type=CRL, if_generation_match=0)
    blob = blob_store.read("x")
    assert blob is not None and blob.data == b"first"


def test_nonzero_generation_on_absent_object_fails(blob_store: BlobStore) -> None:
    with pytest.raises(PreconditionFailed):
        blob_store.write("ghost", b"data", content_type=CRL, if_generation_match=12345)
    assert blob_store.read("ghost") is None


def test_overwrite_with_current_generation_moves_generation(blob_store: BlobStore) -> None:
    g1 = blob_store.write("o", b"v1", content_type=CRL, if_generation_match=0)
    other = "application/octet-stream"
    g2 = blob_store.write("o", b"v2", content_type=other, if_generation_match=g1)
    assert g2 != g1
    blob = blob_store.read("o")
    assert blob is not None
    assert (blob.data, blob.generation, blob.content_type) == (
        b"v2",
        g2,
        "application/octet-stream",
    )


def test_second_writer_with_stale_generation_is_refused(blob_store: BlobStore) -> None:
    """Two publishers read generation g; the first wins, the second must fail."""
    g0 = blob_store.write("crl/shared.crl", b"crl #1", content_type=CRL, if_generation_match=0)
    seen_by_a = blob_store.read("crl/shared.crl")
    seen_by_b = blob_store.read("crl/shared.crl")
    assert seen_by_a is not None and seen_by_b is not None
    assert seen_by_a.generation == seen_by_b.generation == g0

    name = "crl/shared.crl"
    g_a = blob_store.write(name, b"crl #2 (A)", content_type=CRL, if_generation_match=g0)
    with pytest.raises(PreconditionFailed):
        blob_store.write(name, b"crl #2 (B)", content_type=CRL, if_generation_match=g0)

    final = blob_store.read("crl/shared.crl")
    assert final is not None
    assert (final.data, final.generation) == (b"crl #2 (A)", g_a)


def test_unconditional_write_overwrites(blob_store: BlobStore) -> None:
    g1 = blob_store.write("u", b"a", content_type=CRL, if_generation_match=None)
    g2 = blob_store.write("u", b"b", content_type=CRL, if_generation_match=None)
    assert g2 != g1
    blob = blob_store.read("u")
    assert blob is not None and blob.data == b"b" and blob.generation == g2


def test_objects_are_independent(blob_store: BlobStore) -> None:
    blob_store.write("a/1", b"one", content_type=CRL, if_generation_match=0)
    blob_store.write("a/2", b"two", content_type=CRL, if_generation_match=0)
    one, two = blob_store.read("a/1"), blob_store.read("a/2")
    assert one is not None and two is not None
    assert (one.data, two.data) == (b"one", b"two")


def test_public_url_names_the_object(blob_store: BlobStore) -> None:
    url = blob_store.public_url("crl/ca-1.crl")
    assert url.endswith("/crl/ca-1.crl")


def _increment(blob_store: BlobStore, name: str, times: int) -> int:
    """Read-modify-write a counter, retrying on lost races; return conflicts seen."""
    conflicts = 0
    for _ in range(times):
        while True:
            blob = blob_store.read(name)
            assert blob is not None
            value = int(blob.data)
            try:
                blob_store.write(
                    name,
                    str(value + 1).encode(),
                    content_type="text/plain",
                    if_generation_match=blob.generation,
                )
                break
            except PreconditionFailed:
                conflicts += 1
    return conflicts


def test_concurrent_writers_lose_no_update(blob_store: BlobStore) -> None:
    blob_store.write("counter", b"0", content_type="text/plain", if_generation_match=0)
    workers, times = 4, 15
    threads = [
        threading.Thread(target=_increment, args=(blob_store, "counter", times))
        for _ in range(workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    blob = blob_store.read("counter")
    assert blob is not None and int(blob.data) == workers * times


# --- local backend specifics ----------------------------------------------------------------


def _process_increment(root: str, times: int, out: multiprocessing.Queue[int]) -> None:
    out.put(_increment(LocalBlobStore(root=Path(root), fsync=False), "counter", times))


def test_local_is_safe_across_processes(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    LocalBlobStore(root=root).write("counter", b"0", content_type="t", if_generation_match=0)
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_process_increment, args=(str(root), 25, out)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    blob = LocalBlobStore(root=root).read("counter")
    assert blob is not None and int(blob.data) == 100


def test_local_keeps_raw_bytes_on_disk(tmp_path: Path) -> None:
    store = LocalBlobStore(root=tmp_path)
    store.write("crl/ca.crl", b"\x30\x82DER", content_type=CRL, if_generation_match=0)
    assert (tmp_path / "crl" / "ca.crl").read_bytes() == b"\x30\x82DER"
    assert store.public_url("crl/ca.crl") == (tmp_path / "crl" / "ca.crl").as_uri()
    served = LocalBlobStore(root=tmp_path, public_base_url="https://ca.example/crl/")
    assert served.public_url("ca.crl") == "https://ca.example/crl/ca.crl"


@pytest.mark.parametrize("name", ["", "/etc/passwd", "../x", "a/../../x", "a//b", ".cirrus-meta/x"])
def test_local_rejects_escaping_names(tmp_path: Path, name: str) -> None:
    store = LocalBlobStore(root=tmp_path / "root")
    with pytest.raises(ValueError):
        store.write(name, b"x", content_type="t", if_generation_match=None)
    assert not (tmp_path / "x").exists()


def test_local_unwritable_root_is_a_backend_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(BackendError) as info:
        LocalBlobStore(root=blocker / "sub")
    assert not info.value.transient


# --- Cloud Storage specifics ----------------------------------------------------------------


@pytest.mark.gcs
def test_gcs_unreachable_backend_is_transient() -> None:
    from shared.blobs.gcs import GCSBlobStore

    with stopped_port() as url:
        dead = GCSBlobStore(bucket=BUCKET, endpoint=url, timeout=2, retry_deadline=None)
        with pytest.raises(BackendError) as read_info:
            dead.read("x")
        with pytest.raises(BackendError) as write_info:
            dead.write("x", b"1", content_type=CRL, if_generation_match=0)
    assert read_info.value.transient and write_info.value.transient
    assert "127.0.0.1" not in str(write_info.value)


@pytest.mark.gcs
def test_gcs_missing_bucket_is_a_permanent_error(gcs_endpoint: str) -> None:
    from shared.blobs.gcs import GCSBlobStore

    store = GCSBlobStore(bucket="no-such-bucket-" + uuid.uuid4().hex[:8], endpoint=gcs_endpoint)
    with pytest.raises(BackendError) as info:
        store.write("x", b"1", content_type=CRL, if_generation_match=0)
    assert not info.value.transient


@pytest.mark.gcs
def test_gcs_sets_cache_control_and_prefix(gcs_endpoint: str) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from shared.blobs.gcs import GCSBlobStore

    prefix = f"p-{uuid.uuid4().hex}"
    store = GCSBlobStore(bucket=BUCKET, prefix=prefix + "/", endpoint=gcs_endpoint)
    store.write("ca.crl", b"x", content_type=CRL, if_generation_match=0, cache_control="max-age=60")
    raw = (
        storage.Client(
            project="p",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": gcs_endpoint},
        )
        .bucket(BUCKET)
        .get_blob(f"{prefix}/ca.crl")
    )
    assert raw is not None and raw.cache_control == "max-age=60"
    assert store.public_url("ca.crl") == f"{gcs_endpoint}/{BUCKET}/{prefix}/ca.crl"
    prod = GCSBlobStore(bucket="b", prefix="crl", client=raw.client)
    assert prod.public_url("ca 1.crl") == "https://storage.googleapis.com/b/crl/ca%201.crl"


# --- open_blobs -----------------------------------------------------------------------------


def test_open_blobs_file_url(tmp_path: Path) -> None:
    store = open_blobs(f"file:{tmp_path}")
    assert isinstance(store, LocalBlobStore)
    store.write("a", b"1", content_type="t", if_generation_match=0)
    assert (tmp_path / "a").read_bytes() == b"1"
    assert isinstance(open_blobs(f"file://{tmp_path}"), LocalBlobStore)


@pytest.mark.gcs
def test_open_blobs_gs_url(gcs_endpoint: str) -> None:
    from shared.blobs.gcs import GCSBlobStore

    prefix = f"o-{uuid.uuid4().hex}"
    store = open_blobs(f"gs://{BUCKET}/{prefix}", gcs_endpoint=gcs_endpoint)
    assert isinstance(store, GCSBlobStore)
    gen = store.write("a", b"1", content_type="t", if_generation_match=0)
    blob = store.read("a")
    assert blob is not None and blob.generation == gen
    assert store.public_url("a").endswith(f"/{BUCKET}/{prefix}/a")


def _child_client_is_new(endpoint: str, parent_client_id: int, out: multiprocessing.Queue[bool]) -> None:
    from shared.blobs.gcs import GCSBlobStore

    child = GCSBlobStore(bucket=BUCKET, prefix="forked", endpoint=endpoint)
    out.put(id(child._client) != parent_client_id)


@pytest.mark.gcs
def test_gcs_stores_of_one_process_share_one_client(gcs_endpoint: str) -> None:
    """A cold OCSP responder opens the bucket twice; one client means one credential discovery, one
    access token and one connection pool on its first request. A forked worker makes its own."""
    prefix = f"s-{uuid.uuid4().hex}"
    answers = open_blobs(f"gs://{BUCKET}/{prefix}", gcs_endpoint=gcs_endpoint, public_base_url="https://crl.example")
    mirror = open_blobs(f"gs://{BUCKET}/{prefix}/mirror", gcs_endpoint=gcs_endpoint)
    assert answers._client is mirror._client  # type: ignore[attr-defined]
    # ... while each keeps its own prefix and public URL
    answers.write("a", b"1", content_type="t", if_generation_match=0)
    assert mirror.read("a") is None
    assert answers.public_url("a") == f"https://crl.example/{prefix}/a"
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[bool] = ctx.Queue()
    child = ctx.Process(target=_child_client_is_new, args=(gcs_endpoint, id(answers._client), out))  # type: ignore[attr-defined]
    child.start()
    child.join(30)
    assert child.exitcode == 0 and out.get(timeout=5) is True


@pytest.mark.parametrize(
    "url", ["file:relative/dir", "file://host/dir", "gs://", "s3://bucket", "/abs/dir"]
)
def test_open_blobs_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        open_blobs(url)


def test_open_blobs_local_does_not_import_cloud_sdk(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; from shared.blobs.open import open_blobs; "
        f"open_blobs('file:{tmp_path}'); "
        "assert 'google.cloud.storage' not in sys.modules, 'imported storage'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_delete_removes_the_object_once(blob_store: BlobStore) -> None:
    gen = blob_store.write("ocsp-index/ca/seg-1.bin", b"serials", content_type=CRL, if_generation_match=0)
    assert blob_store.delete("ocsp-index/ca/seg-1.bin", if_generation_match=gen) is True
    assert blob_store.read("ocsp-index/ca/seg-1.bin") is None
    assert blob_store.delete("ocsp-index/ca/seg-1.bin") is False  # already gone: not an error
    # the name can be created afresh ("must not exist" holds again)
    blob_store.write("ocsp-index/ca/seg-1.bin", b"again", content_type=CRL, if_generation_match=0)
    assert blob_store.delete("ocsp-index/ca/seg-1.bin") is True


def test_delete_with_a_stale_generation_keeps_newer_output(blob_store: BlobStore) -> None:
    from shared.blobs.gcs import GCSBlobStore

    if isinstance(blob_store, GCSBlobStore):
        # Cloud Storage answers 412; fake-gcs-server deletes whatever ifGenerationMatch says.
        pytest.skip("fake-gcs-server does not enforce ifGenerationMatch on DELETE")
    g1 = blob_store.write("crl/d.crl", b"v1", content_type=CRL, if_generation_match=0)
    g2 = blob_store.write("crl/d.crl", b"v2", content_type=CRL, if_generation_match=g1)
    with pytest.raises(PreconditionFailed):
        blob_store.delete("crl/d.crl", if_generation_match=g1)
    blob = blob_store.read("crl/d.crl")
    assert blob is not None and (blob.data, blob.generation) == (b"v2", g2)
    assert blob_store.delete("crl/absent.crl", if_generation_match=g1) is False


def test_delete_rejects_names_outside_the_store(blob_store: BlobStore) -> None:
    with pytest.raises(ValueError):
        blob_store.delete("/etc/passwd")
