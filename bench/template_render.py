"""Renders per second of step-ca's default leaf template, and issuance CPU with a template beside the default profile.

Method (fixed, so runs compare):
- "render": step's `DefaultLeafTemplate` (go.step.sm/crypto x509util) over data shaped like
  step-ca's for a JWK-provisioned leaf, on a template parsed once (as issuance does: a
  provisioner's template is parsed at config load), including the JSON decode and field check of
  the output; "parse+render" parses every time. Best of --repeat runs of --n renders, in CPU time.
- "sign" (issue 15's target: under 10 % extra CPU per certificate): four fresh authorities
  (`cirrus init`, EC P-256, SQLite store) whose JWK provisioner has (a) no template (the default
  profile), (b) step's DefaultLeafTemplate, (c) CUSTOM (token claims, templateData, sprig calls;
  its certificate has a second SAN, an O attribute and a policy OID), or (d) no template but a
  token and CSR naming CUSTOM's two SANs: the default profile as close to (c)'s certificate as it
  can come (it has no way to add O or a policy). `POST /1.0/sign` through the full WSGI app in
  process (Werkzeug's test client), one request at a time, tokens and CSRs made before timing.
  CPU is `time.process_time()` around each request, the kinds called in turn request by request
  (so other load on a shared machine falls on each alike; timing whole batches of one kind swung
  the ratio by +-50 % here), the lead rotating each round; each round's ratios are taken within
  the round and the median over --rounds rounds of --sign-n requests per kind is printed.
  "sign_custom_template_extra_percent_vs_same_sans" compares (c) with (d).
- "sign_template_code_*": the template's own share inside those same requests, by perf counters
  (CPU time) around the code that differs between the paths: for templated kinds the template
  data (`template_data`) and `LeafProfile.templated` (render, JSON decode, field mapping, the
  CA's own extensions), for the default profile `LeafProfile.extensions`; the template's own
  cost is their difference, as a share of the default profile's request.
- "leaf_*": the leaf build and signature alone (no token, CSR or store), default profile vs the
  template rendered and mapped onto the same certificate, alternated call by call the same way
  (--n calls per round); "leaf_custom_*" does the same for CUSTOM against the default profile's
  code building CUSTOM's exact content (both SANs, O, the policy extension) by hand, so the
  difference is the template alone. The template data is built as issuance builds it: only the
  keys the template reads (`Template.data_reads`).

Usage: python bench/template_render.py [--n 3000] [--repeat 3] [--sign-n 200] [--rounds 7] > result.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli.init import init_authority
from shared.config import Settings
from shared.runtime import build_services
from shared.templates import Template
from shared.templates.fields import decode_rendered
from shared.x509.profile import (
    Issuer,
    ca_leaf_extensions,
    default_leaf_extensions,
    provisioner_extension,
    sign_certificate,
)
from shared.x509.templated import template_data, templated_leaf
from tests.helpers import make_csr, mint_token, sign_claims
from tests.templates.corpus import DEFAULT_LEAF, x509_data

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)
CUSTOM = """{
	"subject": {"commonName": {{ toJson .Subject.CommonName }}, "organization": {{ toJson .organization }}},
{{- if hasSuffix ".internal" .Subject.CommonName }}{{ fail "internal names are not issued here" }}{{ end }}
	"sans": {{ toJson (append .SANs (dict "type" "dns" "value" (printf "%s.%s" .Token.sub .suffix))) }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["serverAuth", "clientAuth"],
	"policyIdentifiers": ["2.23.140.1.2.1"]
}"""


def _issuer() -> Issuer:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Bench Intermediate")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .sign(key, hashes.SHA256()))
    return Issuer.of(cert, key)


def _best_rate(fn: object, n: int, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(n):
            fn()  # type: ignore[operator]
        elapsed = time.process_time() - start
        best = max(best, n / elapsed)
    return best


def _authority(root: Path, name: str, options: dict[str, Any] | None) -> tuple[Path, Client, Any]:
    d = root / name
    init_authority(d, name="Bench", p2c=1000)
    if options is not None:
        cfg = json.loads((d / "config.json").read_text())
        cfg["authority"]["provisioners"][0]["options"] = options
        (d / "config.json").write_text(json.dumps(cfg))
    services = build_services(Settings.load(d / "config.json"))
    return d, Client(CirrusApp(services, mounts=default_mounts(services))), services


def _post(api: Client, csr: str, token: str) -> None:
    r = api.post("/1.0/sign", json={"csr": csr, "ott": token})
    if r.status_code != 201:
        raise SystemExit(f"sign failed: {r.status_code} {r.get_data(as_text=True)}")


class _Meter:
    """CPU time spent inside a few Authority functions, per kind (the template's own share)."""

    def __init__(self) -> None:
        self.kind = ""
        self.spent: dict[str, float] = {}

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.process_time

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[self.kind] = self.spent.get(self.kind, 0.0) + clock() - start

        return timed


def _interleaved_cpu(kinds: dict[str, Callable[[int], None]], n: int, r: int,
                     meter: _Meter | None = None) -> dict[str, float]:
    """CPU microseconds per call of each kind, the kinds called in turn call by call (so load from
    other processes falls on each alike), the lead rotating with the round `r`."""
    order = list(kinds)
    order = order[r % len(order):] + order[:r % len(order)]
    spent = dict.fromkeys(order, 0.0)
    clock = time.process_time
    for i in range(n):
        for kind in order:
            if meter is not None:
                meter.kind = kind
            start = clock()
            kinds[kind](i)
            spent[kind] += clock() - start
    return {kind: round(spent[kind] / n * 1e6, 1) for kind in kinds}


SECOND_SAN = "app.example.com.svc.example.net"  # the SAN CUSTOM adds for the token's subject


def sign_comparison(n: int, rounds: int) -> dict[str, Any]:
    """CPU per `/1.0/sign` for the default profile, step's default leaf template, CUSTOM and the
    default profile naming CUSTOM's SANs; and the template code's own CPU inside those requests."""
    import shared.authority as authority_module
    import shared.leaf_profile as leaf_profile_module

    options: dict[str, dict[str, Any] | None] = {
        "default_profile": None,
        "step_default_leaf_template": {"x509": {"template": DEFAULT_LEAF}},
        "custom_template": {"x509": {"template": CUSTOM,
                                     "templateData": {"organization": "Example Ops", "suffix": "svc.example.net"}}},
        "default_profile_same_sans": None,
    }
    names = {kind: ["app.example.com", SECOND_SAN] if kind == "default_profile_same_sans" else ["app.example.com"]
             for kind in options}
    csrs = {kind: make_csr("app.example.com", names[kind])[0] for kind in options}
    meter = _Meter()
    profile = leaf_profile_module.LeafProfile
    patched = {"templated": profile.templated, "extensions": profile.extensions}
    template_data_fn = authority_module.template_data
    per_round: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        made = {kind: _authority(Path(tmp), kind, opts) for kind, opts in options.items()}
        for kind, (d, api, _) in made.items():  # warm: imports, caches, SQLite pages
            for _ in range(20):
                _post(api, csrs[kind], mint_token(d, sign_claims("app.example.com", names[kind])))
        for attr, fn in patched.items():
            setattr(profile, attr, meter.wrap(fn))
        authority_module.template_data = meter.wrap(template_data_fn)  # type: ignore[assignment]
        try:
            for r in range(rounds):
                tokens = {kind: [mint_token(d, sign_claims("app.example.com", names[kind])) for _ in range(n)]
                          for kind, (d, _, _) in made.items()}
                calls: dict[str, Callable[[int], None]] = {
                    kind: (lambda i, api=api, ts=tokens[kind], csr=csrs[kind]: _post(api, csr, ts[i]))  # type: ignore[misc]
                    for kind, (_, api, _) in made.items()}
                per_round.append(_interleaved_cpu(calls, n, r, meter))
        finally:
            for attr, fn in patched.items():
                setattr(profile, attr, fn)
            authority_module.template_data = template_data_fn  # type: ignore[assignment]
        for _, _, services in made.values():
            services.close()
    requests = n * rounds
    code = {kind: round(meter.spent.get(kind, 0.0) / requests * 1e6, 1) for kind in options}
    out: dict[str, Any] = {"sign_requests_per_round": n, "sign_rounds": per_round}
    out["sign_default_profile_cpu_us"] = round(statistics.median(r["default_profile"] for r in per_round), 1)
    for kind in ("step_default_leaf_template", "custom_template", "default_profile_same_sans"):
        out[f"sign_{kind}_cpu_us"] = round(statistics.median(r[kind] for r in per_round), 1)
        extra = statistics.median(r[kind] / r["default_profile"] - 1 for r in per_round)
        out[f"sign_{kind}_extra_percent"] = round(100 * extra, 1)
    same = statistics.median(r["custom_template"] / r["default_profile_same_sans"] - 1 for r in per_round)
    out["sign_custom_template_extra_percent_vs_same_sans"] = round(100 * same, 1)
    # The template's own share: its code (data, render, decode, mapping) less the default profile's
    # extension building, per request, against the whole default-profile request.
    out["sign_template_code_cpu_us"] = code
    base = out["sign_default_profile_cpu_us"]
    for kind in ("step_default_leaf_template", "custom_template"):
        own = code[kind] - code["default_profile"]
        out[f"sign_{kind}_own_cpu_us"] = round(own, 1)
        out[f"sign_{kind}_own_percent"] = round(100 * own / base, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sign-n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    data = x509_data()
    template = Template(DEFAULT_LEAF, "leaf")

    def render() -> None:
        decode_rendered(template.render(data), ssh=False)

    def parse_and_render() -> None:
        decode_rendered(Template(DEFAULT_LEAF, "leaf").render(data), ssh=False)

    issuer = _issuer()
    public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    names: list[x509.GeneralName] = [x509.DNSName("app.example.com"), x509.DNSName("api.example.com")]
    prov = provisioner_extension("JWK", "admin", "kid-1")
    urls = {"crl_url": "http://ca.test/crl/1.crl", "ocsp_url": "http://ca.test/ocsp",
            "ca_issuers_url": "http://ca.test/int.crt"}
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example.com")])

    def leaf_default() -> None:
        exts = default_leaf_extensions(public_key=public_key, san=x509.SubjectAlternativeName(names),
                                       san_critical=False, provisioner=prov, **urls)
        sign_certificate(issuer, subject=subject, public_key=public_key, serial=0x1234567890ABCDEF,
                         not_before=NOW, not_after=NOW + dt.timedelta(hours=24), extensions=exts)

    def leaf_template() -> None:
        data = template_data("app.example.com", names, rsa_key=False, reads=template.data_reads)  # as issuance
        leaf = templated_leaf(decode_rendered(template.render(data), ssh=False))
        exts = [*leaf.extensions, *ca_leaf_extensions(provisioner=prov, **urls)]
        sign_certificate(issuer, subject=leaf.subject, public_key=public_key, serial=0x1234567890ABCDEF,
                         not_before=NOW, not_after=NOW + dt.timedelta(hours=24), extensions=exts)

    custom = Template(CUSTOM, "custom")
    custom_names: list[x509.GeneralName] = [x509.DNSName("app.example.com"), x509.DNSName(SECOND_SAN)]
    custom_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "app.example.com"),
                                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Ops")])
    custom_claims = sign_claims("app.example.com", ["app.example.com"])
    custom_extra = {"organization": "Example Ops", "suffix": "svc.example.net"}

    def leaf_custom_by_hand() -> None:
        exts = default_leaf_extensions(public_key=public_key, san=x509.SubjectAlternativeName(custom_names[:1]),
                                       san_critical=False, provisioner=prov, **urls)
        exts = [x509.Extension(e.oid, e.critical, x509.SubjectAlternativeName(custom_names))
                if e.oid == x509.SubjectAlternativeName.oid else e for e in exts]
        policy = x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)])
        exts.append(x509.Extension(policy.oid, False, policy))
        sign_certificate(issuer, subject=custom_subject, public_key=public_key, serial=0x1234567890ABCDEF,
                         not_before=NOW, not_after=NOW + dt.timedelta(hours=24), extensions=exts)

    def leaf_custom_template() -> None:
        data = template_data("app.example.com", names[:1], rsa_key=False, token=custom_claims,
                             extra=custom_extra, reads=custom.data_reads)  # as issuance builds it
        leaf = templated_leaf(decode_rendered(custom.render(data), ssh=False))
        exts = [*leaf.extensions, *ca_leaf_extensions(provisioner=prov, **urls)]
        sign_certificate(issuer, subject=leaf.subject, public_key=public_key, serial=0x1234567890ABCDEF,
                         not_before=NOW, not_after=NOW + dt.timedelta(hours=24), extensions=exts)

    render_rate = _best_rate(render, args.n, args.repeat)
    parse_rate = _best_rate(parse_and_render, args.n, args.repeat)
    # Interleaved rounds: each round times both builds (CPU time), the extra is taken within a round.
    leaf_rounds = []
    for r in range(args.rounds):
        row = _interleaved_cpu({"default": lambda _: leaf_default(), "template": lambda _: leaf_template()}, args.n, r)
        leaf_rounds.append((row["default"], row["template"]))
    custom_rounds = []
    for r in range(args.rounds):
        row = _interleaved_cpu({"hand": lambda _: leaf_custom_by_hand(), "template": lambda _: leaf_custom_template()},
                               args.n, r)
        custom_rounds.append((row["hand"], row["template"]))
    result: dict[str, Any] = {
        "benchmark": "template_render",
        "template": "step DefaultLeafTemplate",
        "renders": args.n,
        "repeat": args.repeat,
        "renders_per_second": round(render_rate, 1),
        "microseconds_per_render": round(1e6 / render_rate, 1),
        "parse_and_renders_per_second": round(parse_rate, 1),
        "leaf_default_profile_cpu_us": round(statistics.median(d for d, _ in leaf_rounds), 1),
        "leaf_default_template_cpu_us": round(statistics.median(t for _, t in leaf_rounds), 1),
        "leaf_template_extra_cpu_us": round(statistics.median(t - d for d, t in leaf_rounds), 1),
        "leaf_custom_by_hand_cpu_us": round(statistics.median(d for d, _ in custom_rounds), 1),
        "leaf_custom_template_cpu_us": round(statistics.median(t for _, t in custom_rounds), 1),
        "leaf_custom_template_extra_cpu_us": round(statistics.median(t - d for d, t in custom_rounds), 1),
    }
    result.update(sign_comparison(args.sign_n, args.rounds))
    result["python"] = platform.python_version()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
