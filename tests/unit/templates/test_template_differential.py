"""Differential suite: Go's text/template + sprig (Debian's Go toolchain) and Cirrus's engine render
the same templates over the same data identically, or both refuse them (issue 15)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from shared.templates import TemplateError, render
from tests.templates import corpus, goref

pytestmark = pytest.mark.skipif(goref.available() is not None, reason=str(goref.available()))


def _ours(text: str, data: Any) -> tuple[bool, str]:
    try:
        return True, render(text, data)
    except TemplateError as exc:
        return False, str(exc)


def _compare(cases: list[tuple[str, Any]]) -> tuple[list[str], int]:
    results = goref.render_all(cases)
    problems: list[str] = []
    successes = 0
    for (text, data), theirs in zip(cases, results, strict=True):
        ok, ours = _ours(text, data)
        if ok != theirs["ok"] or (ok and ours != theirs["output"]):
            problems.append(f"template {text!r}\n  go:     {theirs['ok']} {theirs['output'] or theirs['error']!r}\n"
                            f"  cirrus: {ok} {ours!r}")
        successes += bool(ok and theirs["ok"])
    return problems, successes


def test_step_default_and_documented_templates_render_as_go_renders_them() -> None:
    cases = corpus.fixed_cases()
    problems, successes = _compare(cases)
    assert not problems, "\n".join(problems[:20])
    # A documented example calls `fail` on purpose for some data; everything else renders.
    assert successes >= len(cases) - 4


def test_generated_corpus_over_every_construct_and_function_matches_go() -> None:
    cases = corpus.generated_cases()
    assert len(cases) >= 2000
    problems, successes = _compare(cases)
    assert not problems, f"{len(problems)} of {len(cases)} differ:\n" + "\n".join(problems[:20])
    # Both outcomes are exercised: most render, many are refused by both.
    assert successes > len(cases) // 3
    assert len(cases) - successes > 100


def _go_constants(path: Path) -> dict[str, str]:
    text = path.read_text()
    return dict(re.findall(r"const (\w+) = `(.*?)`", text, re.S))


@pytest.mark.skipif(not corpus.STEP_SOURCES.is_dir(), reason="go.step.sm/crypto sources are not installed")
def test_corpus_holds_step_ca_default_templates_verbatim() -> None:
    """The defaults in the corpus are step's own, as Debian ships them (not paraphrases)."""
    x509 = _go_constants(corpus.STEP_SOURCES / "x509util/templates.go")
    ssh = _go_constants(corpus.STEP_SOURCES / "sshutil/templates.go")
    assert x509["DefaultLeafTemplate"] == corpus.DEFAULT_LEAF
    assert x509["DefaultIIDLeafTemplate"] == corpus.DEFAULT_IID_LEAF
    assert x509["DefaultAdminLeafTemplate"] == corpus.DEFAULT_ADMIN_LEAF
    assert x509["DefaultIntermediateTemplate"] == corpus.DEFAULT_INTERMEDIATE
    assert x509["DefaultRootTemplate"] == corpus.DEFAULT_ROOT
    assert x509["CertificateRequestTemplate"] == corpus.CERTIFICATE_REQUEST
    if "DefaultAttestedLeafTemplate" in x509:
        assert x509["DefaultAttestedLeafTemplate"] == corpus.DEFAULT_ATTESTED_LEAF
    assert ssh["DefaultTemplate"] == corpus.SSH_DEFAULT
    assert ssh["DefaultAdminTemplate"] == corpus.SSH_ADMIN
    assert ssh["DefaultIIDTemplate"] == corpus.SSH_IID
    assert ssh["CertificateRequestTemplate"] == corpus.SSH_CERTIFICATE_REQUEST
