"""softkms specifics: files at rest, passwords, overwrite refusal, the fast path."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.errors import ConfigError
from shared.keys.adapter import as_private_key
from shared.keys.base import KeyType
from shared.keys.softkms import SoftKMS, SoftSigner, key_path

PASSWORD = b"s3cret-password"


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_bytes(PASSWORD + b"\n")
    return path


@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("softkms:path=/etc/ca/root.key", "/etc/ca/root.key"),
        ("softkms:/etc/ca/root.key", "/etc/ca/root.key"),
        ("/etc/ca/root.key", "/etc/ca/root.key"),
        ("softkms:path=/a b/k.pem;foo=bar", "/a b/k.pem"),
    ],
)
def test_key_path_forms(uri: str, path: str) -> None:
    assert key_path(uri) == Path(path)


@pytest.mark.parametrize("uri", ["softkms:path=rel/k", "rel/k", "cloudkms:projects/p", ""])
def test_key_path_rejects(uri: str) -> None:
    with pytest.raises(ConfigError):
        key_path(uri)


def test_key_file_is_encrypted_pkcs8_mode_0600(tmp_path: Path, password_file: Path) -> None:
    path = tmp_path / "keys" / "root.key"
    SoftKMS(password_file=password_file).create_key(f"softkms:path={path}", KeyType.EC_P256)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(pem, password=None)
    # The trailing newline of the password file is not part of the password.
    assert serialization.load_pem_private_key(pem, password=PASSWORD) is not None
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]


def test_wrong_password_is_a_config_error(tmp_path: Path, password_file: Path) -> None:
    uri = f"softkms:path={tmp_path}/k.pem"
    SoftKMS(password_file=password_file).create_key(uri, KeyType.EC_P256)
    with pytest.raises(ConfigError, match="wrong password"):
        SoftKMS(password=b"not it").signer(uri)
    with pytest.raises(ConfigError):
        SoftKMS().signer(uri)


def test_password_file_problems(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        SoftKMS(password_file=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_bytes(b"\n")
    with pytest.raises(ConfigError):
        SoftKMS(password_file=empty)
    with pytest.raises(ConfigError):
        SoftKMS().create_key(f"softkms:path={tmp_path}/k.pem", KeyType.EC_P256)


def test_refuses_to_overwrite_even_foreign_files(tmp_path: Path, password_file: Path) -> None:
    path = tmp_path / "existing.pem"
    path.write_bytes(b"not mine")
    with pytest.raises(ConfigError, match="overwrite"):
        SoftKMS(password_file=password_file).create_key(str(path), KeyType.EC_P256)
    assert path.read_bytes() == b"not mine"


def test_concurrent_creates_have_exactly_one_winner(tmp_path: Path, password_file: Path) -> None:
    uri = f"softkms:path={tmp_path}/race.pem"
    results: list[object] = []

    def create() -> None:
        try:
            results.append(SoftKMS(password_file=password_file).create_key(uri, KeyType.EC_P256))
        except ConfigError as exc:
            results.append(exc)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, SoftSigner)]
    assert len(winners) == 1 and len(results) == 8
    assert SoftKMS(password_file=password_file).signer(uri).public_key() == winners[0].public_key()


def test_reads_unencrypted_and_traditional_pem(tmp_path: Path) -> None:
    """Keys made by `step crypto keypair` (SEC1 'EC PRIVATE KEY', maybe unencrypted) load."""
    key = ec.generate_private_key(ec.SECP256R1())
    plain = tmp_path / "plain.pem"
    plain.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    assert SoftKMS(password=PASSWORD).signer(str(plain)).public_key() == key.public_key()
    legacy = tmp_path / "legacy.pem"
    legacy.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.BestAvailableEncryption(PASSWORD),
        )
    )
    assert SoftKMS(password=PASSWORD).signer(str(legacy)).public_key() == key.public_key()


def test_rejects_curves_and_sizes_cirrus_does_not_sign_with(tmp_path: Path) -> None:
    p521 = tmp_path / "p521.pem"
    p521.write_bytes(
        ec.generate_private_key(ec.SECP521R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(ConfigError):
        SoftKMS().signer(str(p521))
    with pytest.raises(ConfigError):
        SoftSigner(rsa.generate_private_key(public_exponent=65537, key_size=1024))


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        SoftKMS(password=PASSWORD).signer(f"softkms:path={tmp_path}/nope.pem")


def test_decrypted_keys_are_cached_per_manager(tmp_path: Path, password_file: Path) -> None:
    uri = f"softkms:path={tmp_path}/k.pem"
    SoftKMS(password_file=password_file).create_key(uri, KeyType.EC_P256)
    manager = SoftKMS(password_file=password_file)
    first = manager.signer(uri)
    (tmp_path / "k.pem").unlink()  # a cached key no longer needs the file
    assert manager.signer(uri) is first
    with pytest.raises(ConfigError):
        SoftKMS(password_file=password_file).signer(uri)


def test_builder_key_is_the_fast_path(tmp_path: Path, password_file: Path) -> None:
    signer = SoftKMS(password_file=password_file).create_key(
        f"softkms:path={tmp_path}/k.pem", KeyType.EC_P384
    )
    key = as_private_key(signer)
    assert key is signer.builder_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    sig = signer.sign(b"data")
    signer.public_key().verify(sig, b"data", ec.ECDSA(hashes.SHA384()))  # type: ignore[call-arg]


def test_reopening_a_key_does_not_decrypt_it_again(
    tmp_path: Path, password_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reopening a key per request must not re-run the PEM decryption (its cost is in bench/kms_sign.py)."""
    from cryptography.hazmat.primitives import serialization

    uri = f"softkms:path={tmp_path}/k.pem"
    SoftKMS(password_file=password_file).create_key(uri, KeyType.EC_P256)
    manager = SoftKMS(password_file=password_file)
    loads: list[int] = []
    real = serialization.load_pem_private_key

    def counting(*args: object, **kwargs: object) -> object:
        loads.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(serialization, "load_pem_private_key", counting)
    for _ in range(50):
        manager.signer(uri).sign(b"tbs certificate bytes")
    assert len(loads) == 1
