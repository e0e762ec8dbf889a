"""Local cloud mode hands each function the settings Terraform gives its deployed twin.

tests/e2e/test_cloud_local.py exercises the shape users deploy only if infra/cloud_local.py sets the
same variables per function as `local.function_env` in terraform/modules/cirrus/functions.tf: the
issuer split (CIRRUS_ISSUER_URL), the keys by grant (CIRRUS_KEY, CIRRUS_OCSP_KEY) and one external
URL per HTTP function. This compares the two without starting anything.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.infra.test_terraform import MODULE, function_env_names, parse_dir

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cirrus_infra_cloud_local", REPO / "infra" / "cloud_local.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cloud_local = _load()


def local_cloud(tmp_path: Path, entry_points: dict[str, str]) -> Any:
    authority = tmp_path / "ca"
    authority.mkdir()
    (authority / "config.json").write_text(
        json.dumps({
            "root": "certs/root_ca.crt",
            "crt": "certs/intermediate_ca.crt",
            "key": "softkms:path=secrets/intermediate_ca_key",
            "passwordFile": "secrets/password",
            "ocsp": {"responderKey": "softkms:path=secrets/ocsp_responder_key", "responderLifetime": "72h"},
            "ssh": {"userKey": "softkms:path=secrets/ssh_user_ca_key", "hostKey": "softkms:path=secrets/ssh_host_ca_key"},
            "crl": {"enabled": True},
        }),
        encoding="utf-8",
    )
    cloud = cloud_local.CloudLocal(
        authority_dir=authority, project="p", prefix="x-", bucket="b", host="127.0.0.1", ports={},
        log_dir=tmp_path / "logs",
    )
    cloud.log_dir.mkdir()
    cloud.emulator_env = {"STORAGE_EMULATOR_HOST": "http://127.0.0.1:4443"}
    for port, (name, signature) in enumerate(sorted(entry_points.items()), 40000):
        cloud.functions[name] = cloud_local.FunctionProcess(
            name=name, signature=signature, port=port, host="127.0.0.1", log=tmp_path / f"{name}.log"
        )
    cloud.config_path = cloud.deployed_config()
    return cloud


@pytest.mark.parametrize("issuer_deployed", [True, False], ids=["issuer-split", "issuer-pending"])
def test_each_function_gets_the_variables_terraform_gives_it(tmp_path: Path, issuer_deployed: bool) -> None:
    module = parse_dir(MODULE)
    entry_points = cloud_local.entry_points()
    if not issuer_deployed:
        entry_points.pop("issuer")
    functions = {
        name: {**f, "deployed": name in entry_points} for name, f in module["locals"]["functions"].items()
    }
    # the settings (CIRRUS_*); THREADS, gunicorn's thread count for the instance's concurrency, is no setting
    expected = {n: {v for v in names if v.startswith("CIRRUS_")} for n, names in function_env_names(module, functions).items()}
    cloud = local_cloud(tmp_path, entry_points)
    got = {name: set(cloud.deployed_settings(name)) for name in entry_points}
    assert got == {name: expected[name] for name in entry_points}


def test_settings_values_follow_the_deployed_shape(tmp_path: Path) -> None:
    cloud = local_cloud(tmp_path, cloud_local.entry_points())
    settings = {name: cloud.deployed_settings(name) for name in cloud.functions}
    # the issuer split: callers point at the issuer; the issuer accepts ca_api's token audience
    assert settings["ca_api"]["CIRRUS_ISSUER_URL"] == cloud.functions["issuer"].url
    assert settings["issuer"]["CIRRUS_EXTERNAL_URL"] == cloud.functions["ca_api"].url
    for env in settings.values():
        if "CIRRUS_EXTERNAL_URL" in env:
            assert urlsplit(env["CIRRUS_EXTERNAL_URL"]).path == "", "deployed addresses carry no path"
    # keys by grant: the shared config opens no key; only the granted functions get the real ones
    config = json.loads(Path(settings["ca_api"]["CIRRUS_CONFIG"]).read_text())
    assert config["key"] == cloud_local.NO_KEY
    assert "responderKey" not in config["ocsp"]
    assert settings["issuer"]["CIRRUS_KEY"] == f"softkms:path={tmp_path / 'ca' / 'secrets' / 'intermediate_ca_key'}"
    assert settings["ocsp"]["CIRRUS_OCSP_KEY"].endswith("/secrets/ocsp_responder_key")
    # the CDP is the bucket's public URL, the AIA OCSP the ocsp function
    assert config["crl"]["baseURL"] == "http://127.0.0.1:4443/b"
    assert config["crl"]["ocspURL"] == cloud.functions["ocsp"].url
    assert Path(config["crt"]).is_absolute() and Path(config["passwordFile"]).is_absolute()


def test_an_inherited_key_does_not_leak_to_other_functions(tmp_path: Path) -> None:
    cloud = local_cloud(tmp_path, cloud_local.entry_points())
    env = cloud.function_env({"CIRRUS_KEY": "softkms:path=/k", "CIRRUS_ISSUER_URL": "http://x", "PATH": "/bin"}, "ocsp")
    assert "CIRRUS_KEY" not in env and "CIRRUS_ISSUER_URL" not in env and env["PATH"] == "/bin"
