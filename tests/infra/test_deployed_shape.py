"""The deployed shape, checked without a project: what only a real `terraform apply` would show.

Three classes of defect that the emulators cannot reveal (issue 19):

- URLs: the addresses a deployed leaf carries (CRL distribution point, AIA OCSP) and the
  address clients are told to use (`ca_url`), derived from the module's own expressions and the
  code's URL builders, must reach a route or object that exists, and the token audience checks of
  `ca_api` and of the issuer it forwards to must accept the host clients mint tokens for.
- First apply on a fresh project: every resource that calls a Google API must wait for that API's
  enablement (plan-shaped: depends_on plus the references Terraform orders by), and names must
  not collide between two deployments that differ only in `name_prefix`.
- Sizing: scheduled functions (crl_publish above all) run one instance at a time; buckets default
  to the deployment's region.

The module's expressions are rendered by substituting known references: a new reference fails the
test until it is taught here, in review.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hcl2
import pytest

from shared.api.stepca import url_map
from shared.validation.partition import blob_name, crl_url, parse_blob_path
from tests.infra.test_terraform import EXAMPLE, MODULE, _unquote, parse_dir

PROJECT, NUMBER, REGION = "pki-prod", "123456789012", "europe-west1"
_REF = re.compile(r"\$\{([^{}]+)\}")


def render(template: str, refs: dict[str, str]) -> str:
    """Substitute each `${ref}` of an HCL string template from `refs` (unknown ones fail)."""

    def one(match: re.Match[str]) -> str:
        ref = match.group(1).strip()
        assert ref in refs, f"teach the test the reference {ref!r} in {template!r}"
        return refs[ref]

    return _REF.sub(one, template)


def for_body(expr: str) -> str:
    """The value template of `{for name, f in local.functions : name => "..."}`."""
    match = re.fullmatch(r'\$\{\{for name, f in local\.functions : name => "(.*)"\}\}', expr.strip())
    assert match, f"not a per-function string map: {expr}"
    return match.group(1)


def function_names(module: dict[str, Any], prefix: str) -> dict[str, str]:
    template = for_body(module["locals"]["function_names"])
    assert template == '${var.name_prefix}-${replace(name, "_", "-")}', template
    return {name: f"{prefix}-{name.replace('_', '-')}" for name in module["locals"]["functions"]}


def own_urls(module: dict[str, Any], prefix: str = "cirrus") -> dict[str, str]:
    template = for_body(module["locals"]["own_urls"])
    names = function_names(module, prefix)
    return {
        name: render(
            template,
            {
                "local.function_names[name]": names[name],
                "data.google_project.this.number": NUMBER,
                "var.region": REGION,
                "var.project_id": PROJECT,
            },
        )
        for name in names
    }


def external_urls(module: dict[str, Any], external_url: str | None = None) -> dict[str, str]:
    """local.external_urls: coalesce(var.external_url, own URL of the function named)."""
    expr = re.sub(r"\s", "", module["locals"]["external_urls"])
    match = re.fullmatch(
        r"\$\{\{forname,finlocal\.functions:name=>coalesce\(var\.external_url,local\.own_urls\[(.+)\]\)\}\}",
        expr,
    )
    assert match, f"local.external_urls changed shape: {expr}"
    index = match.group(1)
    own = own_urls(module)

    def which(name: str) -> str:
        if index == "name":
            return name
        cond = re.fullmatch(r'name=="(\w+)"\?"(\w+)":name', index)
        assert cond, f"teach the test the index {index!r}"
        return cond.group(2) if name == cond.group(1) else name

    return {name: external_url or own[which(name)] for name in own}


@pytest.fixture(scope="module")
def module() -> dict[str, Any]:
    return parse_dir(MODULE)


def output_value(module: dict[str, Any], name: str) -> str:
    return str(module["output"][name]["value"])


# ------------------------------------------------------------------------------- URLs


def test_crl_distribution_point_is_the_published_object(module: dict[str, Any]) -> None:
    """crl_base_url + the code's crl_url() names exactly the object crl_publish writes, in the public folder."""
    bucket = f"{PROJECT}-cirrus-crl"
    base = render(output_value(module, "crl_base_url"), {"google_storage_bucket.crl.name": bucket, "local.crl_prefix": "crl/"})
    origin = f"https://storage.googleapis.com/{bucket}/"
    public_prefix = module["locals"]["crl_prefix"]
    for shard in (None, 0, 3):
        cdp = crl_url(base, "intermediate", shard)
        assert cdp.startswith(origin), cdp
        obj = cdp[len(origin):]
        assert obj == blob_name("intermediate", shard), f"CDP {cdp} names object {obj}, crl_publish writes {blob_name('intermediate', shard)}"
        assert obj.startswith(public_prefix), "the CDP object must be in the allUsers folder"


