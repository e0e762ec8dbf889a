"""Static checks of the Terraform deployment (terraform/).

The Google provider cannot be downloaded here, so `terraform validate` cannot
run. These tests parse every .tf file with python-hcl2 and assert the
properties the deployment's security rests on: one service account per
function, least privilege per function, no basic roles, only the intended
public grants, buckets with uniform access, scheduler jobs that feed real
topics, and a function resource for exactly the entry points of
functions/main.py. `terraform fmt -check` and checkov run here too.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
MODULE = TERRAFORM / "modules" / "cirrus"
EXAMPLE = TERRAFORM / "examples" / "basic"
MAIN_PY = REPO / "functions" / "main.py"

# The least-privilege table of the brief (issue 3). A change that widens a
# function's access must change this table too, in review.
EXPECTED_PROJECT_ROLES = {
    "ca_api": ["roles/datastore.user"],
    "acme": ["roles/datastore.user"],
    "ocsp": [],
    "issuer": ["roles/datastore.user"],
    "dashboard": ["roles/datastore.user"],
    "crl_publish": ["roles/datastore.user"],
    "sweep": ["roles/datastore.user"],
}
# Each resource-scoped grant with the code that needs it ("file: name", both
# checked to exist below). signerVerifier also covers GetPublicKey, the only
# other KMS call shared/keys/cloudkms.py makes, so no viewer roles.
ROLE_NEEDS = {
    ("issuer", "roles/cloudkms.signerVerifier"): "shared/keys/cloudkms.py: asymmetric_sign",
    ("crl_publish", "roles/cloudkms.signerVerifier"): "shared/keys/cloudkms.py: asymmetric_sign",
    ("ocsp", "roles/cloudkms.signerVerifier"): "shared/keys/cloudkms.py: asymmetric_sign",
    ("crl_publish", "roles/cloudkms.publicKeyViewer"): "shared/keys/cloudkms.py: get_public_key",
    ("ca_api", "roles/storage.objectViewer"): "shared/api/mounts.py: def crl",
    ("acme", "roles/storage.objectViewer"): "shared/api/mounts.py: def crl",
    ("ocsp", "roles/storage.objectViewer"): "shared/blobs/gcs.py: def read",
    ("dashboard", "roles/storage.objectViewer"): "shared/dashboard/authority_page.py: read_arl",
    ("issuer", "roles/storage.objectViewer"): "shared/intermediate_revocation.py: def read_arl",
    ("crl_publish", "roles/storage.objectUser"): "shared/blobs/gcs.py: if_generation_match",
}
EXPECTED_KEY_GRANTS = {
    ("issuer", "roles/cloudkms.signerVerifier"),
    ("crl_publish", "roles/cloudkms.signerVerifier"),
}
# Roles on the delegated OCSP responder key: ocsp signs responses with it,
# crl_publish (which holds the CA key) only reads its public key to certify it.
EXPECTED_OCSP_KEY_GRANTS = {
    ("ocsp", "roles/cloudkms.signerVerifier"),
    ("crl_publish", "roles/cloudkms.publicKeyViewer"),
}
OCSP_KEY_HOLDERS = {"ocsp", "crl_publish"}
EXPECTED_BUCKET_GRANTS = {
    ("ca_api", "roles/storage.objectViewer"),
    ("acme", "roles/storage.objectViewer"),
    ("ocsp", "roles/storage.objectViewer"),
    ("issuer", "roles/storage.objectViewer"),
    ("dashboard", "roles/storage.objectViewer"),
    ("crl_publish", "roles/storage.objectUser"),
}
PUBLIC_FUNCTIONS = {"ca_api", "acme", "ocsp"}
SIGNING_FUNCTIONS = {"issuer", "crl_publish"}
FORBIDDEN_ROLES = {
    "roles/owner",
    "roles/editor",
    "roles/viewer",
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.securityAdmin",
    "roles/resourcemanager.projectIamAdmin",
    "roles/cloudkms.admin",
    "roles/storage.admin",
    "roles/datastore.owner",
    "roles/pubsub.admin",
}
# Resource addresses allowed to grant anything to allUsers/allAuthenticatedUsers.
ALLOWED_PUBLIC_GRANTS = {
    "google_cloud_run_v2_service_iam_member.public",
    "google_storage_managed_folder_iam_member.crl_public_read",
}
FRAMEWORK_DECORATORS = {"http": "http", "cloud_event": "cloud_event"}


# --------------------------------------------------------------------------- parsing


def _unquote(value: Any) -> Any:
    """Normalise python-hcl2 output: drop block markers and the quotes it keeps."""
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_dir(directory: Path) -> dict[str, Any]:
    """Merge every .tf file of one directory into resources, locals, variables, outputs."""
    merged: dict[str, Any] = {
        "resource": {},
        "locals": {},
        "variable": {},
        "output": {},
        "module": {},
        "files": [],
    }
    for path in sorted(directory.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            data = _unquote(hcl2.load(handle))
        merged["files"].append(path.name)
        for block in data.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    address = f"{rtype}.{name}"
                    assert address not in merged["resource"], f"{address} declared twice"
                    merged["resource"][address] = body
        for block in data.get("locals", []):
            for key, value in block.items():
                assert key not in merged["locals"], f"local.{key} declared twice"
                merged["locals"][key] = value
        for kind in ("variable", "output", "module"):
            for block in data.get(kind, []):
                merged[kind].update(block)
    return merged


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    return parse_dir(MODULE)


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return parse_dir(EXAMPLE)


def resources_of(parsed: dict[str, Any], rtype: str) -> dict[str, Any]:
    return {addr.split(".", 1)[1]: body for addr, body in parsed["resource"].items() if addr.startswith(rtype + ".")}


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The single nested block `name` of a resource body."""
    blocks = body.get(name)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected one {name} block"
    result = blocks[0]
    assert isinstance(result, dict)
    return result


