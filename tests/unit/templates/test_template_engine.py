"""The template engine's own guarantees: bounds, error lines, the functions the differential suite
cannot compare (now, uuidv4), typed values for step's `typeIs`, and decoding of the rendered JSON."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from shared.templates import GoTyped, Limits, Template, TemplateError, render
from shared.templates.fields import decode_rendered
from tests.templates import corpus


def test_errors_name_the_template_line() -> None:
    with pytest.raises(TemplateError) as exc:
        render('{\n  "a": 1,\n  {{ fail "no such host" }}\n}', {}, name="leaf.tpl")
    assert exc.value.line == 3 and exc.value.failed
    assert str(exc.value) == "template: leaf.tpl:3: error calling fail: no such host"
    with pytest.raises(TemplateError) as exc:
        Template("line one\n{{ if .x }}\nunterminated", name="t")
    assert exc.value.line == 3 and "unexpected EOF" in exc.value.message
    with pytest.raises(TemplateError) as exc:
        render("a\nb\n{{ nosuch 1 }}", {})
    assert exc.value.line == 3 and "function 'nosuch' not defined" in exc.value.message


def test_template_recursion_is_bounded() -> None:
    with pytest.raises(TemplateError, match="maximum template depth"):
        render('{{ define "r" }}x{{ template "r" . }}{{ end }}{{ template "r" . }}', {})


def test_work_is_bounded_in_steps() -> None:
    text = "{{ range until 1000 }}{{ range until 1000 }}{{ range until 1000 }}.{{ end }}{{ end }}{{ end }}"
    with pytest.raises(TemplateError, match="evaluation steps"):
        render(text, {}, limits=Limits(max_steps=100_000, max_output=1 << 30))


def test_output_is_bounded() -> None:
    text = '{{ range until 100000 }}{{ printf "%100s" "x" }}{{ end }}'
    with pytest.raises(TemplateError, match="output exceeds"):
        render(text, {})


def test_huge_lists_are_refused_not_built() -> None:
    with pytest.raises(TemplateError, match="more than"):
        render("{{ until 1000000000 }}", {})


def test_deep_nesting_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="too deep"):
        Template("{{ if 1 }}" * 500 + "{{ end }}" * 500)
    with pytest.raises(TemplateError, match="too deep"):
        Template("{{ " + "(" * 500 + "1" + ")" * 500 + " }}")
    deep: dict[str, object] = {}
    node = deep
    for _ in range(300):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    with pytest.raises(TemplateError, match="nested too deeply"):
        render("{{ . }}", deep)


def test_no_attribute_access_beyond_the_data() -> None:
    # Python attributes of strings, lists and dicts are not reachable: fields only index maps.
    for text in ("{{ .s.upper }}", "{{ .l.append }}", "{{ .s.__class__ }}", "{{ .n.real }}"):
        with pytest.raises(TemplateError, match="can't evaluate field"):
            render(text, {"s": "x", "l": [1], "n": 1})
    # On a map, a name is only ever a key: a missing one is Go's "<no value>", never a method.
    assert render("{{ .d.keys }}|{{ .d.items }}", {"d": {"k": 1}}) == "<no value>|<no value>"
    assert render("{{ .d.keys }}", {"d": {"keys": "the key named keys"}}) == "the key named keys"


def test_now_and_date() -> None:
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    out = render('{{ now | date "2006-01-02T15:04:05Z07:00" }}', {})
    stamp = dt.datetime.fromisoformat(out)
    assert before <= stamp <= dt.datetime.now(dt.UTC)
    assert render("{{ typeOf now }}", {}) == "time.Time"
    assert render('{{ date "2006-01-02 15:04:05 Mon Jan _2 3PM" 1700000000 }}', {}) == "2023-11-14 22:13:20 Tue Nov 14 10PM"


def test_uuidv4_is_a_fresh_version_4_uuid() -> None:
    first, second = render("{{ uuidv4 }}|{{ uuidv4 }}", {}).split("|")
    assert first != second
    for value in (first, second):
        assert uuid.UUID(value).version == 4 and re.fullmatch(r"[0-9a-f-]{36}", value)


def test_typed_public_key_drives_the_default_leaf_key_usage() -> None:
    data = corpus.x509_data()
    data["Insecure"]["CR"]["PublicKey"] = GoTyped("*rsa.PublicKey", "ptr", {"kty": "RSA"}, "&{...}")
    rsa = decode_rendered(render(corpus.DEFAULT_LEAF, data), ssh=False)
    assert rsa["keyUsage"] == ["keyEncipherment", "digitalSignature"]
    data["Insecure"]["CR"]["PublicKey"] = GoTyped("*ecdsa.PublicKey", "ptr", {"kty": "EC"}, "&{...}")
    ec = decode_rendered(render(corpus.DEFAULT_LEAF, data), ssh=False)
    assert ec["keyUsage"] == ["digitalSignature"]
    assert ec["sans"] == data["SANs"] and ec["extKeyUsage"] == ["serverAuth", "clientAuth"]


def test_rendered_json_is_checked() -> None:
    with pytest.raises(TemplateError, match="not valid JSON"):
        decode_rendered('{"subject": }', ssh=False)
    with pytest.raises(TemplateError, match="must be a JSON object"):
        decode_rendered("[1]", ssh=False)
    with pytest.raises(TemplateError, match="'keyUsage' must be a string or a list of strings, not a number"):
        decode_rendered('{"keyUsage": 5}', ssh=False)
    with pytest.raises(TemplateError, match="'principals' must be a list"):
        decode_rendered('{"principals": "root"}', ssh=True)
    assert decode_rendered('{"dnsNames": "a.example.com", "unknown": 1}', ssh=False)["unknown"] == 1


def test_data_is_not_mutated_by_set() -> None:
    data = {"m": {"a": 1}}
    assert render('{{ set .m "b" 2 | toJson }}', data) == '{"a":1,"b":2}'
    assert data == {"m": {"a": 1}}
