"""docs/deploy.md and docs/cloud-local.md say only what the repository backs.

Every output and variable the guide tells users to read or set exists in the example, every link
stays inside the repository, and the client walk ends with `step ca bootstrap` at `ca_url`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra.test_terraform import EXAMPLE, MODULE, parse_dir

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "docs" / "deploy.md", REPO / "docs" / "cloud-local.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_links_stay_inside_the_repository(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)]+)\)", text):
        assert not re.match(r"[a-z]+:", target), f"{doc.name} links outside the repository: {target}"
        path = target.split("#", 1)[0]
        if path:
            assert (doc.parent / path).resolve().is_relative_to(REPO), target
            assert (doc.parent / path).exists(), f"{doc.name}: {target} does not exist"
    assert "DESIGN.md" not in text and "shared/reference" not in text, "names a file outside the repository"


def test_every_output_the_guide_reads_exists() -> None:
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    outputs = set(parse_dir(EXAMPLE)["output"])
    named = set(re.findall(r"terraform output -raw (\w+)", text)) | set(re.findall(r"<(\w+) output>", text))
    assert named, "the guide reads no output?"
    assert named <= outputs, f"the guide reads outputs the example lacks: {sorted(named - outputs)}"


def test_every_variable_the_guide_names_is_settable_in_the_example() -> None:
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    example = parse_dir(EXAMPLE)["variable"]
    module = parse_dir(MODULE)["variable"]
    named = {v for v in re.findall(r"`(\w+)`", text) if v in module}
    assert {"external_url", "max_instances", "intermediate_key_version", "ocsp_responder_key_version"} <= named
    assert named <= set(example), f"the guide names variables the example does not expose: {sorted(named - set(example))}"


def test_the_client_walk_ends_with_step_at_ca_url() -> None:
    text = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "CA_URL=$(terraform output -raw ca_url)" in text
    assert 'step ca bootstrap --ca-url "$CA_URL" --fingerprint' in text
    assert "step ca certificate" in text
    assert "## Troubleshooting" in text
