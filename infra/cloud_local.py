"""Local cloud mode: the Cloud Functions of `functions/main.py` on this machine, against Google's emulators.

    python infra/cloud_local.py --dir ./ca            (or: infra/cloud-local.sh --dir ./ca)

Given an authority folder made by `cirrus init`, this runs the serverless shape locally, as close to a
deployment as a laptop allows:

- records in the Firestore emulator (`CIRRUS_STORE=firestore:projects/P/databases/(default)?prefix=X`),
- published CRLs in a fake-gcs-server bucket (`CIRRUS_BLOBS=gs://BUCKET`; the Cloud Storage SDK finds the
  emulator through `STORAGE_EMULATOR_HOST`),
- lifecycle events on a Pub/Sub emulator topic (`CIRRUS_EVENTS=pubsub:projects/P/topics/T`),
- one Functions Framework process per entry point (the same server Cloud Functions 2nd gen runs): the HTTP
  functions answer on their own loopback port; each scheduled function gets a "tick" topic with a push
  subscription to its port, as Cloud Scheduler -> Pub/Sub -> function does in production (see
  terraform/modules/cirrus/pubsub.tf). `--schedule crl_publish=60` publishes a tick every 60 s locally.

Emulators: the ones named by FIRESTORE_EMULATOR_HOST / PUBSUB_EMULATOR_HOST / STORAGE_EMULATOR_HOST in the
environment are used as they are; otherwise `infra/emulators.sh env` is asked for running ones, and missing
ones are started with `infra/emulators.sh start` (and stopped again on exit; pass --no-start to refuse).

Each function gets the settings Terraform gives its deployed twin (local.function_env in
terraform/modules/cirrus/functions.tf; tests/infra/test_cloud_local_shape.py holds the two equal):
- the issuer split: `ca_api` and `acme` forward signing to the `issuer` function (`CIRRUS_ISSUER_URL`);
- keys: the config every function reads names a signing key no function can open (the stand-in for
  "no KMS permission"); only the signers (`issuer`, `crl_publish`) get the real one as `CIRRUS_KEY`,
  and only `ocsp` and `crl_publish` get the responder key as `CIRRUS_OCSP_KEY`;
- one external URL per HTTP function, its own (the issuer gets `ca_api`'s, whose token audiences it
  re-checks), each a bare origin with no path, as the deployed run.app addresses are;
- the CRL distribution point is the bucket's public URL (as `crl_base_url` is in production) and the
  OCSP URL the `ocsp` function's, so a leaf's CDP and AIA lead where a relying party would go.
The derived config.json is written to the log folder; the authority folder is only read.

When every function answers, the URLs are printed, followed by one machine-readable line
`CLOUD_LOCAL_READY {json}` (tests and scripts parse it). SIGINT or SIGTERM stops every process this script
started, and nothing else. Functions Framework serves plain HTTP: point clients at the printed URL with
`cirrus certificate ... --ca-url http://127.0.0.1:PORT`; renew with `--bearer` (no TLS, so no mTLS).
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The sibling modules, also when this file is loaded by path (tests) rather than run as a script.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cloud_emulators import (
    CloudLocalError,
    create_bucket,
    create_push_subscription,
    create_topic,
    emulators_sh,
    ensure_emulators,
    publish,
)
from function_process import FunctionProcess, free_port

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "functions" / "main.py"

__all__ = ["CloudLocal", "CloudLocalError", "FunctionProcess", "entry_points", "free_port", "main"]

# Functions Framework signature type per decorator used in functions/main.py.
_SIGNATURES = {"http": "http", "cloud_event": "cloudevent"}

# Who gets what beyond the common settings, as terraform/modules/cirrus/functions.tf hands it out
# (the `signs`, `calls_issuer` flags and local.ocsp_key_roles).
SIGNERS = frozenset({"issuer", "crl_publish"})
ISSUER_CALLERS = frozenset({"ca_api", "acme"})
OCSP_KEY_HOLDERS = frozenset({"ocsp", "crl_publish"})
#: Functions Terraform hands the SSH CA key URIs (local.ssh_key_roles): the signer and the readers.
SSH_KEY_HOLDERS = frozenset({"issuer", "ca_api", "crl_publish"})
# A key URI that opens nothing: what a function without KMS permission effectively holds.
NO_KEY = "softkms:path=/nonexistent/cirrus-cloud-local/no-kms-permission"


def entry_points(main: Path = MAIN) -> dict[str, str]:
    """Entry points of `functions/main.py` and their signature types, read from its decorators.

    Parsed rather than imported, so a new entry point (acme, dashboard) is served as soon as it lands,
    and this process does not pay for importing the handlers it never calls.
    """
    tree = ast.parse(main.read_text(), filename=str(main))
    out: dict[str, str] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            if name in _SIGNATURES:
                out[node.name] = _SIGNATURES[name]
    return out


@dataclass
class CloudLocal:
    """Everything one local cloud run set up, and how to tear it down."""

    authority_dir: Path
    project: str
    prefix: str
    bucket: str
    host: str
    ports: dict[str, int]
    log_dir: Path
    start_emulators: bool = True
    functions: dict[str, FunctionProcess] = field(default_factory=dict)
    emulator_env: dict[str, str] = field(default_factory=dict)
    started_emulators: list[str] = field(default_factory=list)
    config_path: Path = Path()
    signing_key: str = ""
    responder_key: str = ""
    ssh_keys: dict[str, str] = field(default_factory=dict)

    @property
    def store_url(self) -> str:
        """CIRRUS_STORE for every function."""
        url = f"firestore:projects/{self.project}/databases/(default)"
        return f"{url}?prefix={self.prefix}" if self.prefix else url

    @property
    def blobs_url(self) -> str:
        """CIRRUS_BLOBS for every function."""
        return f"gs://{self.bucket}"

    @property
    def events_topic(self) -> str:
        """The lifecycle events topic (CIRRUS_EVENTS)."""
        return f"projects/{self.project}/topics/{self._name('events')}"

    def tick_topic(self, function: str) -> str:
        """The topic a scheduled function is triggered from."""
        return f"projects/{self.project}/topics/{self._name(function.replace('_', '-') + '-tick')}"

    def _name(self, base: str) -> str:
        # Pub/Sub names: letters, digits, -_.~+%, starting with a letter, 3..255 characters.
        stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.prefix).strip("-_.")
        return f"cirrus-{stem}-{base}" if stem else f"cirrus-{base}"

    def deployed_config(self) -> Path:
        """The authority's config.json as a deployment ships it: keys by grant, CDP in the bucket.

        Paths are made absolute (the copy lives in the log folder); the signing key becomes
        `NO_KEY` and the responder key is dropped, so only the functions Terraform grants them
        to (through CIRRUS_KEY / CIRRUS_OCSP_KEY) can sign; `crl.baseURL` is the bucket's public
        URL on fake-gcs-server and `crl.ocspURL` the `ocsp` function.
        """
        source = self.authority_dir / "config.json"
        raw = json.loads(source.read_text(encoding="utf-8"))
        base = self.authority_dir

        def absolute(value: str) -> str:
            return value if value.startswith("/") else str((base / value).resolve())

        self.signing_key = _absolute_key(base, str(raw.get("key", "")))
        ocsp = dict(raw.get("ocsp") or {})
        self.responder_key = _absolute_key(base, str(ocsp.pop("responderKey", "") or ""))
        raw["ocsp"] = ocsp
        ssh = raw.pop("ssh", None)  # the SSH CA keys travel as CIRRUS_SSH_*_KEY, as Terraform hands them
        if isinstance(ssh, dict):
            self.ssh_keys = {
                "CIRRUS_SSH_USER_KEY": _absolute_key(base, str(ssh.get("userKey", ""))),
                "CIRRUS_SSH_HOST_KEY": _absolute_key(base, str(ssh.get("hostKey", ""))),
            }
        raw["key"] = NO_KEY
        roots = raw.get("root")
        raw["root"] = [absolute(r) for r in roots] if isinstance(roots, list) else absolute(str(roots))
        raw["crt"] = absolute(str(raw["crt"]))
        if raw.get("passwordFile"):
            raw["passwordFile"] = absolute(str(raw["passwordFile"]))
        if isinstance(raw.get("federatedRoots"), list):
            raw["federatedRoots"] = [absolute(r) for r in raw["federatedRoots"]]
        crl = dict(raw.get("crl") or {})
        crl["baseURL"] = self.bucket_url
        if "ocsp" in self.functions:
            crl["ocspURL"] = self.functions["ocsp"].url
        raw["crl"] = crl
        out = self.log_dir / "config.json"
        out.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
        return out

    @property
    def bucket_url(self) -> str:
        """The bucket's public base URL: fake-gcs-server serves /BUCKET/NAME as storage.googleapis.com does."""
        host = self.emulator_env.get("STORAGE_EMULATOR_HOST", "")
        base = host if "://" in host else f"http://{host}"
        return f"{base.rstrip('/')}/{self.bucket}"

    def external_url(self, name: str) -> str:
        """CIRRUS_EXTERNAL_URL of an HTTP function: its own origin; the issuer's is ca_api's."""
        target = "ca_api" if name == "issuer" and "ca_api" in self.functions else name
        return self.functions[target].url

    def function_env(self, base: dict[str, str], name: str) -> dict[str, str]:
        """One function's environment: the deployed settings for `name`, plus emulator hosts."""
        env = dict(base)
        for var in ("CIRRUS_KEY", "CIRRUS_OCSP_KEY", "CIRRUS_ISSUER_URL", "CIRRUS_EXTERNAL_URL",
                    "CIRRUS_SSH_USER_KEY", "CIRRUS_SSH_HOST_KEY"):  # fmt: skip
            env.pop(var, None)  # only what Terraform would give this function
        env.update(self.emulator_env)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), base.get("PYTHONPATH", "")) if p)
        env["GOOGLE_CLOUD_PROJECT"] = self.project
        env.update(self.deployed_settings(name))
        return env

    def deployed_settings(self, name: str) -> dict[str, str]:
        """The CIRRUS_* variables Terraform's local.function_env gives `name`."""
        fn = self.functions[name]
        issuer_deployed = "issuer" in self.functions
        signers = SIGNERS | (set() if issuer_deployed else ISSUER_CALLERS)
        out = {
            "CIRRUS_CONFIG": str(self.config_path),
            "CIRRUS_STORE": self.store_url,
            "CIRRUS_BLOBS": self.blobs_url,
            "CIRRUS_EVENTS": f"pubsub:{self.events_topic}",
        }
        if name in signers:
            out["CIRRUS_KEY"] = self.signing_key
        if name in OCSP_KEY_HOLDERS and self.responder_key:
            out["CIRRUS_OCSP_KEY"] = self.responder_key
        if name in SSH_KEY_HOLDERS and name in self.functions:
            out.update(self.ssh_keys)
        if name in ISSUER_CALLERS and issuer_deployed:
            out["CIRRUS_ISSUER_URL"] = self.functions["issuer"].url
        if fn.signature == "http":
            out["CIRRUS_EXTERNAL_URL"] = self.external_url(name)
        return out

    def up(self, environ: dict[str, str], *, ready_timeout: float = 60.0) -> None:
        """Start everything and wait until every function answers.

        Raises:
            CloudLocalError: an emulator or function could not be started.
        """
        config = self.authority_dir / "config.json"
        if not config.is_file():
            raise CloudLocalError(f"{config} not found: make an authority with `cirrus init --dir DIR` first")
        self.emulator_env, self.started_emulators = ensure_emulators(environ, start=self.start_emulators)
        create_bucket(self.emulator_env["STORAGE_EMULATOR_HOST"], self.project, self.bucket)
        pubsub = self.emulator_env["PUBSUB_EMULATOR_HOST"]
        create_topic(pubsub, self.events_topic)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for name, signature in entry_points().items():
            port = self.ports.get(name) or free_port(self.host)
            self.functions[name] = FunctionProcess(
                name=name, signature=signature, port=port, host=self.host, log=self.log_dir / f"{name}.log"
            )
        self.config_path = self.deployed_config()
        for name, fn in self.functions.items():
            fn.start(self.function_env(environ, name))
        for name, fn in self.functions.items():
            if fn.signature != "cloudevent":
                continue
            topic = self.tick_topic(name)
            create_topic(pubsub, topic)
            subscription = topic.replace("/topics/", "/subscriptions/") + "-push"
            # The topic in the push path lets Functions Framework fill in the CloudEvent's source.
            create_push_subscription(pubsub, subscription, topic, f"{fn.url}/{topic}")
        deadline = time.monotonic() + ready_timeout
        pending = dict(self.functions)
        while pending:
            for name, fn in list(pending.items()):
                status = fn.exited()
                if status is not None:
                    raise CloudLocalError(f"function {name} exited with {status}:\n{fn.log_tail()}")
                if fn.answers():
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise CloudLocalError(f"no answer from {', '.join(pending)} within {ready_timeout:.0f}s")
            time.sleep(0.1)

    def describe(self) -> dict[str, Any]:
        """What a client or test needs to know (the CLOUD_LOCAL_READY line)."""
        return {
            "functions": {name: fn.url for name, fn in self.functions.items()},
            "project": self.project,
            "store": self.store_url,
            "blobs": self.blobs_url,
            "bucketURL": self.bucket_url,
            "config": str(self.config_path),
            "eventsTopic": self.events_topic,
            "tickTopics": {n: self.tick_topic(n) for n, f in self.functions.items() if f.signature == "cloudevent"},
            "emulators": self.emulator_env,
            "logs": str(self.log_dir),
        }

    def down(self) -> None:
        """Stop the functions, then any emulator this run started (never one it found running)."""
        for fn in self.functions.values():
            fn.stop()
        if self.started_emulators:
            try:
                emulators_sh("stop", *self.started_emulators)
            except CloudLocalError as exc:
                print(f"cloud-local: {exc}", file=sys.stderr)


