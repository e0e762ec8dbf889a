"""Go's own text/template + sprig as the reference renderer for the differential suite.

Builds `gorender/main.go` with Debian's Go toolchain and sprig (GOPATH mode, no network) into a
cache directory keyed by the source's hash, then renders a whole corpus through one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("gorender") / "main.go"
GOPATH_SYSTEM = "/usr/share/gocode"


def available() -> str | None:
    """None when Go and sprig are installed, else why not."""
    if shutil.which("go") is None:
        return "go is not installed (infra/test.sh installs golang-go)"
    if not Path(GOPATH_SYSTEM, "src/github.com/Masterminds/sprig").is_dir():
        return "sprig is not installed (infra/test.sh installs golang-github-masterminds-sprig-dev)"
    if not Path(GOPATH_SYSTEM, "src/github.com/smallstep/certificates/authority/provisioner").is_dir():
        return "step-ca's sources are not installed (infra/test.sh installs golang-github-smallstep-certificates-dev)"
    return None


def build() -> Path:
    """The renderer binary, built once per source version."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    cache = Path(tempfile.gettempdir()) / f"cirrus-gorender-{os.getuid()}"
    binary = cache / f"gorender-{digest}"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache))
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{work}:{GOPATH_SYSTEM}",
           "GOCACHE": os.environ.get("GOCACHE") or str(cache / "gocache"), "GOFLAGS": ""}
    out = work / "gorender"
    subprocess.run(["go", "build", "-o", str(out), str(SOURCE)], env=env, check=True, capture_output=True,
                   timeout=600)
    out.replace(binary)
    shutil.rmtree(work, ignore_errors=True)
    return binary


def render_all(cases: list[tuple[str, Any]], *, step: bool = False, ssh: bool = False) -> list[dict[str, Any]]:
    """Go's result for each (template, data): {"ok", "output", "error"}.

    With `step`, each data item describes step-ca's typed template data instead
    ({"commonName", "sans", "csr", "token", "user", "extra", "webhooks"}; see gorender's stepData);
    with `ssh`, step-ca's SSH template data ({"type", "keyId", "principals", "token", "user", "extra",
    "webhooks"}; gorender's sshData).
    """
    binary = build()
    key = "ssh" if ssh else "step" if step else "data"
    payload = "".join(json.dumps({"template": t, key: d}) + "\n" for t, d in cases)
    proc = subprocess.run([str(binary)], input=payload.encode(), capture_output=True, check=True, timeout=300)
    results = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert len(results) == len(cases), proc.stderr.decode()
    return results
