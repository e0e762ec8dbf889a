"""Google's emulators for local cloud mode: find or start them, and set up buckets, topics, push subscriptions.

Split from infra/cloud_local.py (which imports it) so each file holds one concern. The emulators'
REST APIs are spoken with urllib: three small JSON calls per resource do not justify the client
libraries' start-up time in the launcher, and the functions themselves use the real SDKs.
"""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EMULATORS_SH = REPO / "infra" / "emulators.sh"

EMULATOR_VARS = {
    "firestore": "FIRESTORE_EMULATOR_HOST",
    "pubsub": "PUBSUB_EMULATOR_HOST",
    "gcs": "STORAGE_EMULATOR_HOST",
}


class CloudLocalError(Exception):
    """A setup step failed; the message says which and what to do."""


def emulators_sh(*args: str) -> str:
    proc = subprocess.run(["bash", str(EMULATORS_SH), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise CloudLocalError(f"infra/emulators.sh {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def _parse_exports(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        parts = shlex.split(line)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            key, _, value = parts[1].partition("=")
            out[key] = value
    return out


def ensure_emulators(environ: dict[str, str], *, start: bool) -> tuple[dict[str, str], list[str]]:
    """Find (or start) the three emulators; return their env variables and the names this call started."""
    hosts = {var: environ[var] for var in EMULATOR_VARS.values() if environ.get(var)}
    missing = [name for name, var in EMULATOR_VARS.items() if var not in hosts]
    if missing:
        running = _parse_exports(emulators_sh("env"))
        for name in list(missing):
            var = EMULATOR_VARS[name]
            if running.get(var):
                hosts[var] = running[var]
                missing.remove(name)
    started: list[str] = []
    if missing:
        if not start:
            raise CloudLocalError(
                f"emulator(s) not running: {', '.join(missing)} (run infra/emulators.sh start, or drop --no-start)"
            )
        print(f"starting emulator(s): {', '.join(missing)}", flush=True)
        emulators_sh("start", *missing)
        started = missing
        running = _parse_exports(emulators_sh("env"))
        for name in missing:
            var = EMULATOR_VARS[name]
            if not running.get(var):
                raise CloudLocalError(f"{name} emulator started but infra/emulators.sh env does not list it")
            hosts[var] = running[var]
    return hosts, started


def _http(method: str, url: str, body: dict[str, Any] | None = None, *, ok: tuple[int, ...] = ()) -> int:
    """One JSON request to an emulator's REST API; returns the status (those in `ok` are not errors)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - loopback emulator URLs
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        if exc.code in ok:
            return int(exc.code)
        detail = exc.read()[:300].decode("utf-8", "replace")
        raise CloudLocalError(f"{method} {url} -> {exc.code}: {detail}") from exc
    except OSError as exc:
        raise CloudLocalError(f"{method} {url}: {exc}") from exc


def create_bucket(storage_host: str, project: str, bucket: str) -> None:
    """Create the CRL bucket in fake-gcs-server (an existing one is kept)."""
    base = storage_host if "://" in storage_host else f"http://{storage_host}"
    _http("POST", f"{base.rstrip('/')}/storage/v1/b?project={project}", {"name": bucket}, ok=(409,))


def pubsub_url(pubsub_host: str, resource: str) -> str:
    """REST URL of a Pub/Sub emulator resource (`projects/P/topics/T`, ...)."""
    return f"http://{pubsub_host}/v1/{resource}"


def create_topic(pubsub_host: str, topic: str) -> None:
    """Create `projects/P/topics/T` in the Pub/Sub emulator (an existing one is kept)."""
    _http("PUT", pubsub_url(pubsub_host, topic), {}, ok=(409,))


def create_push_subscription(pubsub_host: str, subscription: str, topic: str, endpoint: str) -> None:
    """Push every message of `topic` to `endpoint`, as Eventarc does for a Pub/Sub-triggered function.

    The emulator pushes the raw Pub/Sub push body; Functions Framework converts it to the CloudEvent a
    deployed function receives (`google.cloud.pubsub.topic.v1.messagePublished`).
    """
    body = {"topic": topic, "pushConfig": {"pushEndpoint": endpoint}, "ackDeadlineSeconds": 600}
    if _http("PUT", pubsub_url(pubsub_host, subscription), body, ok=(409,)) == 409:
        # Left by an earlier run on another port: point it at this run's function.
        _http("POST", pubsub_url(pubsub_host, subscription) + ":modifyPushConfig", {"pushConfig": body["pushConfig"]})


def publish(pubsub_host: str, topic: str, payload: dict[str, Any]) -> None:
    """Publish one JSON message (what a Cloud Scheduler job with a Pub/Sub target sends)."""
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    _http("POST", pubsub_url(pubsub_host, topic) + ":publish", {"messages": [{"data": data}]})
