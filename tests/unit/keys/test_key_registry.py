"""Dispatch of key URIs to backends by scheme."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.keys.base import KeyManager, KeyType, Signer
from shared.keys.cloudkms import CloudKMS
from shared.keys.registry import KeyManagers, open_key_manager, scheme_of
from shared.keys.softkms import SoftKMS
from tests.fakes.kms_server import insecure_client, serve_fake_kms


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("softkms:path=/k", "softkms"),
        ("/abs/k.pem", "softkms"),
        ("cloudkms:projects/p", "cloudkms"),
        ("awskms:key-id=abc", "awskms"),
        ("pkcs11:token=t;object=o", "pkcs11"),
    ],
)
def test_scheme_of(uri: str, scheme: str) -> None:
    assert scheme_of(uri) == scheme


@pytest.mark.parametrize("uri", ["", "relative.pem", "C:/x", "1abc:x"])
def test_scheme_of_rejects(uri: str) -> None:
    with pytest.raises(ConfigError):
        scheme_of(uri)


def test_dispatches_each_uri_to_its_backend(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("pw")
    with serve_fake_kms() as (fake, address):
        managers = KeyManagers(
            password_file=password,
            factories={"cloudkms": lambda: CloudKMS(client=insecure_client(address))},
        )
        soft_uri = f"softkms:path={tmp_path}/root.key"
        cloud_uri = (
            "cloudkms:projects/p/locations/global/keyRings/r/cryptoKeys/int"
            ";protection-level=SOFTWARE"
        )
        soft = managers.create_key(soft_uri, KeyType.EC_P256)
        cloud = managers.create_key(cloud_uri, KeyType.EC_P384)
        assert isinstance(managers.manager_for(soft_uri), SoftKMS)
        assert isinstance(managers.manager_for(cloud_uri), CloudKMS)
        assert managers.manager_for(soft_uri) is managers.manager_for(str(tmp_path / "x"))
        assert managers.signer(soft_uri).public_key() == soft.public_key()
        version = cloud_uri.split(";")[0] + "/cryptoKeyVersions/1"
        assert managers.signer(version).public_key() == cloud.public_key()
        assert fake.calls["CreateCryptoKey"] == 1


def test_backends_are_built_lazily(tmp_path: Path) -> None:
    built: list[str] = []

    def boom() -> KeyManager:
        built.append("cloudkms")
        raise AssertionError("cloudkms must not be built for softkms URIs")

    password = tmp_path / "pw"
    password.write_text("pw")
    managers = KeyManagers(password_file=password, factories={"cloudkms": boom})
    signer: Signer = managers.create_key(str(tmp_path / "k.pem"), KeyType.ED25519)
    assert signer.sign(b"x")
    assert built == []


def test_awskms_and_pkcs11_route_to_their_backends() -> None:
    from shared.keys.awskms import AWSKMS
    from shared.keys.pkcs11 import PKCS11

    managers = KeyManagers()
    assert isinstance(managers.manager_for("awskms:key-id=alias/x;region=us-east-1"), AWSKMS)
    assert isinstance(managers.manager_for("pkcs11:token=t;object=o"), PKCS11)


@pytest.mark.parametrize("uri", ["yubikey:slot-id=9c", "azurekms:name=k;vault=v"])
def test_step_schemes_cirrus_does_not_offer_say_so(uri: str) -> None:
    with pytest.raises(ConfigError, match="not supported"):
        KeyManagers().signer(uri)


def test_unknown_scheme() -> None:
    with pytest.raises(ConfigError, match="unknown"):
        KeyManagers().signer("nosuchkms:slot-id=9c")


def test_open_key_manager(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("pw")
    manager = open_key_manager(f"softkms:path={tmp_path}/k", password_file=password)
    assert isinstance(manager, SoftKMS)


def test_softkms_use_does_not_import_cloud_sdks(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("pw")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from shared.keys.registry import KeyManagers\n"
        "from shared.keys.base import KeyType\n"
        f"m = KeyManagers(password_file=Path({str(password)!r}))\n"
        f"m.create_key({str(tmp_path / 'k.pem')!r}, KeyType.EC_P256).sign(b'x')\n"
        "sdk = ('google.cloud.kms', 'google.api_core', 'google_crc32c', 'grpc')\n"
        "bad = [n for n in sys.modules if n.startswith(sdk)]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
