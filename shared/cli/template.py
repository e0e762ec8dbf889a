"""`cirrus template render FILE --data JSON [--ssh]`: preview a certificate template.

Renders the template with the same engine issuance uses (Go `text/template` + sprig, as step-ca)
and prints the rendered JSON; a template that fails to parse, calls `fail`, renders invalid JSON or
gives a field the wrong type is reported with its template line and exit status 1. The output is
also mapped onto a certificate as issuance maps it, by the same code: for X.509
`shared.x509.templated.render_leaf` (OIDs, base64 DER values, IP addresses, DNS names, no CA
certificate, a common name or a SAN), with `--ssh` `shared.ssh.templated` (type user or host,
string principals and options, no serial). A template that issuance would refuse is refused here
with the same message (issuance prefixes it with `certificate template: `, and answers a `fail`
with the template's own message only), so a preview that passes renders the same at issuance.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from shared.cli.errors import CLIError
from shared.ssh.templated import templated_ssh
from shared.templates import Template, TemplateError
from shared.templates.fields import decode_rendered

MAX_FILE = 256 * 1024


def register(sub: Any) -> None:
    """Add `cirrus template`."""
    p = sub.add_parser("template", help="work with certificate templates (step-ca syntax)")
    tsub = p.add_subparsers(dest="template_command", metavar="ACTION")
    render = tsub.add_parser("render", help="render a template over data and print the resulting JSON")
    render.add_argument("file", type=Path, help="template file (Go text/template syntax, as step-ca)")
    render.add_argument("--data", default="{}",
                        help="template data as a JSON object, or @FILE to read it from a file (default {})")
    render.add_argument("--ssh", action="store_true", help="an SSH certificate template (default: X.509)")
    render.set_defaults(func=cmd_render)


def _read_text(path: Path, what: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path}: {exc.strerror}") from exc
    if len(data) > MAX_FILE:
        raise CLIError(f"{what} {path} is larger than {MAX_FILE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CLIError(f"{what} {path} is not UTF-8 text") from exc


def _load_data(arg: str) -> dict[str, Any]:
    text = _read_text(Path(arg[1:]), "data file") if arg.startswith("@") else arg
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CLIError(f"--data is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise CLIError("--data must be a JSON object")
    return value


def cmd_render(args: argparse.Namespace) -> int:
    """Render FILE over --data; print the JSON or raise with the template line."""
    from shared.x509.templated import render_leaf  # here: cryptography's x509 only for this command

    text = _read_text(args.file, "template")
    data = _load_data(args.data)
    try:
        template = Template(text, name=args.file.name)
        if args.ssh:  # what issuance would refuse: an unknown type, non-string principals, a serial...
            value = decode_rendered(template.render(data), ssh=True, name=args.file.name)
            templated_ssh(value)
        else:  # issuance's own JSON -> certificate mapping: bad OIDs, base64, IPs, a CA, no names...
            value, _ = render_leaf(template, data)
    except TemplateError as exc:
        if exc.name != args.file.name:
            exc = TemplateError(exc.message, exc.line, args.file.name)
        raise CLIError(str(exc)) from exc
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    return 0
