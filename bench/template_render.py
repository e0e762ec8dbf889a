"""Renders per second of step-ca's default leaf template (and the cost of parsing it).

Method: the template text is step's `DefaultLeafTemplate` (go.step.sm/crypto x509util), the data
is shaped like step-ca's for a JWK-provisioned leaf (subject, two DNS SANs, token claims, the CSR
with an EC key). "render" times `Template.render` on a template parsed once (what issuance does
with a provisioner's template, parsed at config load) including the JSON decode and field check of
the output; "parse+render" parses every time. Each figure is the best of --repeat runs of --n
renders on one core.

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

from shared.templates import Template
from shared.templates.fields import decode_rendered
from tests.templates.corpus import DEFAULT_LEAF, x509_data


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

    render_rate = _best_rate(render, args.n, args.repeat)
    parse_rate = _best_rate(parse_and_render, args.n, args.repeat)
    print(json.dumps({
        "benchmark": "template_render",
        "template": "step DefaultLeafTemplate",
        "renders": args.n,
        "repeat": args.repeat,
        "renders_per_second": round(render_rate, 1),
        "microseconds_per_render": round(1e6 / render_rate, 1),
        "parse_and_renders_per_second": round(parse_rate, 1),
        "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()
