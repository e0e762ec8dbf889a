"""Template/data pairs for the differential suite: step-ca's own templates, documented examples and
a generated corpus over every construct and function the engine supports (errors included).

`now` and `uuidv4` are non-deterministic and therefore left out; they have their own tests.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

# --- step-ca's default templates (go.step.sm/crypto x509util/templates.go, sshutil/templates.go) ---------

STEP_SOURCES = Path("/usr/share/gocode/src/go.step.sm/crypto")

DEFAULT_LEAF = """{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},
{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
	"keyUsage": ["keyEncipherment", "digitalSignature"],
{{- else }}
	"keyUsage": ["digitalSignature"],
{{- end }}
	"extKeyUsage": ["serverAuth", "clientAuth"]
}"""

DEFAULT_IID_LEAF = """{
	"subject": {"commonName": {{ toJson .Insecure.CR.Subject.CommonName }}},
{{- if .SANs }}
	"sans": {{ toJson .SANs }},
{{- else }}
	"dnsNames": {{ toJson .Insecure.CR.DNSNames }},
	"emailAddresses": {{ toJson .Insecure.CR.EmailAddresses }},
	"ipAddresses": {{ toJson .Insecure.CR.IPAddresses }},
	"uris": {{ toJson .Insecure.CR.URIs }},
{{- end }}
{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
	"keyUsage": ["keyEncipherment", "digitalSignature"],
{{- else }}
	"keyUsage": ["digitalSignature"],
{{- end }}
	"extKeyUsage": ["serverAuth", "clientAuth"]
}"""

DEFAULT_ADMIN_LEAF = """{
	"subject": {{ toJson .Insecure.CR.Subject }},
	"dnsNames": {{ toJson .Insecure.CR.DNSNames }},
	"emailAddresses": {{ toJson .Insecure.CR.EmailAddresses }},
	"ipAddresses": {{ toJson .Insecure.CR.IPAddresses }},
	"uris": {{ toJson .Insecure.CR.URIs }},
{{- if typeIs "*rsa.PublicKey" .Insecure.CR.PublicKey }}
	"keyUsage": ["keyEncipherment", "digitalSignature"],
{{- else }}
	"keyUsage": ["digitalSignature"],
{{- end }}
	"extKeyUsage": ["serverAuth", "clientAuth"]
}"""

DEFAULT_INTERMEDIATE = """{
	"subject": {{ toJson .Subject }},
	"keyUsage": ["certSign", "crlSign"],
	"basicConstraints": {
		"isCA": true,
		"maxPathLen": 0
	}
}"""

DEFAULT_ROOT = """{
	"subject": {{ toJson .Subject }},
	"issuer": {{ toJson .Subject }},
	"keyUsage": ["certSign", "crlSign"],
	"basicConstraints": {
		"isCA": true,
		"maxPathLen": 1
	}
}"""

CERTIFICATE_REQUEST = "{{ toJson .Insecure.CR }}"

DEFAULT_ATTESTED_LEAF = DEFAULT_LEAF.replace('["serverAuth", "clientAuth"]', '["clientAuth"]')

SSH_DEFAULT = """{
	"type": {{ toJson .Type }},
	"keyId": {{ toJson .KeyID }},
	"principals": {{ toJson .Principals }},
	"extensions": {{ toJson .Extensions }},
	"criticalOptions": {{ toJson .CriticalOptions }}
}"""

SSH_ADMIN = """{
	"type": {{ toJson .Insecure.CR.Type }},
	"keyId": {{ toJson .Insecure.CR.KeyID }},
	"principals": {{ toJson .Insecure.CR.Principals }}
{{- if eq .Insecure.CR.Type "user" }}
	, "extensions": {{ toJson .Extensions }},
	"criticalOptions": {{ toJson .CriticalOptions }}
{{- end }}
}"""

SSH_IID = """{
	"type": {{ toJson .Type }},
	"keyId": {{ toJson .KeyID }},
{{- if .Insecure.CR.Principals }}
	"principals": {{ toJson .Insecure.CR.Principals }},
{{- else }}
	"principals": {{ toJson .Principals }},
{{- end }}
	"extensions": {{ toJson .Extensions }}
}"""

SSH_CERTIFICATE_REQUEST = """{
	"type": {{ toJson .Insecure.CR.Type }},
	"keyId": {{ toJson .Insecure.CR.KeyID }},
	"principals": {{ toJson .Insecure.CR.Principals }}
{{- if eq .Insecure.CR.Type "user" }}
	, "extensions": {
		"permit-X11-forwarding":   "",
		"permit-agent-forwarding": "",
		"permit-port-forwarding":  "",
		"permit-pty":              "",
		"permit-user-rc":          ""
	}
{{- end }}
}"""

X509_DEFAULTS = {
    "leaf": DEFAULT_LEAF, "iid-leaf": DEFAULT_IID_LEAF, "admin-leaf": DEFAULT_ADMIN_LEAF,
    "intermediate": DEFAULT_INTERMEDIATE, "root": DEFAULT_ROOT, "certificate-request": CERTIFICATE_REQUEST,
    "attested-leaf": DEFAULT_ATTESTED_LEAF,
}
SSH_DEFAULTS = {"default": SSH_DEFAULT, "admin": SSH_ADMIN, "iid": SSH_IID, "certificate-request": SSH_CERTIFICATE_REQUEST}

# Documented examples (smallstep docs: "Configuring step-ca templates", "Templates" for SSH).
DOCUMENTED = [
    # Leaf with the e-mail from the OIDC token as the subject.
    """{
	"subject": {"commonName": {{ toJson .Token.email }}},
	"emailAddresses": {{ toJson .Token.email }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"]
}""",
    # Refuse requests with more than one SAN, and use templateData from the provisioner.
    """{{- if gt (len .SANs) 1 }}{{ fail "only one SAN is allowed" }}{{ end -}}
{
	"subject": {"commonName": {{ toJson .Subject.CommonName }}, "organization": {{ toJson .organization }}},
	"sans": {{ toJson .SANs }},
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["serverAuth"]
}""",
    # Intermediate with name constraints and a custom path length from templateData.
    """{
	"subject": {{ toJson .Subject }},
	"keyUsage": ["certSign", "crlSign"],
	"basicConstraints": {"isCA": true, "maxPathLen": {{ .maxPathLen }}},
	"nameConstraints": {"critical": true, "permittedDNSDomains": {{ toJson .permittedDNSDomains }}}
}""",
    # User data from `step ca certificate --set`.
    """{
	"subject": {{ toJson .Subject }},
	"sans": {{ toJson .SANs }},
{{- if .Insecure.User.ou }}
	"subject": {"commonName": {{ toJson .Subject.CommonName }}, "organizationalUnit": {{ toJson .Insecure.User.ou }}},
{{- end }}
	"keyUsage": ["digitalSignature"]
}""",
    # Webhook data in an extension-free leaf.
    """{
	"subject": {"commonName": {{ toJson .Webhooks.people.name }}},
	"sans": [{"type": "email", "value": {{ toJson .Webhooks.people.email }}}],
	"keyUsage": ["digitalSignature"],
	"extKeyUsage": ["clientAuth"]
}""",
    # SSH user certificate with principals from the token's e-mail local part.
    """{
	"type": {{ toJson .Type }},
	"keyId": {{ toJson .KeyID }},
	"principals": {{ toJson (list (splitList "@" .Token.email | first) .Token.email) }},
	"extensions": {{ toJson .Extensions }},
	"criticalOptions": {{ toJson .CriticalOptions }}
}""",
    # SSH host certificate with a force-command from templateData.
    """{
	"type": {{ toJson .Type }},
	"keyId": {{ toJson .KeyID }},
	"principals": {{ toJson .Principals }},
	"criticalOptions": {"force-command": {{ toJson .forceCommand }}}
}""",
    # Groups from the token mapped onto organizational units.
    """{
	"subject": {
		"commonName": {{ toJson .Subject.CommonName }},
		"organizationalUnit": [{{ range $i, $g := .Token.groups }}{{ if $i }}, {{ end }}{{ toJson $g }}{{ end }}]
	},
	"sans": {{ toJson .SANs }}
}""",
    # Regex checks on the requested names.
    """{{- range .SANs }}{{ if not (regexMatch "^[a-z0-9.-]+\\\\.example\\\\.com$" .value) }}{{ fail (printf "%s is not allowed" .value) }}{{ end }}{{ end -}}
{"subject": {{ toJson .Subject }}, "sans": {{ toJson .SANs }}}""",
]


def x509_data(rsa: bool = False, sans: int = 2, user: dict[str, Any] | None = None) -> dict[str, Any]:
    """Template data shaped like step-ca's for an X.509 request (the public key as a JSON value)."""
    san_list = [{"type": "dns", "value": f"host{i}.example.com"} for i in range(sans)]
    return {
        "Subject": {"commonName": "host0.example.com", "organization": ["Example"]},
        "SANs": san_list,
        "Token": {"sub": "host0.example.com", "email": "jane@example.com", "groups": ["admins", "ops"],
                  "iat": 1700000000, "nbf": 1700000000},
        "Insecure": {
            "CR": {
                "Subject": {"CommonName": "host0.example.com", "Organization": ["Example"]},
                "DNSNames": [s["value"] for s in san_list], "EmailAddresses": None, "IPAddresses": ["10.0.0.1"],
                "URIs": [], "PublicKey": {"kty": "RSA" if rsa else "EC"}, "PublicKeyAlgorithm": "RSA" if rsa else "ECDSA",
            },
            "User": user or {},
        },
        "Webhooks": {"people": {"name": "Jane Doe", "email": "jane@example.com"}},
        "organization": "Example Inc",
        "maxPathLen": 0,
        "permittedDNSDomains": [".example.com", "example.com"],
    }


def ssh_data(cert_type: str = "user") -> dict[str, Any]:
    """Template data shaped like step-ca's for an SSH request."""
    return {
        "Type": cert_type, "KeyID": "jane@example.com", "Principals": ["jane", "jane@example.com"],
        "Extensions": {"permit-X11-forwarding": "", "permit-agent-forwarding": "", "permit-port-forwarding": "",
                       "permit-pty": "", "permit-user-rc": ""} if cert_type == "user" else {},
        "CriticalOptions": {},
        "Token": {"email": "jane@example.com", "sub": "jane"},
        "Insecure": {"CR": {"Type": cert_type, "KeyID": "jane", "Principals": ["jane"]}, "User": {}},
        "forceCommand": "/usr/bin/true",
    }


def ssh_data_as_issued(cert_type: str = "user", request_principals: list[str] | None = None) -> dict[str, Any]:
    """SSH data exactly as step-ca's CreateTemplateData leaves it (and Cirrus's ssh_template_data):
    no `.CriticalOptions`, nil `.Extensions` for hosts, no `.Insecure.User` without request data."""
    return {
        "Type": cert_type, "KeyID": "web1", "Principals": ["web1.internal", "10.0.0.7"],
        "Extensions": {"permit-X11-forwarding": "", "permit-agent-forwarding": "", "permit-port-forwarding": "",
                       "permit-pty": "", "permit-user-rc": ""} if cert_type == "user" else None,
        "Token": {"sub": "web1"},
        "Insecure": {"CR": {"Type": cert_type, "KeyID": "", "Principals": request_principals}},
    }


def fixed_cases() -> list[tuple[str, Any]]:
    """Step-ca's default templates and the documented examples over several data sets."""
    cases: list[tuple[str, Any]] = []
    for text in X509_DEFAULTS.values():
        for data in (x509_data(), x509_data(rsa=True), x509_data(sans=0), x509_data(user={"ou": "eng"})):
            cases.append((text, data))
    for text in SSH_DEFAULTS.values():
        for data in (ssh_data("user"), ssh_data("host"), ssh_data_as_issued("user"), ssh_data_as_issued("host"),
                     ssh_data_as_issued("host", ["web1.internal"])):
            cases.append((text, data))
    for text in DOCUMENTED:
        for data in (x509_data(), x509_data(sans=1), x509_data(user={"ou": "eng"}), ssh_data()):
            cases.append((text, data))
    return cases


# --- the generated corpus --------------------------------------------------------------------------

DATA: dict[str, Any] = {
    "str": "Hello, World", "lower": "abc", "empty": "", "spaces": "  padded \t\n", "num": 42, "neg": -7,
    "zero": 0, "float": 3.25, "big": 1000000, "small": 0.0001, "t": True, "f": False, "null": None,
    "list": [1, 2, 3], "strs": ["b", "a", "c"], "mixed": ["x", 1, True, None, 2.5], "nolist": [],
    "map": {"b": 2, "a": "one", "c": [1, 2]}, "nomap": {}, "nested": {"x": {"y": {"z": "deep"}}},
    "html": "<a href=\"x\">&'</a>", "unicode": "héllo wörld ✓", "dot.key": "dotted",
    "csv": "a,b,,c", "email": "jane.doe@example.com", "b64": "aGVsbG8=", "json": "{\"a\":[1,2,{\"b\":null}]}",
    "numstr": "123", "hexstr": "0x1F", "floatstr": "12.0", "path": "/usr/local/bin",
    "SANs": [{"type": "dns", "value": "a.example.com"}, {"type": "ip", "value": "10.0.0.1"}],
}

VALUES = [
    ".str", ".lower", ".empty", ".spaces", ".num", ".neg", ".zero", ".float", ".big", ".small", ".t", ".f",
    ".null", ".missing", ".list", ".strs", ".mixed", ".nolist", ".map", ".nomap", ".nested", ".nested.x.y.z",
    ".map.a", ".map.c", ".html", ".unicode", ".csv", ".email", ".b64", ".json", ".numstr", ".hexstr",
    ".floatstr", ".path", ".SANs", ".", "$", "$.str", "nil", "true", "false", "0", "1", "-3", "17", "2.5",
    "1e3", "0x10", "'a'", '"text"', '""', '"a.b.c"', "`raw\\n`", "(list 1 2)", '(dict "k" "v")',
    ".missing.deeper", ".str.x", ".null.x", "(index .list 0)",
]
STRINGS = ['"abc"', '"Hello, World"', '""', '" x "', '"a,b,c"', '"."', '","', '"@"', '"l"', '"xyz"',
           ".str", ".lower", ".empty", ".spaces", ".csv", ".email", ".unicode", ".html", ".numstr",
           ".path", ".b64", ".json", ".hexstr", ".floatstr"]
REGEXES = ['"[a-z]+"', '"^H"', '"(\\\\w+)@(\\\\w+)"', '"o"', '"l+"', '"(?P<first>\\\\w)"', '"[0-9]*"',
           '"("', '"x*"', '"\\\\s+"', '"^$"', '"(?i)hello"', '"a|b"']
REPLS = ['"X"', '"$1"', '"${1}-"', '"$first!"', '"$$"', '""', '"<$0>"', '"${first}"']
INTS = ["0", "1", "2", "3", "-1", "10", ".num", ".neg", ".zero", "(len .list)", '"5"', ".float", ".numstr",
        ".hexstr", ".floatstr", ".null", ".t", "2.5", ".missing"]
LISTS = [".list", ".strs", ".mixed", ".nolist", "(list 1 \"a\" 2.5)", "(splitList \",\" .csv)", ".SANs",
         "(until 4)", ".map", ".str", ".null", ".missing"]
MAPS = [".map", ".nomap", ".nested", "(dict \"a\" 1 \"b\" (list 1 2))", ".nested.x", ".str", ".null", ".missing"]

FUNC_CALLS: list[str] = [
    "toJson {v}", "toRawJson {v}", "fromJson {s}", "default {v} {v}", "default {v}", "empty {v}",
    "coalesce {v} {v} {v}", "ternary {v} {v} {v}", "lower {s}", "upper {s}", "title {s}", "trim {s}",
    "trimAll {s} {s}", "trimPrefix {s} {s}", "trimSuffix {s} {s}", "replace {s} {s} {s}", "split {s} {s}",
    "splitList {s} {s}", "join {s} {l}", "hasPrefix {s} {s}", "hasSuffix {s} {s}", "contains {s} {s}",
    "regexMatch {r} {s}", "regexFind {r} {s}", "regexReplaceAll {r} {s} {p}", "b64enc {s}", "b64dec {s}",
    "sha256sum {s}", "dict {v} {v} {v} {v}", "dict {v} {v} {v}", "list {v} {v}", "append {l} {v}",
    "first {l}", "last {l}", "has {v} {l}", "keys {m} | sortAlpha", "pluck {s} {m} {m}", "get {m} {s}",
    "set (dict) {s} {v}", "unset (dict \"a\" 1 \"b\" 2) {s}", "until {i}", "seq {i}", "seq {i} {i}",
    "seq {i} {i} {i}", "add {i} {i}", "add {i} {i} {i}", "sub {i} {i}", "mul {i} {i}", "div {i} {i}",
    "mod {i} {i}", "max {i} {i} {i}", "min {i} {i}", "toString {v}", "atoi {s}", "int {v}", "typeOf {v}",
    "typeIs {s} {v}", "kindIs {s} {v}", "kindOf {v}", "quote {v} {v}", "squote {v}", "not {v}", "and {v} {v}",
    "or {v} {v}", "and {v} {v} {v}", "eq {v} {v}", "ne {v} {v}", "lt {v} {v}", "le {v} {v}", "gt {v} {v}",
    "ge {v} {v}", "eq {v} {v} {v}", "index {l} {i}", "index {m} {s}", "index {v}", "len {v}",
    "slice {s} {i}", "slice {s} {i} {i}", "slice {l} {i} {i}", "print {v} {v}", "println {v} {v}",
    "html {v}", "js {v}", "urlquery {v}", "print {v} {v} {v}", "add1 {i}", "sortAlpha {l}",
    "date \"2006-01-02 15:04:05\" 1700000000", 'date "Mon Jan 2 2006" 0',
]
PRINTF_VERBS = ["%s", "%d", "%v", "%q", "%x", "%X", "%t", "%f", "%.2f", "%5.2f", "%-10s|", "%10s|", "%05d",
                "%+d", "%e", "%g", "%T", "%o", "%b", "%c", "%U", "%#o", "%x", "%8.3f", "%-5d|", "%3s|", "%.1s",
                "%%", "%!", "%d %d", "%s", "% x", "%#v", "%*d", "%.3g", "%G", "%E"]
TYPE_NAMES = ['"string"', '"float64"', '"int"', '"int64"', '"bool"', '"[]interface {}"', '"map"', '"slice"',
              '"map[string]interface {}"', '"<nil>"', '"invalid"', '"[]string"', '"*rsa.PublicKey"']


def _fill(rng: random.Random, pattern: str) -> str:
    out = pattern
    for key, pool in (("{v}", VALUES), ("{s}", STRINGS), ("{r}", REGEXES), ("{p}", REPLS), ("{i}", INTS),
                      ("{l}", LISTS), ("{m}", MAPS)):
        while key in out:
            choice = rng.choice(pool if key != "{s}" or rng.random() > 0.1 else TYPE_NAMES)
            out = out.replace(key, choice, 1)
    return out


def _expr(rng: random.Random) -> str:
    return _fill(rng, rng.choice(FUNC_CALLS)) if rng.random() < 0.7 else rng.choice(VALUES)


def _construct(rng: random.Random) -> str:
    e = _expr(rng)
    kind = rng.randrange(22)
    if kind == 0:
        return f"{{{{ {e} }}}}"
    if kind == 1:
        return f"{{{{ if {e} }}}}yes{{{{ else }}}}no{{{{ end }}}}"
    if kind == 2:
        return f"{{{{ if {e} }}}}A{{{{ else if {_expr(rng)} }}}}B{{{{ else }}}}C{{{{ end }}}}"
    if kind == 3:
        return f"{{{{ range $i, $v := {e} }}}}{{{{ $i }}}}={{{{ $v }}}};{{{{ else }}}}none{{{{ end }}}}"
    if kind == 4:
        return f"{{{{ range {e} }}}}[{{{{ . }}}}]{{{{ end }}}}"
    if kind == 5:
        return f"{{{{ with {e} }}}}<{{{{ . }}}}>{{{{ else }}}}empty{{{{ end }}}}"
    if kind == 6:
        return f"{{{{ $x := {e} }}}}{{{{ $x }}}}|{{{{ $x = {_expr(rng)} }}}}{{{{ $x }}}}"
    if kind == 7:
        verb = rng.choice(PRINTF_VERBS)
        args = " ".join(rng.choice(VALUES) for _ in range(rng.randrange(0, 3)))
        return f'{{{{ printf "{verb}" {args} }}}}'
    if kind == 8:
        return f"{{{{ {e} | toJson }}}}"
    if kind == 9:
        func = rng.choice(["lower", "upper", "title", "trim", "b64enc", "quote", "len", 'printf "%q"'])
        return f"{{{{ {rng.choice(STRINGS)} | {func} }}}}"
    if kind == 10:
        return f"  a  {{{{- {e} -}}}}  b  \n{{{{- /* comment */ -}}}}\n c {{{{/* c2 */}}}}"
    if kind == 11:
        return (f'{{{{ define "T" }}}}({{{{ . }}}}){{{{ end }}}}{{{{ template "T" {e} }}}}'
                f'{{{{ block "B" .str }}}}[{{{{ . }}}}]{{{{ end }}}}')
    if kind == 12:
        return (f"{{{{ range $i, $v := .list }}}}{{{{ if eq $v 2.0 }}}}{{{{ continue }}}}{{{{ end }}}}"
                f"{{{{ $v }}}}{{{{ if gt $i {rng.choice(['0', '1', '5'])} }}}}{{{{ break }}}}{{{{ end }}}}{{{{ end }}}}")
    if kind == 13:
        tail = _fill(rng, rng.choice(["default {v}", "toString", "toJson", "empty", "not", "typeOf", "len",
                                      'printf "%v"', "print {v}", "quote", "first", "has {v}", "lower", "kindOf",
                                      "add {i}", "eq {v}"]))
        return f"{{{{ {e} | {tail} }}}}"
    if kind == 14:
        return f"{{{{ ({e}).x }}}}|{{{{ $m := {rng.choice(MAPS)} }}}}{{{{ $m.a }}}}"
    if kind == 15:
        a, b = rng.choice(INTS), rng.choice(INTS)
        op = rng.choice(["add", "sub", "mul", "div", "mod", "max", "min"])
        return f"{{{{ {op} {a} {b} }}}}|{{{{ {op} {a} {b} | typeOf }}}}"
    if kind == 16:
        return f"{{{{ {rng.choice(['eq', 'ne', 'lt', 'le', 'gt', 'ge'])} {rng.choice(VALUES)} {rng.choice(VALUES)} }}}}"
    if kind == 17:
        return f"{{{{ {rng.choice(['and', 'or'])} {rng.choice(VALUES)} {rng.choice(VALUES)} | printf \"%v\" }}}}"
    if kind == 18:
        # Deliberately broken syntax: both sides must refuse it.
        return rng.choice(["{{ ", "{{ end }}", "{{ if }}", "{{ .a | }}", "{{ (1 }}", "{{ range }}{{ end }}",
                           '{{ "unterminated }}', "{{ $undefined }}", "{{ nosuchfunc 1 }}", "{{ else }}",
                           "{{ if .t }}x", "{{/* unclosed }}", "{{ 1 2 }}", "{{ .a.b.c 1 }}", "{{ $x := 1 }}{{ $y }}",
                           "{{ template \"nope\" }}", "{{ break }}", "{{ .t | 3 }}", "{{ 1e }}", "{{ 0x }}",
                           "{{ define \"a\" }}{{ end }}{{ define \"a\" }}x{{ end }}x{{ template \"a\" }}"])
    if kind == 19:
        if rng.random() < 0.5:
            return f'{{{{ fail "stop {rng.randrange(100)}" }}}}'
        return f'{{{{ if false }}}}{{{{ fail "no" }}}}{{{{ end }}}}{{{{ {e} }}}}'
    if kind == 20:
        return f"{{{{ range $k, $v := {rng.choice(MAPS)} }}}}{{{{ $k }}}}:{{{{ $v | toJson }}}},{{{{ end }}}}"
    return f"x{{{{ {e} }}}}y\n{{{{ {_expr(rng)} }}}}"


def generated_cases(count: int = 2400, seed: int = 20261207) -> list[tuple[str, Any]]:
    """A reproducible random corpus over every construct and function."""
    rng = random.Random(seed)
    cases: list[tuple[str, Any]] = []
    for _ in range(count):
        parts = [_construct(rng) for _ in range(rng.randrange(1, 3))]
        cases.append(("".join(parts), DATA))
    return cases


def all_cases() -> list[tuple[str, Any]]:
    """The whole differential corpus."""
    return fixed_cases() + generated_cases()


__all__ = ["DATA", "all_cases"]
