"""`cirrus template render` (X.509) runs issuance's own JSON -> certificate mapping: a template that
`/1.0/sign` refuses is refused by the preview with the same message (issue 15 item 3).

Each template below renders JSON whose fields have the right JSON types (so a type check alone
passes it) but that no certificate can be made of. The same file is the provisioner's
`templateFile` of a real app (WSGI, SQLite) and the CLI's FILE; the 400's message is the
preview's stderr line with issuance's `certificate template: ` prefix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.config import Settings
from shared.runtime import build_services
from tests.helpers import make_csr, mint_sign_token

HEAD = '{"subject": {"commonName": {{ toJson .Subject.CommonName }}}, "sans": {{ toJson .SANs }}'
CASES = [
    (HEAD + ', "keyUsage": ["digitalSignature", "flying"]}', "keyUsage"),
    (HEAD + ', "extensions": [{"id": "1.2.x.4", "critical": false, "value": "BQA="}]}', "extensions"),
    (HEAD + ', "extensions": [{"id": "1.2.3.4", "critical": false, "value": "not base64!"}]}', "extensions.value"),
    (HEAD + ', "basicConstraints": {"isCA": true, "maxPathLen": 0}}', "cannot issue a CA certificate"),
    ('{"subject": {"commonName": ""}, "sans": [{"type": "ip", "value": "300.1.2.3"}]}', "300.1.2.3"),
    ('{"subject": {"organization": "Example"}, "keyUsage": ["digitalSignature"]}', "subject alternative name"),
]
DATA = {"Subject": {"CommonName": "app.example.com"}, "SANs": [{"type": "dns", "value": "app.example.com"}]}


def _cirrus(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60, check=False)


def _issuance_message(authority_dir: Path) -> str:
    path = authority_dir / "config.json"
    config = json.loads(path.read_text())
    config["authority"]["provisioners"][0]["options"] = {"x509": {"templateFile": "templates/leaf.tpl"}}
    path.write_text(json.dumps(config))
    services = build_services(Settings.load(path))
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        csr, _ = make_csr("app.example.com", ["app.example.com"])
        r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "app.example.com")})
        assert r.status_code == 400, r.text
        return str(r.get_json()["message"])
    finally:
        services.close()


@pytest.mark.parametrize(("text", "fragment"), CASES)
def test_the_preview_refuses_what_issuance_refuses_with_its_message(authority_dir: Path, text: str,
                                                                    fragment: str) -> None:
    (authority_dir / "templates").mkdir()
    tpl = authority_dir / "templates" / "leaf.tpl"
    tpl.write_text(text)
    issued = _issuance_message(authority_dir)
    done = _cirrus("template", "render", str(tpl), "--data", json.dumps(DATA))
    assert done.returncode == 1 and done.stdout == "", done.stdout
    assert len(done.stderr.splitlines()) == 1 and "Traceback" not in done.stderr
    line = done.stderr.strip().removeprefix("cirrus template render: ")
    assert issued == f"certificate template: {line}"
    assert line.startswith("template: leaf.tpl: ") and fragment in line


def test_a_template_issuance_accepts_previews_as_json(tmp_path: Path) -> None:
    tpl = tmp_path / "leaf.tpl"
    tpl.write_text(HEAD + ', "extensions": [{"id": "1.2.3.4", "critical": false, "value": "BQA="}]}')
    done = _cirrus("template", "render", str(tpl), "--data", json.dumps(DATA))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["extensions"] == [{"id": "1.2.3.4", "critical": False, "value": "BQA="}]
