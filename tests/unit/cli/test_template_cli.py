"""`cirrus template render`: rendered JSON on stdout, or the template line on stderr (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.templates import corpus


def _cirrus(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def test_renders_step_default_leaf_template(tmp_path: Path) -> None:
    tpl = tmp_path / "leaf.tpl"
    tpl.write_text(corpus.DEFAULT_LEAF)
    data = corpus.x509_data()
    done = _cirrus("template", "render", str(tpl), "--data", json.dumps(data))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"subject": data["Subject"], "sans": data["SANs"],
                                       "keyUsage": ["digitalSignature"], "extKeyUsage": ["serverAuth", "clientAuth"]}
    assert done.stderr == ""


def test_ssh_template_with_data_from_a_file(tmp_path: Path) -> None:
    tpl = tmp_path / "ssh.tpl"
    tpl.write_text(corpus.SSH_DEFAULT)
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(corpus.ssh_data("host")))
    done = _cirrus("template", "render", str(tpl), "--data", f"@{data_file}", "--ssh")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["type"] == "host" and out["principals"] == ["jane", "jane@example.com"]


def test_fail_and_bad_json_name_the_line(tmp_path: Path) -> None:
    tpl = tmp_path / "deny.tpl"
    tpl.write_text('{\n  "subject": {{ toJson .Subject }},\n  {{ if not .SANs }}{{ fail "a SAN is required" }}{{ end }}\n}')
    done = _cirrus("template", "render", str(tpl), "--data", '{"Subject": {"commonName": "x"}}')
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == "cirrus template render: template: deny.tpl:3: error calling fail: a SAN is required"
    tpl.write_text('{"subject": {{ .Subject }}}')
    done = _cirrus("template", "render", str(tpl), "--data", '{"Subject": {"commonName": "x"}}')
    assert done.returncode == 1 and "not valid JSON" in done.stderr and len(done.stderr.splitlines()) == 1
    tpl.write_text('{"type": "user", "keyId": "k", "principals": ["a"], "keyUsage": {{ 5 }}}')
    done = _cirrus("template", "render", str(tpl), "--ssh")
    assert done.returncode == 0, done.stderr  # keyUsage is not an SSH field: ignored, as step-ca's decoder does
    done = _cirrus("template", "render", str(tpl))
    assert done.returncode == 1 and "'keyUsage' must be" in done.stderr


def test_ssh_semantics_refuse_what_issuance_refuses(tmp_path: Path) -> None:
    """--ssh checks the rendered JSON as /ssh/sign does, with the template's name."""
    tpl = tmp_path / "host.tpl"
    for text, message in (('{"type": "router", "principals": ["a"]}', "field 'type' must be \"user\" or \"host\""),
                          ('{"type": "host", "principals": [1]}', "field 'principals' must be a string"),
                          ('{"type": "host", "principals": ["a"], "serial": 9}', "the CA assigns SSH serial numbers"),
                          ('{"type": "host", "principals": ["a"], "criticalOptions": {"force-command": 1}}',
                           "criticalOptions.force-command")):
        tpl.write_text(text)
        done = _cirrus("template", "render", str(tpl), "--ssh")
        assert done.returncode == 1 and done.stdout == "", text
        assert done.stderr.startswith("cirrus template render: template: host.tpl: ") and message in done.stderr
        assert len(done.stderr.splitlines()) == 1
        as_x509 = _cirrus("template", "render", str(tpl))  # as X.509 JSON: no names, as issuance would refuse
        assert as_x509.returncode == 1 and "needs a subject alternative name" in as_x509.stderr


def test_user_mistakes_are_one_line(tmp_path: Path) -> None:
    missing = _cirrus("template", "render", str(tmp_path / "nope.tpl"))
    assert missing.returncode == 1 and "cannot read template" in missing.stderr
    assert len(missing.stderr.splitlines()) == 1
    tpl = tmp_path / "t.tpl"
    tpl.write_text("{}")
    for data, message in (("[1", "--data is not valid JSON"), ("[1]", "--data must be a JSON object"),
                          (f"@{tmp_path / 'absent.json'}", "cannot read data file")):
        done = _cirrus("template", "render", str(tpl), "--data", data)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr
    parse_error = tmp_path / "broken.tpl"
    parse_error.write_text("{\n{{ if .x }}\n")
    done = _cirrus("template", "render", str(parse_error))
    assert done.returncode == 1 and "broken.tpl:3:" in done.stderr
