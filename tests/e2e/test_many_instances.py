"""Several instances of the Cloud Functions on one Firestore: races across processes keep the books exact.

Cloud Functions scales a function out to many instances that share nothing but the store. This
starts three Functions Framework processes of `ca_api` and two of `issuer` (each `ca_api` forwards
signing to one of them, as `CIRRUS_ISSUER_URL` does when deployed) with the deployed settings of
`infra/cloud_local.py`, all on one Firestore emulator prefix, and fires concurrently at them:

- `/sign`: each one-time token is redeemed at every `ca_api` instance at once;
- `/renew`: each certificate is renewed with two different bearer tokens at once, each token
  sent to two instances;
- `/revoke`: each revocation token is redeemed at every instance at once.

Then, from the store: no certificate handed out is unrecorded, none is recorded twice or without
having been handed out, every token worked exactly once (the other attempts were refused with a
4xx, never a 5xx), every endpoint was created once and renewals stayed on it, and each revoked
serial has one revocation. The operation counts per certificate are printed at the end
(`pytest -s`); bench/many_instances.py reports the same run with certificates/s.
"""

from __future__ import annotations

import collections
import json
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.cli.client import mint_token, renew_bearer_token
from shared.clock import SystemClock
from shared.store.open import open_store

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "infra"))

from cloud_emulators import create_topic  # noqa: E402
from cloud_local import CloudLocal, FunctionProcess, free_port  # noqa: E402

EMULATOR_VARS = ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST", "STORAGE_EMULATOR_HOST")
CA_INSTANCES = 3
ISSUER_INSTANCES = 2


def _require_emulators() -> None:
    missing = [v for v in EMULATOR_VARS if not os.environ.get(v)]
    if not missing:
        return
    message = f"{', '.join(missing)} not set: run `infra/emulators.sh start` and eval its env"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Fleet:
    """The running instances and what a client needs to call them."""

    cloud: CloudLocal
    ca: list[FunctionProcess]
    issuers: list[FunctionProcess]
    jwk: dict[str, Any]
    provisioner: str

    @property
    def audience_host(self) -> str:
        """The one external host every instance answers for (the deployed URL in front of them all)."""
        return urlsplit(self.ca[0].url).netloc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}:{p.port}\n{p.log_tail(15)}" for p in [*self.ca, *self.issuers])


def start_fleet(authority_dir: Path, log_dir: Path, *, ca_instances: int, issuer_instances: int) -> Fleet:
    """Start the instances with the settings `infra/cloud_local.py` gives the deployed functions."""
    run_id = secrets.token_hex(4)
    cloud = CloudLocal(
        authority_dir=authority_dir,
        project="cirrus-many",
        prefix=f"many{run_id}-",
        bucket=f"cirrus-many-{run_id}",
        host="127.0.0.1",
        ports={},
        log_dir=log_dir,
        start_emulators=False,
    )
    cloud.emulator_env = {v: os.environ[v] for v in EMULATOR_VARS}
    create_topic(cloud.emulator_env["PUBSUB_EMULATOR_HOST"], cloud.events_topic)
    log_dir.mkdir(parents=True, exist_ok=True)

    def process(name: str, i: int) -> FunctionProcess:
        port = free_port(cloud.host)
        return FunctionProcess(name=name, signature="http", port=port, host=cloud.host, log=log_dir / f"{name}{i}.log")

    ca = [process("ca_api", i) for i in range(ca_instances)]
    issuers = [process("issuer", i) for i in range(issuer_instances)]
    cloud.functions = {"ca_api": ca[0], "issuer": issuers[0]}
    cloud.config_path = cloud.deployed_config()
    ca_env = cloud.function_env(dict(os.environ), "ca_api")
    issuer_env = cloud.function_env(dict(os.environ), "issuer")
    for i, p in enumerate(ca):
        p.start({**ca_env, "CIRRUS_ISSUER_URL": issuers[i % len(issuers)].url})
    for p in issuers:
        p.start(issuer_env)
    jwk = json.loads((authority_dir / "secrets" / "provisioner.jwk").read_text())
    config = json.loads((authority_dir / "config.json").read_text())
    (name,) = [
        p["name"]
        for p in config["authority"]["provisioners"]
        if p.get("type") == "JWK" and p.get("key", {}).get("kid") == jwk["kid"]
    ]
    fleet = Fleet(cloud=cloud, ca=ca, issuers=issuers, jwk=jwk, provisioner=name)
    deadline = time.monotonic() + 90
    pending = [*ca, *issuers]
    while pending:
        for p in list(pending):
            if p.exited() is not None:
                stop_fleet(fleet)
                raise AssertionError(f"{p.name} exited:\n{p.log_tail()}")
            if p.answers():
                pending.remove(p)
        if pending and time.monotonic() > deadline:
            stop_fleet(fleet)
            raise AssertionError(f"no answer from {[p.url for p in pending]}")
        time.sleep(0.1)
    return fleet


def stop_fleet(fleet: Fleet) -> None:
    for p in [*fleet.ca, *fleet.issuers]:
        p.stop()