def _absolute_key(base: Path, uri: str) -> str:
    """A softkms key URI with its path made absolute (other schemes unchanged)."""
    if uri.startswith("softkms:path=") and not uri[len("softkms:path="):].startswith("/"):
        return "softkms:path=" + str((base / uri[len("softkms:path="):]).resolve())
    return uri


def _parse_schedule(values: list[str], known: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for value in values:
        name, sep, seconds = value.partition("=")
        if not sep or known.get(name) != "cloudevent":
            raise CloudLocalError(
                f"--schedule {value!r}: expected EVENT_FUNCTION=SECONDS (event functions: "
                f"{', '.join(n for n, s in known.items() if s == 'cloudevent')})"
            )
        try:
            out[name] = float(seconds)
        except ValueError:
            raise CloudLocalError(f"--schedule {value!r}: SECONDS must be a number") from None
        if out[name] <= 0:
            raise CloudLocalError(f"--schedule {value!r}: SECONDS must be positive")
    return out


def _scheduler(cloud: CloudLocal, schedule: dict[str, float], stop: threading.Event) -> None:
    """A Cloud Scheduler stand-in: publish `{"job": NAME}` to each tick topic at its interval."""
    due = {name: time.monotonic() + seconds for name, seconds in schedule.items()}
    pubsub = cloud.emulator_env["PUBSUB_EMULATOR_HOST"]
    while not stop.wait(0.5):
        now = time.monotonic()
        for name, at in due.items():
            if now >= at:
                due[name] = now + schedule[name]
                try:
                    publish(pubsub, cloud.tick_topic(name), {"job": name})
                except CloudLocalError as exc:
                    print(f"cloud-local: scheduler: {exc}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run local cloud mode until SIGINT/SIGTERM."""
    p = argparse.ArgumentParser(prog="cloud_local.py", description=__doc__.split("\n", 1)[0])
    p.add_argument("--dir", type=Path, required=True, help="authority folder made by `cirrus init`")
    p.add_argument("--project", default="cirrus-local", help="project id used in the emulators")
    p.add_argument("--prefix", default="", help="Firestore collection prefix (and Pub/Sub name part)")
    p.add_argument("--bucket", default="cirrus-local-crl", help="fake-gcs-server bucket for published CRLs")
    p.add_argument("--host", default="127.0.0.1", help="address the functions listen on")
    p.add_argument(
        "--port", action="append", default=[], metavar="FUNCTION=PORT", help="fixed port for a function (default: free)"
    )
    p.add_argument("--log-dir", type=Path, default=None, help="function logs (default: a new temporary folder)")
    p.add_argument("--no-start", action="store_true", help="fail instead of starting missing emulators")
    p.add_argument(
        "--schedule",
        action="append",
        default=[],
        metavar="FUNCTION=SECONDS",
        help="publish a tick to an event function's topic every SECONDS (Cloud Scheduler stand-in)",
    )
    args = p.parse_args(argv)
    try:
        ports = {}
        for value in args.port:
            name, _, port = value.partition("=")
            ports[name] = int(port)
        known = entry_points()
        unknown = set(ports) - set(known)
        if unknown:
            raise CloudLocalError(f"--port: unknown function(s) {', '.join(sorted(unknown))}")
        schedule = _parse_schedule(args.schedule, known)
    except (CloudLocalError, ValueError) as exc:
        p.error(str(exc))

    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    cloud = CloudLocal(
        authority_dir=args.dir.resolve(),
        project=args.project,
        prefix=args.prefix,
        bucket=args.bucket,
        host=args.host,
        ports=ports,
        log_dir=(args.log_dir or Path(tempfile.mkdtemp(prefix="cirrus-cloud-local-"))).resolve(),
        start_emulators=not args.no_start,
    )
    try:
        cloud.up(dict(os.environ))
        info = cloud.describe()
        for name, url in info["functions"].items():
            print(f"{name:12} {url}")
        print(f"store        {info['store']}")
        print(f"blobs        {info['blobs']} (STORAGE_EMULATOR_HOST={info['emulators']['STORAGE_EMULATOR_HOST']})")
        print(f"events       {info['eventsTopic']}")
        print(f"logs         {info['logs']}")
        print("CLOUD_LOCAL_READY " + json.dumps(info), flush=True)
        scheduler = threading.Thread(target=_scheduler, args=(cloud, schedule, stop), daemon=True)
        scheduler.start()
        while not stop.wait(0.5):
            for name, fn in cloud.functions.items():
                status = fn.exited()
                if status is not None:
                    raise CloudLocalError(f"function {name} exited with {status}:\n{fn.log_tail()}")
        return 0
    except CloudLocalError as exc:
        print(f"cloud-local: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stop.set()
        cloud.down()
        print("cloud-local: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