def test_ca_url_has_no_path_and_every_step_route_resolves(module: dict[str, Any]) -> None:
    """step resolves /root/<sha>, /1.0/sign ... against the host root: the address must have no path."""
    ca_url = external_urls(module)["ca_api"]
    assert output_value(module, "ca_url") == '${local.deployed_external_url["ca_api"]}'
    parts = urlsplit(ca_url)
    assert parts.scheme == "https" and parts.path in ("", "/"), f"ca_url {ca_url} carries a path step would drop"
    assert parts.hostname == f"cirrus-ca-api-{NUMBER}.{REGION}.run.app"
    (check,) = module["variable"]["external_url"]["validation"]
    assert "^https://[^/]+$" in check["condition"], "a custom domain must be a path-less origin too"
    urls = url_map().bind(parts.hostname or "")  # what ca_api serves at its root
    for method, path in [("GET", "/root/" + "ab" * 32), ("GET", "/roots"), ("GET", "/provisioners"),
                         ("POST", "/1.0/sign"), ("POST", "/1.0/renew"), ("POST", "/1.0/revoke"), ("GET", "/health")]:
        urls.match(path, method=method)  # raises NotFound / MethodNotAllowed


@pytest.mark.parametrize("custom", [None, "https://ca.example.com"], ids=["run.app", "custom-domain"])
def test_tokens_for_ca_url_pass_the_audience_checks_of_ca_api_and_the_issuer(
    module: dict[str, Any], custom: str | None
) -> None:
    """`aud` = <ca_url>/1.0/sign; ca_api forwards the request to the issuer, which checks it again."""
    urls = external_urls(module, custom)
    client_host = urlsplit(urls["ca_api"]).hostname
    for checker in ("ca_api", "issuer"):
        # shared.runtime.audience_hosts: dnsNames plus CIRRUS_EXTERNAL_URL's host
        assert urlsplit(urls[checker]).hostname == client_host, f"{checker} would refuse tokens for {client_host}"


def test_aia_ocsp_and_acme_addresses_reach_their_functions(module: dict[str, Any]) -> None:
    urls = external_urls(module)
    assert output_value(module, "ocsp_url") == '${local.deployed_external_url["ocsp"]}'
    assert output_value(module, "acme_directory_base") == '${local.deployed_external_url["acme"]}'
    for name in ("ocsp", "acme"):
        parts = urlsplit(urls[name])
        assert parts.path == "" and parts.hostname == f"cirrus-{name}-{NUMBER}.{REGION}.run.app"
    # the CRL mount of ca_api and acme reads the same objects (parse_blob_path inverts blob_name)
    assert parse_blob_path(blob_name("intermediate", 2)) == ("intermediate", 2)


# ------------------------------------------------------------------- first apply