# ----------------------------------------------------------------------- entry points


def entry_points(source: str) -> dict[str, str | None]:
    """Return the Cloud Function entry points a functions/main.py defines.

    Maps each name to "http", "cloud_event" or None (kind unknown). Recognised:
    top-level functions decorated with `functions_framework.http` /
    `.cloud_event` (or the bare names imported from it), module-level
    registrations `name = functions_framework.http(impl)`, and names listed in
    a literal `__all__` (how a re-exporting main.py declares them).
    """
    tree = ast.parse(source)
    found: dict[str, str | None] = {}

    def kind_of(node: ast.expr) -> str | None:
        if isinstance(node, ast.Call):
            node = node.func
        if isinstance(node, ast.Attribute) and node.attr in FRAMEWORK_DECORATORS:
            return FRAMEWORK_DECORATORS[node.attr]
        if isinstance(node, ast.Name) and node.id in FRAMEWORK_DECORATORS:
            return FRAMEWORK_DECORATORS[node.id]
        return None

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for decorator in node.decorator_list:
                kind = kind_of(decorator)
                if kind:
                    found[node.name] = kind
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            kind = kind_of(node.value.func)
            if kind:
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found[target.id] = kind
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            for element in node.value.elts:
                if isinstance(element, ast.Constant) and isinstance(element.value, str):
                    found.setdefault(element.value, None)
    return found


def test_entry_point_parser_recognises_decorators_registrations_and_all() -> None:
    source = textwrap.dedent(
        """
        import functions_framework
        from functions_framework import cloud_event

        @functions_framework.http
        def ca_api(request): ...

        @cloud_event
        def sweep(event): ...

        def _impl(request): ...
        ocsp = functions_framework.http(_impl)

        def helper(): ...

        from shared.api.entry import acme
        __all__ = ["ca_api", "sweep", "ocsp", "acme"]
        """
    )
    assert entry_points(source) == {
        "ca_api": "http",
        "sweep": "cloud_event",
        "ocsp": "http",
        "acme": None,
    }
    assert entry_points("def helper(): ...\n") == {}


def mismatches(found: dict[str, str | None], functions: dict[str, Any]) -> list[str]:
    """Differences between main.py's entry points and the deployed Terraform functions."""
    where = "terraform/modules/cirrus/functions.tf"
    problems = []
    for name in sorted(set(found) - set(functions)):
        problems.append(f"entry point {name} has no entry in local.functions ({where})")
    for name in sorted(set(found) & set(functions)):
        if not functions[name]["deployed"]:
            problems.append(f"entry point {name} landed: set deployed = true for it in {where}")
    for name in sorted(set(functions) - set(found)):
        if functions[name]["deployed"]:
            problems.append(
                f"function {name} is deployed but has no entry point in functions/main.py "
                f"(add it, or set deployed = false in {where})"
            )
    for name, kind in sorted(found.items()):
        if kind is None or name not in functions:
            continue
        expected = "http" if kind == "http" else "schedule"
        if functions[name]["trigger"] != expected:
            problems.append(
                f"{name} is a {kind} function in main.py but has trigger {functions[name]['trigger']!r} in Terraform"
            )
    return problems


def test_mismatches_reports_each_direction(module: dict[str, Any]) -> None:
    functions = {n: {**f, "deployed": True} for n, f in module["locals"]["functions"].items()}
    source = "import functions_framework as ff\n" + "".join(
        f"@ff.{'http' if f['trigger'] == 'http' else 'cloud_event'}\ndef {n}(x): ...\n"
        for n, f in functions.items()
        if n != "dashboard"
    )
    where = "terraform/modules/cirrus/functions.tf"
    assert mismatches(entry_points(source), functions) == [
        "function dashboard is deployed but has no entry point in functions/main.py "
        f"(add it, or set deployed = false in {where})"
    ]
    functions["dashboard"]["deployed"] = False
    assert mismatches(entry_points(source), functions) == []
    source += "@ff.http\ndef dashboard(r): ...\n@ff.http\ndef extra(r): ...\n"
    source = source.replace("@ff.cloud_event\ndef sweep", "@ff.http\ndef sweep")
    assert mismatches(entry_points(source), functions) == [
        f"entry point extra has no entry in local.functions ({where})",
        f"entry point dashboard landed: set deployed = true for it in {where}",
        "sweep is a http function in main.py but has trigger 'schedule' in Terraform",
    ]


