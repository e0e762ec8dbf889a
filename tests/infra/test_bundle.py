"""The Cloud Functions source bundle (infra/bundle.py).

Built from throwaway checkouts under tmp_path (so the tests do not depend on
functions/main.py having landed) and from this repository's real shared/
package and pyproject.toml.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "infra" / "bundle.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cirrus_infra_bundle", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bundle = _load()

PYPROJECT = """\
[project]
name = "demo"
version = "0"
dependencies = ["cryptography>=46", "werkzeug>=3.0"]

[project.optional-dependencies]
gcp = ["functions-framework>=3.8", "google-cloud-kms>=2.21", "werkzeug>=3.0"]
aws = ["boto3>=1.34"]
"""


LOCK = """\
# pinned
cryptography==46.0.1
functions-framework==3.8.0
google-cloud-kms==2.21.0
werkzeug==3.0.6
"""


def make_checkout(root: Path, *, reverse: bool = False) -> Path:
    """A minimal checkout; `reverse` creates files in the opposite order."""
    files = {
        "pyproject.toml": PYPROJECT,
        "functions/main.py": "import functions_framework\n",
        "shared/__init__.py": "",
        "shared/py.typed": "",
        "shared/store/__init__.py": "",
        "shared/store/firestore_indexes.json": "{}\n",
        "shared/x509/build.py": "X = 1\n",
        "shared/__pycache__/x.cpython-311.pyc": "junk",
        "shared/x509/old.pyc": "junk",
        "shared/.hidden/secret.txt": "no",
        "shared/x509/.#lock": "no",
        "tests/test_x.py": "not shipped",
        "infra/requirements.lock": LOCK,
    }
    items = sorted(files.items(), reverse=reverse)
    for name, text in items:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_contents_are_main_shared_and_requirements(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    out = tmp_path / "b.zip"
    bundle.build(root, out)
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        assert names == sorted(names), "entries must be sorted"
        assert names == [
            "main.py",
            "requirements.txt",
            "shared/__init__.py",
            "shared/py.typed",
            "shared/store/__init__.py",
            "shared/store/firestore_indexes.json",
            "shared/x509/build.py",
        ]
        assert archive.read("main.py") == b"import functions_framework\n"
        assert archive.read("requirements.txt").decode() == LOCK
        for info in archive.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.create_system == 3
            assert info.compress_type == zipfile.ZIP_DEFLATED
        assert archive.testzip() is None


def test_same_source_gives_same_bytes(tmp_path: Path) -> None:
    first = make_checkout(tmp_path / "a")
    second = make_checkout(tmp_path / "b", reverse=True)
    # different mtimes and permissions must not leak into the zip
    os.utime(second / "shared" / "x509" / "build.py", (1_000_000_000, 1_000_000_000))
    (second / "functions" / "main.py").chmod(0o755)
    digest_a = bundle.build(first, tmp_path / "a.zip")
    digest_b = bundle.build(second, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert digest_a == digest_b == hashlib.sha256((tmp_path / "a.zip").read_bytes()).hexdigest()


def test_a_source_change_changes_the_digest(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    before = bundle.build(root, tmp_path / "1.zip")
    (root / "shared" / "x509" / "build.py").write_text("X = 2\n", encoding="utf-8")
    after = bundle.build(root, tmp_path / "2.zip")
    assert before != after


def test_missing_main_is_a_clear_error(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    (root / "functions" / "main.py").unlink()
    with pytest.raises(bundle.BundleError, match=r"functions/main\.py does not exist"):
        bundle.build(root, tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()


def test_missing_extra_is_a_clear_error(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n', encoding="utf-8")
    with pytest.raises(bundle.BundleError, match=r"no \[gcp\] extra"):
        bundle.build(root, tmp_path / "b.zip")


def test_real_requirements_are_base_plus_gcp_extra() -> None:
    lines = bundle.requirements(REPO / "pyproject.toml")
    names = [line.split(">")[0].split("=")[0].split("[")[0] for line in lines]
    assert names[:2] == ["cryptography", "pyjwt"]
    assert "google-cloud-firestore" in names and "google-cloud-kms" in names
    assert "functions-framework" in names
    assert "boto3" not in names and "pytest" not in names
    assert len(names) == len(set(names))


def test_cli_builds_real_shared_package_that_imports_from_the_bundle(tmp_path: Path) -> None:
    # The real shared/ and pyproject.toml; functions/main.py is the real one
    # when it has landed, else a stand-in that imports the library.
    root = tmp_path / "checkout"
    shutil.copytree(REPO / "shared", root / "shared", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "infra").mkdir()
    shutil.copy(REPO / "infra" / "requirements.lock", root / "infra" / "requirements.lock")
    (root / "functions").mkdir()
    real_main = REPO / "functions" / "main.py"
    if real_main.is_file():
        shutil.copy(real_main, root / "functions" / "main.py")
    else:
        (root / "functions" / "main.py").write_text("import shared.errors\n", encoding="utf-8")
    out = tmp_path / "dist" / "fn.zip"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert result.stdout.strip() == f"{out} sha256={digest}"

    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        shipped = {
            p.relative_to(REPO).as_posix() for p in (REPO / "shared").rglob("*.py") if "__pycache__" not in p.parts
        }
        assert shipped <= names
        assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
        unpacked = tmp_path / "unpacked"
        archive.extractall(unpacked)

    # The deployed layout imports main and shared from the bundle itself, the
    # way the Cloud Functions runtime does (bundle root on sys.path first).
    probe = (
        f"import sys, main, shared; assert shared.__file__.startswith({str(unpacked)!r}), shared.__file__; print('ok')"
    )
    check = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert check.returncode == 0 and check.stdout.strip() == "ok", check.stderr


def test_cli_fails_with_message_when_main_is_missing(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    (root / "functions" / "main.py").unlink()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), "--out", str(tmp_path / "x.zip")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "functions/main.py does not exist" in result.stderr


def test_config_dir_ships_config_and_certificates_under_config(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    config = tmp_path / "deploy"
    (config / "certs").mkdir(parents=True)
    (config / "config.json").write_text('{"root": "certs/root_ca.crt"}\n', encoding="utf-8")
    (config / "certs" / "root_ca.crt").write_text(
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", encoding="utf-8"
    )
    out = tmp_path / "b.zip"
    bundle.build(root, out, config_dir=config)
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    assert names == sorted(names)
    assert {"config/config.json", "config/certs/root_ca.crt"} <= set(names)


@pytest.mark.parametrize(
    ("relative", "text"),
    [
        ("certs/intermediate_ca.key", "-----BEGIN EC PRIVATE KEY-----\nMHc\n"),
        ("provisioner.jwk", '{"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "d": "c"}'),
        ("secrets/password.txt", "hunter2"),
    ],
)
def test_config_dir_with_key_material_is_refused(tmp_path: Path, relative: str, text: str) -> None:
    root = make_checkout(tmp_path / "repo")
    config = tmp_path / "deploy"
    config.mkdir()
    (config / "config.json").write_text("{}\n", encoding="utf-8")
    target = config / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    with pytest.raises(bundle.BundleError, match="private key material"):
        bundle.build(root, tmp_path / "b.zip", config_dir=config)
    assert not (tmp_path / "b.zip").exists()


# ------------------------------------------------------------------ pinned requirements


def test_a_stale_or_missing_lock_is_refused(tmp_path: Path) -> None:
    root = make_checkout(tmp_path / "repo")
    lock = root / "infra" / "requirements.lock"
    lock.write_text(LOCK.replace("werkzeug==3.0.6\n", ""), encoding="utf-8")
    with pytest.raises(bundle.BundleError, match=r"stale for werkzeug>=3\.0"):
        bundle.build(root, tmp_path / "b.zip")
    lock.write_text(LOCK.replace("cryptography==46.0.1", "cryptography==45.0.0"), encoding="utf-8")
    with pytest.raises(bundle.BundleError, match="stale for cryptography>=46"):
        bundle.build(root, tmp_path / "b.zip")
    lock.write_text(LOCK.replace("werkzeug==3.0.6", "werkzeug>=3.0"), encoding="utf-8")
    with pytest.raises(bundle.BundleError, match="not pinned"):
        bundle.build(root, tmp_path / "b.zip")
    lock.unlink()
    with pytest.raises(bundle.BundleError, match="--write-lock"):
        bundle.build(root, tmp_path / "b.zip")


def test_the_repository_lock_is_what_the_tests_run_with() -> None:
    """infra/requirements.lock equals the closure of base + [gcp] as installed here (CI installs with it)."""
    committed = (REPO / "infra" / "requirements.lock").read_text(encoding="utf-8")
    assert committed == bundle.lock_text(REPO / "pyproject.toml"), (
        "the installed dependencies differ from infra/requirements.lock: "
        "run `python infra/bundle.py --write-lock` after the tests pass"
    )
    assert bundle.locked_requirements(REPO) == committed
    pins = [line for line in committed.splitlines() if line and not line.startswith("#")]
    assert all("==" in line for line in pins)
    names = {line.split("==")[0] for line in pins}
    # transitive dependencies are pinned too, not only what pyproject names
    assert {"cryptography", "google-cloud-firestore", "functions-framework", "google-api-core", "grpcio"} <= names


# ------------------------------------------------------------------ private keys in any encoding


def _keys() -> dict[str, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12

    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = serialization.Encoding.DER
    return {
        "ec_pkcs8.der": ec_key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "ec_sec1.der": ec_key.private_bytes(der, serialization.PrivateFormat.TraditionalOpenSSL,
                                            serialization.NoEncryption()),
        "rsa_pkcs1.der": rsa_key.private_bytes(der, serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption()),
        "rsa_encrypted.der": rsa_key.private_bytes(der, serialization.PrivateFormat.PKCS8,
                                                   serialization.BestAvailableEncryption(b"pw")),
        "bundle.bin": pkcs12.serialize_key_and_certificates(None, ec_key, None, None, serialization.NoEncryption()),
        "ec.pem": ec_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()),
    }


@pytest.mark.parametrize("name", ["ec_pkcs8.der", "ec_sec1.der", "rsa_pkcs1.der", "rsa_encrypted.der", "bundle.bin", "ec.pem"])
def test_private_keys_are_refused_in_every_encoding(tmp_path: Path, name: str) -> None:
    root = make_checkout(tmp_path / "repo")
    config = tmp_path / "deploy"
    (config / "certs").mkdir(parents=True)
    (config / "config.json").write_text("{}\n", encoding="utf-8")
    # named like a certificate: the refusal must come from the bytes, not the name
    (config / "certs" / f"intermediate_ca.crt.{name.split('.')[0]}").write_bytes(_keys()[name])
    with pytest.raises(bundle.BundleError, match="private key material"):
        bundle.build(root, tmp_path / "b.zip", config_dir=config)


def test_der_certificates_are_shipped(tmp_path: Path) -> None:
    """The check refuses keys, not DER as such: a DER certificate is fine."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "root")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    root = make_checkout(tmp_path / "repo")
    config = tmp_path / "deploy"
    (config / "certs").mkdir(parents=True)
    (config / "config.json").write_text("{}\n", encoding="utf-8")
    (config / "certs" / "root_ca.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    bundle.build(root, tmp_path / "b.zip", config_dir=config)
    with zipfile.ZipFile(tmp_path / "b.zip") as archive:
        assert "config/certs/root_ca.der" in archive.namelist()
