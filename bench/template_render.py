"""Renders per second of step-ca's default leaf template, and a leaf's CPU with a template vs the default profile.

Method: the template text is step's `DefaultLeafTemplate` (go.step.sm/crypto x509util), the data
is shaped like step-ca's for a JWK-provisioned leaf (subject, two DNS SANs, token claims, the CSR
with an EC key). "render" times `Template.render` on a template parsed once (what issuance does
with a provisioner's template, parsed at config load) including the JSON decode and field check of
the output; "parse+render" parses every time. "leaf_*" builds and signs a whole leaf (P-256 issuer
and key): the default profile, and step's default leaf template rendered and mapped onto the same
certificate (issue 15's target: under 10 % extra per certificate; this compares the leaf build and
signature alone, so the share of a whole /sign request, with token checks and the store, is lower).
Each rate is the best of --repeat runs on one core; the leaf comparison alternates the two builds
round by round and reports the median of the per-round ratios.

Usage: python bench/template_render.py [--n 5000] [--repeat 3] > result.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

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
from tests.templates.corpus import DEFAULT_LEAF, x509_data

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


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
        start = time.perf_counter()
        for _ in range(n):
            fn()  # type: ignore[operator]
        elapsed = time.perf_counter() - start
        best = max(best, n / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
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
        data = template_data("app.example.com", names, rsa_key=False)
        leaf = templated_leaf(decode_rendered(template.render(data), ssh=False))
        exts = [*leaf.extensions, *ca_leaf_extensions(provisioner=prov, **urls)]
        sign_certificate(issuer, subject=leaf.subject, public_key=public_key, serial=0x1234567890ABCDEF,
                         not_before=NOW, not_after=NOW + dt.timedelta(hours=24), extensions=exts)

    render_rate = _best_rate(render, args.n, args.repeat)
    parse_rate = _best_rate(parse_and_render, args.n, args.repeat)
    # Interleaved rounds on a shared machine: each round times both, the ratio is taken within a round.
    ratios: list[float] = []
    default_rate = template_rate = 0.0
    for _ in range(args.repeat):
        d = _best_rate(leaf_default, args.n, 1)
        t = _best_rate(leaf_template, args.n, 1)
        ratios.append(d / t)
        default_rate, template_rate = max(default_rate, d), max(template_rate, t)
    ratios.sort()
    median_ratio = ratios[len(ratios) // 2]
    print(json.dumps({
        "benchmark": "template_render",
        "template": "step DefaultLeafTemplate",
        "renders": args.n,
        "repeat": args.repeat,
        "renders_per_second": round(render_rate, 1),
        "microseconds_per_render": round(1e6 / render_rate, 1),
        "parse_and_renders_per_second": round(parse_rate, 1),
        "leaf_default_profile_us": round(1e6 / default_rate, 1),
        "leaf_default_template_us": round(1e6 / template_rate, 1),
        "leaf_template_extra_percent_median_round": round(100 * (median_ratio - 1), 1),
        "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()