def test_function_map_equals_entry_points_of_functions_main(module: dict[str, Any]) -> None:
    if not MAIN_PY.is_file():
        pytest.fail(
            f"{MAIN_PY.relative_to(REPO)} does not exist yet: the Terraform function map "
            "(terraform/modules/cirrus/functions.tf, local.functions) cannot be checked "
            "against the entry points until it lands (issue 3 item 1)."
        )
    found = entry_points(MAIN_PY.read_text(encoding="utf-8"))
    assert found, (
        "no entry point recognised in functions/main.py: decorate each with "
        "@functions_framework.http / @functions_framework.cloud_event or list them in __all__"
    )
    problems = mismatches(found, module["locals"]["functions"])
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------- functions


def test_function_map_shape(module: dict[str, Any]) -> None:
    functions = module["locals"]["functions"]
    assert set(functions) == set(EXPECTED_PROJECT_ROLES)
    keys = None
    for name, spec in functions.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        # for_each over an object needs one shape for every entry
        assert keys is None or set(spec) == keys, f"{name} has a different attribute set"
        keys = set(spec)
        assert spec["trigger"] in ("http", "schedule")
        assert spec["access"] in ("public", "internal", "authenticated", "event")
        assert (spec["trigger"] == "schedule") == (spec["access"] == "event"), name
    assert {n for n, f in functions.items() if f["access"] == "public"} == PUBLIC_FUNCTIONS
    assert functions["issuer"]["access"] == "internal"
    assert functions["dashboard"]["access"] == "authenticated"
    assert {n for n, f in functions.items() if f["signs"]} == SIGNING_FUNCTIONS
    assert {n for n, f in functions.items() if f["calls_issuer"]} == {"ca_api", "acme"}
    assert set(module["locals"]["schedules"]) == {n for n, f in functions.items() if f["trigger"] == "schedule"}


def test_every_function_resource_comes_from_the_map_with_its_own_account(
    module: dict[str, Any],
) -> None:
    fns = resources_of(module, "google_cloudfunctions2_function")
    assert list(fns) == ["fn"], "declare functions only through local.functions"
    fn = fns["fn"]
    assert fn["for_each"] == "${local.deployed}"
    build = block(fn, "build_config")
    assert build["runtime"] == "python311"
    assert build["entry_point"] == "${each.key}"
    storage = block(block(build, "source"), "storage_source")
    assert storage["object"] == "${google_storage_bucket_object.bundle.name}"
    service = block(fn, "service_config")
    assert service["service_account_email"] == "${google_service_account.fn[each.key].email}"
    assert service["environment_variables"] == "${local.function_env[each.key]}"
    accounts = resources_of(module, "google_service_account")
    assert accounts["fn"]["for_each"] == "${local.deployed}"
    trigger = fn["dynamic"][0]["event_trigger"]
    content = block(trigger, "content")
    assert content["service_account_email"] == "${google_service_account.fn[each.key].email}"
    assert content["pubsub_topic"] == "${google_pubsub_topic.tick[event_trigger.value].id}"


def test_environment_names_every_backend(module: dict[str, Any]) -> None:
    env = module["locals"]["common_env"]
    # CIRRUS_CONFIG points where `infra/bundle.py --config-dir` puts config.json
    assert env["CIRRUS_CONFIG"] == "${var.config_path}"
    assert module["variable"]["config_path"]["default"] == "config/config.json"
    assert 'CONFIG_PREFIX = "config/"' in (REPO / "infra" / "bundle.py").read_text()
    assert env["CIRRUS_STORE"].startswith("firestore:projects/")
    assert env["CIRRUS_BLOBS"].startswith("gs://")
    assert env["CIRRUS_EVENTS"].startswith("pubsub:")
    key_uri = module["locals"]["signing_key_uri"]
    assert key_uri.startswith("cloudkms:") and "/cryptoKeyVersions/" in key_uri
    function_env = module["locals"]["function_env"]
    # the key URI only reaches the signers, the issuer URL only its callers
    compact = re.sub(r"\s", "", function_env)
    assert "contains(local.signers,name)?{CIRRUS_KEY=local.signing_key_uri}:{}" in compact
    assert "contains(local.issuer_callers,name)?{CIRRUS_ISSUER_URL=local.issuer_url}:{}" in compact


def test_instance_sizing(module: dict[str, Any]) -> None:
    """Warm instances and per-instance concurrency: per function, defaults in the map, variables override.

    More than one request per instance needs a whole vCPU on Cloud Run, so the CPU follows the
    concurrency; gunicorn gets as many threads as requests may arrive at once; the scheduled
    functions stay one at a time whatever the variables say (their runs race otherwise).
    """
    functions = module["locals"]["functions"]
    http = sorted(n for n, f in functions.items() if f["trigger"] == "http")
    for name, f in functions.items():
        assert isinstance(f["concurrency"], int) and f["concurrency"] >= 1, name
        assert (f["concurrency"] > 1) == (f["trigger"] == "http"), f"{name}: default concurrency {f['concurrency']}"
    compact = {k: re.sub(r"\s", "", str(v)) for k, v in module["locals"].items()}
    assert compact["min_instances"] == "${{forname,finlocal.functions:name=>lookup(var.min_instances,name,0)}}"
    assert compact["concurrency"] == (
        '${{forname,finlocal.functions:name=>f.trigger=="schedule"?1:'
        "lookup(var.instance_concurrency,name,f.concurrency)}}"
    )
    assert 'f.trigger=="http"?{THREADS=tostring(local.concurrency[name])}:{}' in compact["function_env"]
    config = module["resource"]["google_cloudfunctions2_function.fn"]["service_config"][0]
    assert config["min_instance_count"] == "${local.min_instances[each.key]}"
    assert config["max_instance_request_concurrency"] == "${local.concurrency[each.key]}"
    assert config["available_cpu"] == '${local.concurrency[each.key] > 1 ? "1" : null}'
    variables = module["variable"]
    for name, allowed in (("min_instances", sorted(functions)), ("instance_concurrency", http)):
        var = variables[name]
        assert var["type"] == "${map(number)}" and var["default"] == {}, name
        # the validation's list of names is the map's (a renamed or new function must be added there)
        condition = var["validation"][0]["condition"]
        listed = re.search(r"contains\(\[([^\]]*)\]", condition)
        assert listed, condition
        assert sorted(re.findall(r'"(\w+)"', listed.group(1))) == allowed, name
        assert "floor(n) == n" in condition