def _raw_blocks(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every resource and data source, by address."""
    resources: dict[str, Any] = {}
    data: dict[str, Any] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open(encoding="utf-8") as handle:
            parsed = _unquote(hcl2.load(handle))
        for kind, into in (("resource", resources), ("data", data)):
            for block in parsed.get(kind, []):
                for rtype, named in block.items():
                    for name, body in named.items():
                        into[f"{'data.' if kind == 'data' else ''}{rtype}.{name}"] = body
    return resources, data


_ADDRESS = re.compile(r"\b((?:data\.)?google_\w+\.\w+)")
# The API each resource type calls (the resource type's family -> service).
API_OF = {
    "google_kms_": "cloudkms.googleapis.com",
    "google_storage_": "storage.googleapis.com",
    "google_pubsub_": "pubsub.googleapis.com",
    "google_cloud_scheduler_": "cloudscheduler.googleapis.com",
    "google_firestore_": "firestore.googleapis.com",
    "google_cloudfunctions2_": "cloudfunctions.googleapis.com",
    "google_cloud_run_v2_": "run.googleapis.com",
    "google_service_account": "iam.googleapis.com",
    "google_project_iam_": "cloudresourcemanager.googleapis.com",
    "data.google_project": "cloudresourcemanager.googleapis.com",
}
# What building and triggering a 2nd gen function needs besides its own API.
FUNCTION_APIS = {"cloudbuild.googleapis.com", "artifactregistry.googleapis.com", "run.googleapis.com",
                 "eventarc.googleapis.com", "compute.googleapis.com"}


def _locals_text(directory: Path) -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(directory.glob("*.tf")))


def waits_for_enablement(directory: Path) -> dict[str, bool]:
    """Whether each resource is ordered after google_project_service.apis (depends_on or references)."""
    resources, data = _raw_blocks(directory)
    blocks = {**resources, **data}
    locals_src = parse_dir(directory)["locals"]
    edges: dict[str, set[str]] = {}
    for address, body in blocks.items():
        text = repr(body)
        # a reference to a local is a reference to whatever the local refers to
        for name in set(re.findall(r"\blocal\.(\w+)", text)):
            text += repr(locals_src.get(name, ""))
        edges[address] = {m for m in _ADDRESS.findall(text) if m in blocks and m != address}
    ok: dict[str, bool] = {"google_project_service.apis": True}

    def walk(address: str, seen: frozenset[str]) -> bool:
        if address in ok:
            return ok[address]
        result = any(dep not in seen and walk(dep, seen | {dep}) for dep in edges[address])
        ok[address] = result
        return result

    return {address: walk(address, frozenset({address})) for address in blocks}


def test_every_resource_waits_for_api_enablement() -> None:
    waiting = waits_for_enablement(MODULE)
    late = sorted(a for a, ok in waiting.items() if not ok)
    assert not late, f"created before their API is enabled on a fresh project: {late}"


def test_every_api_a_resource_calls_is_enabled() -> None:
    resources, data = _raw_blocks(MODULE)
    apis = set(parse_dir(MODULE)["locals"]["required_apis"])
    for address in [*resources, *data]:
        if address.startswith("google_project_service."):
            continue
        family = next((prefix for prefix in API_OF if address.startswith(prefix)), None)
        assert family, f"{address}: which API does it call? add it to API_OF"
        assert API_OF[family] in apis, f"{address} calls {API_OF[family]}, which the module does not enable"
    assert apis >= FUNCTION_APIS


def test_the_waiting_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "a.tf").write_text(
        'resource "google_project_service" "apis" {\n  service = "pubsub.googleapis.com"\n}\n'
        'resource "google_pubsub_topic" "early" {\n  name = "t"\n}\n'
        'resource "google_pubsub_topic" "late" {\n  name = "u"\n  depends_on = [google_project_service.apis]\n}\n'
        'resource "google_pubsub_topic_iam_member" "m" {\n  topic = google_pubsub_topic.late.name\n}\n',
        encoding="utf-8",
    )
    assert waits_for_enablement(tmp_path) == {
        "google_project_service.apis": True,
        "google_pubsub_topic.early": False,
        "google_pubsub_topic.late": True,
        "google_pubsub_topic_iam_member.m": True,
    }


def test_functions_build_as_their_own_account(module: dict[str, Any]) -> None:
    fn = module["resource"]["google_cloudfunctions2_function.fn"]
    assert fn["build_config"][0]["service_account"] == "${google_service_account.build.id}"
    build_roles = set(module["locals"]["build_roles"])
    assert build_roles == {"roles/logging.logWriter", "roles/artifactregistry.writer"}
    source = module["resource"]["google_storage_bucket_iam_member.build_source"]
    assert source["role"] == "roles/storage.objectViewer"
    assert source["bucket"] == "${google_storage_bucket.source.name}"


# ------------------------------------------------------------- two deployments


def _names(module: dict[str, Any], prefix: str) -> dict[str, str]:
    """The project-unique names (key ring, database, accounts, topics, services) for a prefix."""
    variables = module["variable"]
    key_ring = module["resource"]["google_kms_key_ring.ca"]["name"]
    assert key_ring == '${coalesce(var.key_ring_name, "${var.name_prefix}-ca")}', key_ring
    assert variables["key_ring_name"]["default"] is None
    database = module["locals"]["firestore_database"]
    assert database == (
        '${coalesce(var.firestore_database, var.name_prefix == "cirrus" ? "(default)" : "${var.name_prefix}-db")}'
    ), database
    assert variables["firestore_database"]["default"] is None
    names = {
        "key_ring": f"{prefix}-ca",
        "database": "(default)" if prefix == "cirrus" else f"{prefix}-db",
        "build_account": render(module["resource"]["google_service_account.build"]["account_id"], {"var.name_prefix": prefix}),
        "events_topic": render(module["resource"]["google_pubsub_topic.events"]["name"], {"var.name_prefix": prefix}),
    }
    for fn, name in function_names(module, prefix).items():
        names[f"service/{fn}"] = name
    return names


def test_two_prefixes_share_no_project_unique_name(module: dict[str, Any]) -> None:
    first, second = _names(module, "cirrus"), _names(module, "staging")
    clashes = {k for k in first if first[k] == second[k]}
    assert not clashes, f"two deployments in one project collide on {sorted(clashes)}"
    # every other project-unique name is built from name_prefix (or a function name that is)
    for address, body in module["resource"].items():
        for attribute in ("name", "account_id"):
            value = body.get(attribute)
            if not isinstance(value, str) or address.split(".")[0].endswith("_iam_member"):
                continue
            scoped = any(s in value for s in ("var.name_prefix", "local.function_names", "local.crl_bucket_name",
                                              "local.firestore_database", "local.crl_prefix", "filemd5(",
                                              "key_ring_name"))
            assert scoped, f"{address}.{attribute} = {value} is the same for every deployment"


# --------------------------------------------------------------------- sizing


def test_scheduled_functions_run_one_instance(module: dict[str, Any]) -> None:
    config = module["resource"]["google_cloudfunctions2_function.fn"]["service_config"][0]
    assert config["max_instance_count"] == '${each.value.trigger == "schedule" ? 1 : var.max_instances}'
    assert module["locals"]["functions"]["crl_publish"]["trigger"] == "schedule"


@pytest.mark.parametrize("directory", [MODULE, EXAMPLE], ids=["module", "example"])
def test_bucket_location_defaults_to_the_region(directory: Path) -> None:
    parsed = parse_dir(directory)
    assert parsed["variable"]["crl_bucket_location"]["default"] is None
    if directory == MODULE:
        assert parsed["locals"]["bucket_location"] == "${upper(coalesce(var.crl_bucket_location, var.region))}"
        for name in ("crl", "source"):
            assert parsed["resource"][f"google_storage_bucket.{name}"]["location"] == "${local.bucket_location}"


def test_example_exposes_what_the_docs_tell_users_to_set() -> None:
    example = parse_dir(EXAMPLE)
    call = example["module"]["cirrus"]
    for name in ("external_url", "intermediate_key_version", "ocsp_responder_key_version", "max_instances",
                 "min_instances", "instance_concurrency", "key_ring_name", "firestore_database",
                 "crl_bucket_location"):
        assert name in example["variable"], f"the example has no variable {name}"
        assert call.get(name) == f"${{var.{name}}}", f"the example does not pass {name} to the module"