@pytest.fixture
def fleet(authority_dir: Path, tmp_path: Path) -> Iterator[Fleet]:
    _require_emulators()
    f = start_fleet(authority_dir, tmp_path / "logs", ca_instances=CA_INSTANCES, issuer_instances=ISSUER_INSTANCES)
    try:
        yield f
    finally:
        stop_fleet(f)


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """POST as a client does: a 503 (contention on Firestore's transactions) is retried after a pause.

    Retrying keeps every invariant the test checks: the same token either wins now or is
    refused as used; nothing is handed out twice. Any other status is final.
    """
    for attempt in range(6):
        status, answer = _post_once(url, body, headers)
        if status != 503:
            return status, answer
        time.sleep(0.2 * (attempt + 1))
    return status, answer


def _post_once(url: str, body: dict[str, Any], headers: dict[str, str] | None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return int(resp.status), json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return int(exc.code), json.loads(raw or b"{}")
        except ValueError:
            return int(exc.code), {"raw": raw[:200].decode(errors="replace")}


@dataclass
class Ledger:
    """What the clients saw: every answer, by operation and token, and the certificates handed out."""

    answers: dict[tuple[str, str], list[int]] = field(default_factory=lambda: collections.defaultdict(list))
    handed_out: dict[str, x509.Certificate] = field(default_factory=dict)
    renewed_from: dict[str, str] = field(default_factory=dict)  # new serial -> renewed serial
    keys: dict[str, ec.EllipticCurvePrivateKey] = field(default_factory=dict)
    chains: dict[str, str] = field(default_factory=dict)  # serial -> PEM chain as answered
    counts: dict[str, collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )


def race(pool: ThreadPoolExecutor, calls: list[Callable[[], tuple[int, dict[str, Any]]]]) -> list[tuple[int, dict[str, Any]]]:
    return list(pool.map(lambda c: c(), calls))


def run_workload(fleet: Fleet, tmp: Path, *, certificates: int) -> tuple[Ledger, float]:
    """Sign, renew and revoke with every token raced across instances; returns what was seen and the time."""
    ledger = Ledger()
    aud = fleet.audience_host
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=24) as pool:
        # /sign: each token at every instance at once
        calls: list[Callable[[], tuple[int, dict[str, Any]]]] = []
        tokens = []
        for i in range(certificates):
            key = ec.generate_private_key(ec.SECP256R1())
            cn = f"host{i}.many.example"
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .sign(key, hashes.SHA256())
                .public_bytes(serialization.Encoding.PEM)
                .decode()
            )
            ott = mint_token(
                jwk=fleet.jwk, provisioner=fleet.provisioner, subject=cn, audience=f"https://{aud}/1.0/sign", sans=[cn]
            )
            tokens.append((ott, key))
            for p in fleet.ca:
                calls.append(lambda u=p.url, c=csr, t=ott: post(f"{u}/1.0/sign", {"csr": c, "ott": t}))
        results = race(pool, calls)
        for n, (status, body) in enumerate(results):
            ott, key = tokens[n // len(fleet.ca)]
            ledger.answers[("sign", ott)].append(status)
            if status == 201:
                leaf = x509.load_pem_x509_certificate(body["crt"].encode())
                serial = str(leaf.serial_number)
                ledger.handed_out[serial] = leaf
                ledger.keys[serial] = key
                ledger.chains[serial] = "".join(body.get("certChain") or [body["crt"], body["ca"]])
                ledger.counts[serial]["signed"] += 1
                ledger.counts[serial]["sign attempts"] += len(fleet.ca)
        originals = sorted(ledger.handed_out)

        # /renew: two different bearer tokens per certificate, each at two instances at once
        calls, meta = [], []
        for serial in originals:
            crt, key_file = tmp / f"{serial}.crt", tmp / f"{serial}.key"
            crt.write_text(ledger.chains[serial])  # the x5c chain: leaf and intermediate
            key_file.write_bytes(
                ledger.keys[serial].private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            )
            for t in range(2):
                token = renew_bearer_token(crt, key_file, f"https://{aud}/1.0/renew")
                # a distinct token: the same claims a second later, or with a nonce in the header
                token = token if t == 0 else _distinct(token, crt, key_file, aud)
                for j in range(2):
                    url = fleet.ca[(t + j) % len(fleet.ca)].url
                    calls.append(lambda u=url, tk=token: post(f"{u}/1.0/renew", {}, {"Authorization": f"Bearer {tk}"}))
                    meta.append((serial, token))
        for (serial, token), (status, body) in zip(meta, race(pool, calls), strict=True):
            ledger.answers[("renew", token)].append(status)
            ledger.counts[serial]["renew attempts"] += 1
            if status == 201:
                leaf = x509.load_pem_x509_certificate(body["crt"].encode())
                ledger.handed_out[str(leaf.serial_number)] = leaf
                ledger.renewed_from[str(leaf.serial_number)] = serial
                ledger.counts[serial]["renewed"] += 1

        # /revoke: the first half of the originals, each token at every instance at once
        calls, meta = [], []
        for serial in originals[: len(originals) // 2]:
            ott = mint_token(
                jwk=fleet.jwk, provisioner=fleet.provisioner, subject=serial, audience=f"https://{aud}/1.0/revoke"
            )
            for p in fleet.ca:
                body = {"serial": serial, "ott": ott, "reasonCode": 1, "passive": True}
                calls.append(lambda u=p.url, b=body: post(f"{u}/1.0/revoke", b))
                meta.append((serial, ott))
        for (serial, ott), (status, _) in zip(meta, race(pool, calls), strict=True):
            ledger.answers[("revoke", ott)].append(status)
            ledger.counts[serial]["revoke attempts"] += 1
            if status == 200:
                ledger.counts[serial]["revoked"] += 1
    return ledger, time.perf_counter() - started


def _distinct(token: str, crt: Path, key_file: Path, aud: str) -> str:
    """Another valid renew token for the same certificate (iat/nbf are whole seconds: wait for the next).

    Distinct means other claims, not only another signature: the replay key is the hash of the
    signing input, so a re-signed twin of the same claims is the same token (issue 12 item 3).
    """
    while True:
        other = renew_bearer_token(crt, key_file, f"https://{aud}/1.0/renew")
        if other.rpartition(".")[0] != token.rpartition(".")[0]:
            return other
        time.sleep(0.05)


def check_books(fleet: Fleet, ledger: Ledger) -> dict[str, Any]:
    """Compare what the clients were handed with what the store holds; return the report."""
    store = open_store(fleet.cloud.store_url, clock=SystemClock())
    try:
        issuer_id = None
        recorded: list[str] = []
        for serial in ledger.handed_out:
            record = store.get_certificate(serial)
            assert record is not None, f"certificate {serial} was handed out but not recorded"
            assert record.der == ledger.handed_out[serial].public_bytes(serialization.Encoding.DER)
            issuer_id = record.authority_id
        assert issuer_id is not None
        cursor, after = ledger_start(), ""
        while page := store.list_serials_issued_since(issuer_id, cursor, limit=100, after_serial=after):
            recorded.extend(s for _, s, _, _ in page)
            cursor, after = page[-1][0], page[-1][1]
        duplicates = [s for s, n in collections.Counter(recorded).items() if n > 1]
        assert not duplicates, f"recorded twice: {duplicates}"
        assert set(recorded) == set(ledger.handed_out), "recorded but never handed out: " + str(
            set(recorded) - set(ledger.handed_out)
        )

        # every token exactly once; the losers refused with a 4xx
        for (op, _), statuses in ledger.answers.items():
            ok = {"sign": 201, "renew": 201, "revoke": 200}[op]
            assert statuses.count(ok) == 1, f"{op} token answered {statuses}\n{fleet.logs()}"
            assert all(400 <= s < 500 for s in statuses if s != ok), f"{op}: {statuses}\n{fleet.logs()}"

        # endpoints: one per original certificate, created once, renewals attached to it
        originals = [s for s in ledger.handed_out if s not in ledger.renewed_from]
        endpoints = list(store.list_endpoints(limit=1000))
        assert len(endpoints) == len(originals) == len({e.id for e in endpoints})
        by_serial = {s: store.get_certificate(s) for s in ledger.handed_out}
        assert {r.endpoint_id for s, r in by_serial.items() if s in originals} == {e.id for e in endpoints}  # type: ignore[union-attr]
        for new, old in ledger.renewed_from.items():
            assert by_serial[new].endpoint_id == by_serial[old].endpoint_id  # type: ignore[union-attr]
            assert by_serial[new].renewed_from == old  # type: ignore[union-attr]
        # Firestore asked for random endpoint ids (shared/endpoints.py): UUIDv4, not time-ordered v7
        assert all(uuid.UUID(e.id[3:]).version == 4 for e in endpoints)

        revoked = [s for s in originals if ledger.counts[s]["revoked"]]
        for s in revoked:
            assert store.get_revocation(s) is not None
        assert len(store.list_revocations(issuer_id, not_after_since=ledger_start())) == len(revoked)
        return {
            "certificates": {s: dict(ledger.counts[s]) for s in sorted(originals)},
            "handedOut": len(ledger.handed_out),
            "recorded": len(recorded),
            "endpoints": len(endpoints),
            "revoked": len(revoked),
            "requests": sum(len(v) for v in ledger.answers.values()),
        }
    finally:
        store.close()


def ledger_start() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)


def test_races_across_instances_keep_the_books_exact(fleet: Fleet, tmp_path: Path) -> None:
    ledger, seconds = run_workload(fleet, tmp_path, certificates=8)
    report = check_books(fleet, ledger)
    assert report["handedOut"] == 8 * 3  # each original renewed twice (two distinct tokens)
    counts = sorted(report["certificates"].values(), key=lambda c: -c.get("revoked", 0))
    once = {"sign attempts": CA_INSTANCES, "signed": 1, "renew attempts": 4, "renewed": 2}
    assert counts == [{**once, "revoke attempts": CA_INSTANCES, "revoked": 1}] * 4 + [once] * 4, report
    print(json.dumps({"seconds": round(seconds, 2), **report}, indent=1))