# --------------------------------------------------------------------------- IAM


def effective_signers(functions: dict[str, Any]) -> set[str]:
    """Who gets the signing key, as local.signers computes it (asserted below)."""
    issuer_deployed = functions["issuer"]["deployed"]
    return {
        name
        for name, f in functions.items()
        if f["deployed"] and (f["signs"] or (f["calls_issuer"] and not issuer_deployed))
    }


def _split_top_level(text: str) -> list[str]:
    """Split an HCL argument list on the commas that are not inside brackets or strings."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p]


def function_env_names(module: dict[str, Any], functions: dict[str, Any]) -> dict[str, set[str]]:
    """The environment variable names each deployed function gets, from local.function_env.

    Evaluates the merge() of conditional maps for `functions` (a local.functions
    map, possibly with other deployed flags); fails on a term it cannot evaluate,
    so a new way of handing out settings must be taught here, in review.
    """
    locals_ = module["locals"]
    expr = re.sub(r"\s", "", locals_["function_env"])
    match = re.fullmatch(r"\$\{\{forname,finlocal\.deployed:name=>merge\((.*)\)\}\}", expr)
    assert match, f"local.function_env is no longer one merge() per deployed function: {expr}"
    issuer_deployed = functions["issuer"]["deployed"]
    deployed = {n for n, f in functions.items() if f["deployed"]}
    lists = {
        "local.signers": effective_signers(functions),
        "local.issuer_callers": {n for n in deployed if functions[n]["calls_issuer"] and issuer_deployed},
    }
    env: dict[str, set[str]] = {name: set() for name in deployed}
    for term in _split_top_level(match.group(1)):
        if term == "local.common_env":
            for names in env.values():
                names |= set(locals_["common_env"])
            continue
        cond = re.fullmatch(r"contains\((.+),name\)\?\{(\w+)=.+\}:\{\}", term)
        http = re.fullmatch(r'f\.trigger=="http"\?\{(\w+)=.+\}:\{\}', term)
        if cond:
            source, var = cond.groups()
            keys_of = re.fullmatch(r"keys\(local\.(\w+)\)", source)
            if keys_of:
                holders = set(locals_[keys_of.group(1)])
            else:
                assert source in lists, f"function_env: cannot evaluate contains({source}, name)"
                holders = lists[source]
            receivers = holders & deployed
        elif http:
            var = http.group(1)
            receivers = {n for n in deployed if functions[n]["trigger"] == "http"}
        else:
            raise AssertionError(f"function_env: cannot evaluate the term {term!r}")
        for name in receivers:
            env[name].add(var)
    return env


def test_function_env_evaluator_sees_each_condition(module: dict[str, Any]) -> None:
    functions = {n: {**f, "deployed": True} for n, f in module["locals"]["functions"].items()}
    env = function_env_names(module, functions)
    common = set(module["locals"]["common_env"])
    assert env["sweep"] == common
    ssh = {"CIRRUS_SSH_USER_KEY", "CIRRUS_SSH_HOST_KEY"}  # the SSH CA keys (tests/infra/test_terraform_ssh.py)
    http = {"CIRRUS_EXTERNAL_URL", "THREADS"}  # THREADS: gunicorn's request threads (test_instance_sizing)
    assert env["issuer"] == common | {"CIRRUS_KEY"} | http | ssh
    assert env["ca_api"] == common | {"CIRRUS_ISSUER_URL"} | http | ssh
    # with the issuer not deployed its callers sign in-process: the key moves to them
    undeployed = {**functions, "issuer": {**functions["issuer"], "deployed": False}}
    env = function_env_names(module, undeployed)
    assert "issuer" not in env
    assert env["ca_api"] == common | {"CIRRUS_KEY"} | http | ssh
    broken = {**module, "locals": {**module["locals"], "function_env": "${{for name, f in local.deployed : "
              "name => merge(local.common_env, contains(local.everyone, name) ? {X = 1} : {})}}"}}
    with pytest.raises(AssertionError, match="cannot evaluate"):
        function_env_names(broken, functions)


@pytest.mark.parametrize("issuer_deployed", [True, False], ids=["issuer-deployed", "issuer-pending"])
def test_ocsp_signs_only_with_the_responder_key(module: dict[str, Any], issuer_deployed: bool) -> None:
    """The public ocsp function holds no role on the CA key, in either rollout state.

    It gets CIRRUS_OCSP_KEY (and signerVerifier on the responder key); so does
    crl_publish, which certifies that key; no other function gets either.
    """
    functions = {
        n: {**f, "deployed": issuer_deployed if n == "issuer" else True}
        for n, f in module["locals"]["functions"].items()
    }
    locals_ = module["locals"]
    # intermediate_key_grants iterates local.signers with local.key_roles (asserted above)
    assert "ocsp" not in effective_signers(functions)
    assert "ocsp" not in locals_["key_roles"]
    env = function_env_names(module, functions)
    assert {n for n, names in env.items() if "CIRRUS_OCSP_KEY" in names} == OCSP_KEY_HOLDERS
    assert "CIRRUS_KEY" not in env["ocsp"]
    assert set(locals_["ocsp_key_roles"]) == OCSP_KEY_HOLDERS
    assert locals_["ocsp_responder_key_uri"] == (
        "cloudkms:${google_kms_crypto_key.ocsp_responder.id}/cryptoKeyVersions/${var.ocsp_responder_key_version}"
    )
    # No grant on a KMS key outside the two tables: one member resource per key, fed by them.
    kms_grants = {
        address: body
        for address, body in module["resource"].items()
        if address.startswith("google_kms_") and "_iam_" in address
    }
    assert set(kms_grants) == {
        "google_kms_crypto_key_iam_member.intermediate",
        "google_kms_crypto_key_iam_member.ocsp_responder",
        "google_kms_crypto_key_iam_member.ssh",
    }
    responder = kms_grants["google_kms_crypto_key_iam_member.ocsp_responder"]
    assert responder["for_each"] == "${local.ocsp_key_grants}"
    assert responder["crypto_key_id"] == "${google_kms_crypto_key.ocsp_responder.id}"
    intermediate = kms_grants["google_kms_crypto_key_iam_member.intermediate"]
    assert intermediate["for_each"] == "${local.intermediate_key_grants}"


def test_least_privilege_table(module: dict[str, Any]) -> None:
    locals_ = module["locals"]
    assert locals_["project_roles"] == EXPECTED_PROJECT_ROLES
    key_grants = {(fn, role) for fn, roles in locals_["key_roles"].items() for role in roles}
    assert key_grants == EXPECTED_KEY_GRANTS
    ocsp_key_grants = {(fn, role) for fn, roles in locals_["ocsp_key_roles"].items() for role in roles}
    assert ocsp_key_grants == EXPECTED_OCSP_KEY_GRANTS
    assert "contains(keys(local.deployed),fn)" in re.sub(r"\s", "", locals_["ocsp_key_grants"])
    assert set(locals_["crl_bucket_roles"].items()) == EXPECTED_BUCKET_GRANTS
    # every grant has a reason in the code, and every reason a grant
    granted = key_grants | ocsp_key_grants | EXPECTED_BUCKET_GRANTS
    assert granted == set(ROLE_NEEDS), f"grants without a ROLE_NEEDS row or the reverse: {granted ^ set(ROLE_NEEDS)}"
    for (fn, role), need in ROLE_NEEDS.items():
        path, _, name = need.partition(": ")
        assert name in (REPO / path).read_text(encoding="utf-8"), f"{fn} {role}: {need} no longer exists"
    assert re.sub(r"\s", "", locals_["signers"]) == (
        "${[forname,finlocal.deployed:nameiff.signs||(f.calls_issuer&&!local.issuer_deployed)]}"
    )
    grants = re.sub(r"\s", "", locals_["intermediate_key_grants"])
    assert "forfninlocal.signers" in grants
    assert "lookup(local.key_roles,fn,local.key_roles.issuer)" in grants


def test_functions_serving_the_crl_mount_can_read_the_bucket(module: dict[str, Any]) -> None:
    """ca_api and acme mount /crl (shared/api/mounts.py), which reads CIRRUS_BLOBS: they need read access."""
    import inspect
    from types import SimpleNamespace

    from shared.api import functions
    from shared.api.mounts import crl, default_mounts

    one_authority = SimpleNamespace(settings=SimpleNamespace(authorities=()))  # no `/<prefix>/` mounts
    assert default_mounts(one_authority)["/crl"] is crl  # type: ignore[arg-type]  # the public app, which ca_api and acme run

    for name in ("ca_api", "acme"):
        assert "_app()" in inspect.getsource(getattr(functions, name)), f"{name} no longer serves the public app"
    readers = set(module["locals"]["crl_bucket_roles"])
    assert {"ca_api", "acme"} <= readers


def test_only_the_issuer_and_crl_publisher_sign_once_the_issuer_is_deployed(
    module: dict[str, Any],
) -> None:
    functions = module["locals"]["functions"]
    everything = {n: {**f, "deployed": True} for n, f in functions.items()}
    assert effective_signers(everything) == SIGNING_FUNCTIONS
    for name in SIGNING_FUNCTIONS:
        assert functions[name]["access"] not in ("public", "authenticated")
    # Transitional state while functions/main.py has no issuer entry point: the
    # issuer's callers sign in-process. Say so loudly rather than hide it.
    current = effective_signers(functions)
    if not functions["issuer"]["deployed"]:
        exposed = sorted(current & PUBLIC_FUNCTIONS)
        print(f"issuer not deployed yet: public functions holding the signing key: {exposed}")
    else:
        assert current <= SIGNING_FUNCTIONS


def test_project_roles_are_limited_to_the_cirrus_database(module: dict[str, Any]) -> None:
    grant = module["resource"]["google_project_iam_member.fn"]
    condition = block(grant, "condition")
    assert "databases/${google_firestore_database.cirrus.name}" in condition["expression"]


def _all_roles(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [r for v in value.values() for r in _all_roles(v)]
    if isinstance(value, list):
        return [r for v in value for r in _all_roles(v)]
    if isinstance(value, str):
        return re.findall(r"roles/[A-Za-z0-9_.]+", value)
    return []


@pytest.mark.parametrize("directory", [MODULE, EXAMPLE], ids=["module", "example"])
def test_no_basic_or_admin_roles_anywhere(directory: Path) -> None:
    parsed = parse_dir(directory)
    roles = set(_all_roles(parsed["resource"])) | set(_all_roles(parsed["locals"]))
    assert not roles & FORBIDDEN_ROLES, f"forbidden roles granted: {roles & FORBIDDEN_ROLES}"
    if directory == MODULE:
        assert "roles/datastore.user" in roles  # the scan did see the grants


def test_public_grants_only_where_intended(module: dict[str, Any]) -> None:
    public = set()
    for address, body in module["resource"].items():
        text = json.dumps(body)
        if "allUsers" in text or "allAuthenticatedUsers" in text:
            public.add(address)
    assert public == ALLOWED_PUBLIC_GRANTS
    run_public = module["resource"]["google_cloud_run_v2_service_iam_member.public"]
    assert run_public["for_each"] == "${local.public_functions}"
    assert 'f.access == "public"' in module["locals"]["public_functions"]
    folder = module["resource"]["google_storage_managed_folder.crl_public"]
    assert folder["name"] == "${local.crl_prefix}"
    assert module["locals"]["crl_prefix"] == "crl/"


def test_issuer_invokers_are_function_accounts_only(module: dict[str, Any]) -> None:
    grants = module["locals"]["invoker_grants"]
    assert '"issuer/${caller}"' in grants
    assert "serviceAccount:${google_service_account.fn[caller].email}" in grants
    assert "var.dashboard_invokers" in grants
    variable = module["variable"]["dashboard_invokers"]
    assert "allUsers" in json.dumps(variable["validation"])  # refused by validation


def test_every_iam_member_names_a_known_function(module: dict[str, Any]) -> None:
    functions = set(module["locals"]["functions"])
    for address, body in module["resource"].items():
        if not address.split(".")[0].endswith("_iam_member"):
            continue
        member = body.get("member", "")
        for ref in re.findall(r'google_service_account\.fn\["?([a-z_.]+)"?\]', member):
            assert ref in functions or ref.startswith("each.") or ref == "caller", (address, ref)


# ------------------------------------------------------------------ data and keys


def test_every_bucket_has_uniform_access_and_versioning(module: dict[str, Any]) -> None:
    buckets = resources_of(module, "google_storage_bucket")
    assert set(buckets) == {"crl", "source"}
    for name, body in buckets.items():
        assert body["uniform_bucket_level_access"] is True, name
        assert block(body, "versioning")["enabled"] is True, name
    assert buckets["source"]["public_access_prevention"] == "enforced"


def test_crl_bucket_lifecycle_bounds_crl_versions_and_orphaned_index_segments(module: dict[str, Any]) -> None:
    """Issue 18: superseded CRL generations and serial-index segments do not stay forever."""
    from shared.validation.serial_index import manifest_name

    rules = [block(r, "condition") for r in resources_of(module, "google_storage_bucket")["crl"]["lifecycle_rule"]]
    assert {"days_since_noncurrent_time": "${var.crl_version_retention_days}"} in rules
    assert {"num_newer_versions": "${var.crl_versions_kept}", "with_state": "ARCHIVED"} in rules
    (segments,) = [r for r in rules if "matches_prefix" in r]
    assert segments["age"] == "${var.serial_index_segment_max_age_days}"
    assert segments["matches_suffix"] == [".bin"]
    assert manifest_name("intermediate").startswith(segments["matches_prefix"][0])  # the segments' folder
    assert not manifest_name("intermediate").endswith(".bin")  # never the manifest itself
    # the backstop may only take segments every certificate in them has outlived
    assert module["variable"]["serial_index_segment_max_age_days"]["default"] > 398


def test_kms_keys_are_hsm_and_cannot_be_destroyed(module: dict[str, Any]) -> None:
    keys = resources_of(module, "google_kms_crypto_key")
    assert set(keys) == {"intermediate", "root", "ocsp_responder", "ssh"}
    for name, body in keys.items():
        assert body["purpose"] == "ASYMMETRIC_SIGN", name
        assert block(body, "lifecycle")["prevent_destroy"] is True, name
    for name in ("intermediate", "root", "ssh"):  # CA keys: HSM, not configurable
        assert block(keys[name], "version_template")["protection_level"] == "HSM", name
    # The responder key signs far more often: its protection level is a choice, HSM by default.
    responder = block(keys["ocsp_responder"], "version_template")
    assert responder["algorithm"] == "EC_SIGN_P256_SHA256"
    assert responder["protection_level"] == "${var.ocsp_responder_key_protection_level}"
    level = module["variable"]["ocsp_responder_key_protection_level"]
    assert level["default"] == "HSM"
    assert "HSM" in json.dumps(level["validation"]) and "SOFTWARE" in json.dumps(level["validation"])
    assert module["variable"]["ocsp_responder_key_version"]["default"] == 1
    assert keys["root"]["count"] == "${var.create_root_key ? 1 : 0}"
    assert module["variable"]["intermediate_key_algorithm"]["default"] == "EC_SIGN_P256_SHA256"
    grants = module["resource"]["google_kms_crypto_key_iam_member.intermediate"]
    assert grants["crypto_key_id"] == "${google_kms_crypto_key.intermediate.id}"
    assert not any(
        "google_kms_crypto_key.root" in json.dumps(b)
        for a, b in module["resource"].items()
        if a.split(".")[0].endswith("_iam_member")
    )


def _index_spec() -> tuple[Path, dict[str, Any]]:
    repo_file = REPO / "shared" / "store" / "firestore_indexes.json"
    path = repo_file if repo_file.is_file() else MODULE / "firestore_indexes.default.json"
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_firestore_native_with_indexes_and_ttl(module: dict[str, Any]) -> None:
    db = module["resource"]["google_firestore_database.cirrus"]
    assert db["type"] == "FIRESTORE_NATIVE"
    assert db["delete_protection_state"] == "DELETE_PROTECTION_ENABLED"
    path, spec = _index_spec()
    # the module finds the same file this test reads
    assert module["locals"]["repo_index_file"].endswith("/shared/store/firestore_indexes.json")
    assert (MODULE / "../../../shared/store/firestore_indexes.json").resolve() == (
        REPO / "shared" / "store" / "firestore_indexes.json"
    )
    assert spec["indexes"], f"{path} declares no composite index"
    for index in spec["indexes"]:
        assert isinstance(index["collectionGroup"], str)
        assert index.get("queryScope", "COLLECTION") in ("COLLECTION", "COLLECTION_GROUP")
        assert len(index["fields"]) >= 2, f"{index} is not composite"
        for field in index["fields"]:
            assert field["fieldPath"]
            assert field.get("order") in ("ASCENDING", "DESCENDING") or "arrayConfig" in field
    ttl = [o for o in spec.get("fieldOverrides", []) if o.get("ttl")]
    assert ttl, f"{path} declares no TTL field"
    assert all(o["fieldPath"] == "expireAt" for o in ttl)
    overrides = module["resource"]["google_firestore_field.override"]
    assert overrides["for_each"] == "${local.field_overrides}"
    assert "ttl_config" in repr(overrides) and "each.value.indexes" in repr(overrides)


def test_fallback_index_file_is_the_store_file() -> None:
    """The module falls back to firestore_indexes.default.json outside this repository: it must not go stale."""
    default = json.loads((MODULE / "firestore_indexes.default.json").read_text(encoding="utf-8"))
    assert default == json.loads((REPO / "shared/store/firestore_indexes.json").read_text(encoding="utf-8"))


def test_scheduler_jobs_target_existing_topics(module: dict[str, Any]) -> None:
    topics = resources_of(module, "google_pubsub_topic")
    jobs = resources_of(module, "google_cloud_scheduler_job")
    assert jobs, "no scheduler job"
    for name, job in jobs.items():
        target = block(job, "pubsub_target")
        match = re.fullmatch(r"\$\{google_pubsub_topic\.(\w+)\[each\.key\]\.id\}", target["topic_name"])
        assert match, f"scheduler job {name} does not target a declared topic"
        topic = topics[match.group(1)]
        assert topic["for_each"] == job["for_each"], "job and topic must iterate the same keys"
        assert job["schedule"] == "${local.schedules[each.key]}"
    assert "events" in topics


def test_crl_schedule_is_every_n_minutes_and_sweep_hourly(module: dict[str, Any]) -> None:
    schedules = module["locals"]["schedules"]
    assert schedules["crl_publish"] == "*/${var.crl_publish_interval_minutes} * * * *"
    assert module["variable"]["sweep_schedule"]["default"] == "0 * * * *"


# OCSP-08: a new certificate must stop reading "unknown" within 15 minutes. The
# responder learns of it from the serial index crl_publish publishes, and an
# instance re-reads that index at most this long after it changes
# (shared/validation/wiring.py, ocsp_endpoint's recheck for object storage).
OCSP08_MINUTES = 15
RESPONDER_RECHECK_MINUTES = 1
PUBLISH_RUN_MARGIN_MINUTES = 2  # a publish run's own duration, with room to spare


@pytest.mark.parametrize("directory", [MODULE, EXAMPLE], ids=["module", "example"])
def test_default_publish_cadence_keeps_ocsp_authoritative_within_15_minutes(directory: Path) -> None:
    variable = parse_dir(directory)["variable"]["crl_publish_interval_minutes"]
    interval = variable["default"]
    assert 60 % interval == 0
    worst_case = interval + RESPONDER_RECHECK_MINUTES + PUBLISH_RUN_MARGIN_MINUTES
    assert worst_case <= OCSP08_MINUTES, (
        f"{directory.name}: crl_publish every {interval} min leaves new certificates 'unknown' "
        f"for up to {worst_case} min (OCSP-08 allows {OCSP08_MINUTES})"
    )
    assert "OCSP-08" in variable["description"], "say why the default is what it is"
    recheck = re.search(
        r"recheck = dt\.timedelta\(seconds=\d+ if .+ else (\d+)\)",
        (REPO / "shared" / "validation" / "wiring.py").read_text(encoding="utf-8"),
    )
    assert recheck, "ocsp_endpoint's object-storage recheck moved: update RESPONDER_RECHECK_MINUTES"
    assert int(recheck.group(1)) <= RESPONDER_RECHECK_MINUTES * 60


def test_public_folder_covers_crls_and_nothing_the_responder_keeps_private() -> None:
    """allUsers reads crl/ only: the serial index and responder document live elsewhere."""
    from shared.validation.partition import blob_name as crl_blob_name
    from shared.validation.responder_cert import blob_name as responder_blob_name
    from shared.validation.serial_index import manifest_name

    public = parse_dir(MODULE)["locals"]["crl_prefix"]
    assert crl_blob_name("intermediate", None).startswith(public)
    assert crl_blob_name("intermediate", 3).startswith(public)
    assert not manifest_name("intermediate").startswith(public)  # the issued-serial index stays private
    assert not responder_blob_name("intermediate").startswith(public)


# ---------------------------------------------------------------- example and docs


@pytest.mark.parametrize("directory", [MODULE, EXAMPLE], ids=["module", "example"])
def test_variables_and_outputs_are_documented(directory: Path) -> None:
    parsed = parse_dir(directory)
    for kind in ("variable", "output"):
        assert parsed[kind], f"{directory} has no {kind}"
        for name, body in parsed[kind].items():
            assert len(body.get("description", "")) > 10, f"{kind} {name} lacks a description"


def test_example_passes_every_required_module_variable(module: dict[str, Any], example: dict[str, Any]) -> None:
    required = {name for name, body in module["variable"].items() if "default" not in body}
    call = example["module"]["cirrus"]
    assert call["source"] == "../../modules/cirrus"
    assert required <= set(call), f"example omits {sorted(required - set(call))}"
    assert set(call) - {"source"} <= set(module["variable"])
    outputs = set(example["output"])
    assert {"ca_url", "crl_bucket", "intermediate_key_id", "function_urls"} <= outputs


def test_module_outputs_are_referenced_correctly(module: dict[str, Any], example: dict[str, Any]) -> None:
    for name, body in example["output"].items():
        match = re.fullmatch(r"\$\{module\.cirrus\.(\w+)\}", body["value"])
        assert match and match.group(1) in module["output"], name


# ----------------------------------------------------------------------- tools


def test_terraform_fmt_check() -> None:
    binary = shutil.which("terraform")
    if binary is None:
        pytest.fail("terraform is not on PATH; .ci/run must provide terraform >= 1.5")
    result = subprocess.run(
        [binary, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"},
    )
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}"


SKIP_RE = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?$")


def test_every_checkov_skip_is_justified() -> None:
    skips = 0
    for path in sorted(TERRAFORM.rglob("*.tf")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            match = SKIP_RE.search(line)
            if match:
                skips += 1
                reason = (match.group(2) or "").strip()
                assert re.fullmatch(r"CKV2?_GCP_\d+", match.group(1)), f"{path}:{number}"
                assert len(reason) >= 30, f"{path}:{number}: skip without a real reason"
    assert skips > 0  # the scan reads the files it should


def _checkov() -> str:
    candidates = [
        os.environ.get("CHECKOV", ""),
        shutil.which("checkov") or "",
        "/opt/checkov-venv/bin/checkov",
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "checkov not found: install it in its own venv "
        "(python -m venv /opt/checkov-venv && /opt/checkov-venv/bin/pip install checkov) "
        "or set CHECKOV to its path"
    )


@pytest.mark.slow
def test_checkov_passes_with_only_justified_skips() -> None:
    binary = _checkov()
    started = time.monotonic()
    result = subprocess.run(
        [
            binary,
            "--directory",
            str(TERRAFORM),
            "--framework",
            "terraform",
            "--skip-download",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "LOG_LEVEL": "ERROR"},
    )
    elapsed = time.monotonic() - started
    assert result.stdout, f"checkov printed nothing (rc={result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"].get("failed_checks", [])]
    skipped = [c for r in reports for c in r["results"].get("skipped_checks", [])]
    passed = [c for r in reports for c in r["results"].get("passed_checks", [])]
    assert not failed, "checkov failures:\n" + "\n".join(
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']}" for c in failed
    )
    assert len(passed) >= 10, "checkov passed almost nothing: did it scan the module?"
    for check in skipped:
        reason = check.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) >= 30, f"{check['check_id']} on {check['resource']} skipped without reason"
    print(f"checkov: {len(passed)} passed, {len(skipped)} skipped in {elapsed:.1f}s")
