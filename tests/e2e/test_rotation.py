"""Intermediate rotation and revocation (issue 16 item 4), end to end.

A second intermediate is made with the `cirrus ca` ceremony steps (its key a softkms file, the root
key the one `cirrus init` left in the folder), staged in the authority's store and activated while
clients keep asking a running `cirrus up` for certificates: none may fail, both intermediates must
sign, and every certificate must chain (openssl) through the intermediate its answer names. Then the
old intermediate is revoked in the root's ARL: the ARL verifies against the root, the old
intermediate's certificates no longer renew, the new one's do.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli import main as cirrus_main
from shared.cli.crl import run_publish
from shared.config import Settings
from shared.rotation_record import fingerprint
from shared.runtime import build_services
from tests.helpers import make_csr, mint_sign_token, mint_token, sign_claims
from tests.interop.test_cli_session import cirrus, server  # noqa: F401 - the `cirrus up` fixture


def new_intermediate(authority_dir: Path, tmp_path: Path, name: str) -> tuple[Path, str]:
    """A new intermediate certified by the folder's root: (certificate path, key URI). In-process: fast."""
    password = str(authority_dir / "secrets" / "password")
    uri = f"softkms:path={authority_dir}/secrets/{name.lower()}_key"
    csr, crt = tmp_path / f"{name}.csr", tmp_path / f"{name}.crt"
    assert cirrus_main(["ca", "intermediate-csr", "--kms", uri, "--create", "EC-P256", "--name", name,
                        "--out", str(csr), "--password-file", password]) == 0  # fmt: skip
    assert cirrus_main(["ca", "sign-intermediate", str(csr), "--root-kms",
                        f"softkms:path={authority_dir}/secrets/root_ca_key", "--root",
                        str(authority_dir / "certs" / "root_ca.crt"), "--out", str(crt), "--days", "30",
                        "--password-file", password]) == 0  # fmt: skip
    return crt, uri


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _openssl_verify(root: Path, intermediate_pem: str, leaves: list[str], tmp_path: Path, tag: str) -> None:
    """`openssl verify` of every leaf with only the one intermediate given as untrusted."""
    inter = tmp_path / f"{tag}-int.pem"
    inter.write_text(intermediate_pem)
    files = []
    for i, pem in enumerate(leaves):
        f = tmp_path / f"{tag}-{i}.pem"
        f.write_text(pem)
        files.append(str(f))
    out = subprocess.run(["openssl", "verify", "-CAfile", str(root), "-untrusted", str(inter), *files],
                         capture_output=True, text=True)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count(": OK") == len(leaves)


def test_concurrent_clients_see_no_failure_while_cirrus_up_switches_intermediate(
    server: Any, authority_dir: Path, tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    proc, log_path = server
    address = json.loads((authority_dir / "config.json").read_text())["address"]
    root = authority_dir / "certs" / "root_ca.crt"
    ctx = ssl.create_default_context(cafile=str(root))
    old = x509.load_pem_x509_certificates((authority_dir / "certs" / "intermediate_ca.crt").read_bytes())[0]
    new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
    new = x509.load_pem_x509_certificate(new_crt.read_bytes())

    answers: list[tuple[str, str]] = []
    failures: list[str] = []
    stop = threading.Event()
    switched = threading.Event()
    after_switch = [0]
    lock = threading.Lock()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            name = f"c{n}-{i}.example.com"
            i += 1
            csr, _ = make_csr(name, [name])
            body = json.dumps({"csr": csr, "ott": mint_sign_token(authority_dir, name, [name])}).encode()
            req = urllib.request.Request(f"https://{address}/1.0/sign", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
                    got = json.loads(resp.read())
                    status = resp.status
            except Exception as exc:
                with lock:
                    failures.append(repr(exc))
                continue
            with lock:
                if status != 201:
                    failures.append(f"status {status}")
                    continue
                answers.append((got["crt"], got["ca"]))
                if switched.is_set() and x509.load_pem_x509_certificate(got["ca"].encode()) == new:
                    after_switch[0] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)  # traffic on the old intermediate first
        # Staged while the server runs (it was never in its config), then activated.
        out = cirrus("ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(new_crt), "--kms", new_uri)
        assert "staged" in out.stdout
        cirrus("ca", "activate", "--dir", str(authority_dir), "--cert", str(new_crt))
        switched.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and after_switch[0] < 20:
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert proc.poll() is None, log_path.read_text()
    assert failures == [], failures[:5]
    by_ca: dict[str, list[str]] = {}
    for crt, ca in answers:
        leaf = x509.load_pem_x509_certificate(crt.encode())
        issuer = x509.load_pem_x509_certificate(ca.encode())
        leaf.verify_directly_issued_by(issuer)  # the chain in the answer is the intermediate that signed it
        by_ca.setdefault(fingerprint(issuer), []).append(crt)
    assert set(by_ca) == {fingerprint(old), fingerprint(new)}, {k[:8]: len(v) for k, v in by_ca.items()}
    for cert in (old, new):
        _openssl_verify(root, _pem(cert), by_ca[fingerprint(cert)], tmp_path, fingerprint(cert)[:8])
    listing = cirrus("ca", "intermediates", "--dir", str(authority_dir)).stdout
    assert f"* {fingerprint(new)}" in listing and f"  {fingerprint(old)}" in listing


def _issue(api: Client, authority_dir: Path, name: str) -> dict[str, Any]:
    csr, _ = make_csr(name, [name])
    r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, name, [name])})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.get_json()
    return body


def _mtls(crt_pem: str) -> dict[str, str]:
    return {"SSL_CLIENT_CERT": crt_pem}


def test_revoked_intermediate_is_in_the_root_arl_and_its_certificates_stop_renewing(
    authority_dir: Path, tmp_path: Path
) -> None:
    root = authority_dir / "certs" / "root_ca.crt"
    old_path = authority_dir / "certs" / "intermediate_ca.crt"
    services = build_services(Settings.load(authority_dir / "config.json"))
    api = Client(CirrusApp(services, mounts=default_mounts(services)))
    try:
        before = _issue(api, authority_dir, "old.example.com")
        new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
        cirrus("ca", "install", "--stage", "--dir", str(authority_dir), "--cert", str(new_crt), "--kms", new_uri)
        cirrus("ca", "activate", "--dir", str(authority_dir), "--cert", str(new_crt))
        services.rotating.rotation.recheck = 0  # type: ignore[union-attr] - see the change now, not in 5 s
        after = _issue(api, authority_dir, "new.example.com")
        new = x509.load_pem_x509_certificate(new_crt.read_bytes())
        assert x509.load_pem_x509_certificate(after["ca"].encode()) == new
        # Before the revocation the old intermediate's certificate still renews (with the new one).
        r = api.post("/1.0/renew", environ_overrides=_mtls(before["crt"]))
        assert r.status_code == 201, r.text
        assert x509.load_pem_x509_certificate(r.get_json()["ca"].encode()) == new

        out = cirrus("ca", "revoke-intermediate", "--root-kms", f"softkms:path={authority_dir}/secrets/root_ca_key",
                     "--root", str(root), "--cert", str(old_path), "--dir", str(authority_dir), "--reason",
                     "superseded", "--password-file", str(authority_dir / "secrets" / "password"))  # fmt: skip
        assert "cRLNumber 1" in out.stdout
        arls = list((authority_dir / "published" / "crl").glob("root-*.crl"))
        assert len(arls) == 1
        check = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(arls[0]), "-CAfile", str(root),
                                "-verify", "-noout", "-text"], capture_output=True, text=True)  # fmt: skip
        assert check.returncode == 0 and "verify OK" in check.stderr + check.stdout, check.stderr
        old = x509.load_pem_x509_certificates(old_path.read_bytes())[0]
        arl = x509.load_der_x509_crl(arls[0].read_bytes())
        assert [r.serial_number for r in arl] == [old.serial_number]
        served = api.get(f"/crl/{arls[0].name}")  # relying parties fetch it where they fetch the CRLs
        assert served.status_code == 200 and served.get_data() == arls[0].read_bytes()
        # A relying party checking the ARL refuses the old intermediate's leaves.
        leaf, arl_pem = tmp_path / "old-leaf.pem", tmp_path / "arl.pem"
        leaf.write_text(before["crt"])
        subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(arls[0]), "-out", str(arl_pem)], check=True)
        refused = subprocess.run(["openssl", "verify", "-crl_check_all", "-CAfile", str(root), "-untrusted",
                                  str(old_path), "-CRLfile", str(arl_pem), str(leaf)], capture_output=True, text=True)  # fmt: skip
        assert refused.returncode != 0 and "revoked" in refused.stdout + refused.stderr

        # Another instance (the first one re-reads the ARL within its recheck time) refuses the renewal.
        fresh = build_services(Settings.load(authority_dir / "config.json"))
        fresh_api = Client(CirrusApp(fresh, mounts=default_mounts(fresh)))
        try:
            for client in (fresh_api,):
                r = client.post("/1.0/renew", environ_overrides=_mtls(before["crt"]))
                assert r.status_code == 401, r.text
                assert r.get_json()["message"] == "the certificate's issuing intermediate has been revoked"
                r = client.post("/1.0/renew", environ_overrides=_mtls(after["crt"]))
                assert r.status_code == 201, r.text
        finally:
            fresh.close()
        # A second revocation of the same intermediate is refused with one clear line.
        again = cirrus("ca", "revoke-intermediate", "--root-kms", f"softkms:path={authority_dir}/secrets/root_ca_key",
                       "--root", str(root), "--cert", str(old_path), "--dir", str(authority_dir),
                       "--password-file", str(authority_dir / "secrets" / "password"), check=False)  # fmt: skip
        assert again.returncode != 0 and again.stderr.strip().count("\n") == 0 and "already revoked" in again.stderr
    finally:
        services.close()


def _revoke(api: Client, authority_dir: Path, crt_pem: str) -> None:
    serial = str(x509.load_pem_x509_certificate(crt_pem.encode()).serial_number)
    tok = mint_token(authority_dir, sign_claims(serial, None, op="revoke"))
    r = api.post("/1.0/revoke", json={"serial": serial, "ott": tok, "passive": True, "reasonCode": 1})
    assert r.status_code == 200, r.text


def _ocsp_status(api: Client, leaf_pem: str, issuer_pem: str) -> tuple[ocsp.OCSPCertStatus, ocsp.OCSPResponse]:
    leaf = x509.load_pem_x509_certificate(leaf_pem.encode())
    issuer = x509.load_pem_x509_certificate(issuer_pem.encode())
    req = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1()).build()
    r = api.post("/ocsp", data=req.public_bytes(serialization.Encoding.DER),
                 headers={"Content-Type": "application/ocsp-request"})  # fmt: skip
    assert r.status_code == 200
    answer = ocsp.load_der_ocsp_response(r.get_data())
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    return answer.certificate_status, answer


def test_each_generation_keeps_its_own_crl_and_ocsp_responder(authority_dir: Path, tmp_path: Path) -> None:
    root = authority_dir / "certs" / "root_ca.crt"
    old_pem = (authority_dir / "certs" / "intermediate_ca.crt").read_text()
    services = build_services(Settings.load(authority_dir / "config.json"))
    api = Client(CirrusApp(services, mounts=default_mounts(services)))
    try:
        old_leaf = _issue(api, authority_dir, "old.example.com")
        new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
        cirrus("ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(new_crt), "--kms", new_uri)
        cirrus("ca", "activate", "--dir", str(authority_dir), "--cert", str(new_crt))
        services.rotating.rotation.recheck = 0  # type: ignore[union-attr] - see the change now, not in 5 s
        new_leaf, new_good = _issue(api, authority_dir, "new.example.com"), _issue(api, authority_dir, "ok.example.com")
        assert new_leaf["ca"] == new_good["ca"] == new_crt.read_text()
        _revoke(api, authority_dir, old_leaf["crt"])
        _revoke(api, authority_dir, new_leaf["crt"])
        results = run_publish(services)
        new = x509.load_pem_x509_certificate(new_crt.read_bytes())
        gen_id = f"{services.settings.authority_id}-{fingerprint(new)[:16]}"
        assert {r.authority_id for r in results} == {services.settings.authority_id, gen_id}
        crl_dir = authority_dir / "published" / "crl"

        def verify(leaf: dict[str, Any], crl_id: str) -> subprocess.CompletedProcess[str]:
            paths = [tmp_path / f"{crl_id}.pem", tmp_path / "leaf.pem", tmp_path / "int.pem"]
            subprocess.run(["openssl", "crl", "-inform", "DER", "-in", str(crl_dir / f"{crl_id}.crl"),
                            "-out", str(paths[0])], check=True)  # fmt: skip
            paths[1].write_text(leaf["crt"])
            paths[2].write_text(leaf["ca"])
            return subprocess.run(["openssl", "verify", "-crl_check", "-CAfile", str(root), "-untrusted",
                                   str(paths[2]), "-CRLfile", str(paths[0]), str(paths[1])],
                                  capture_output=True, text=True)  # fmt: skip

        base_id = services.settings.authority_id
        for leaf, crl_id in ((old_leaf, base_id), (new_leaf, gen_id)):
            out = verify(leaf, crl_id)
            assert out.returncode != 0 and "certificate revoked" in out.stdout + out.stderr, out.stdout + out.stderr
        out = verify(new_good, gen_id)
        assert out.returncode == 0, out.stdout + out.stderr
        # The old key's CRL is no use for the new intermediate's leaves: its issuer is not theirs.
        out = verify(new_good, base_id)
        assert out.returncode != 0 and "unable to get certificate CRL" in out.stdout + out.stderr

        for leaf, issuer_pem, expected in ((old_leaf, old_pem, ocsp.OCSPCertStatus.REVOKED),
                                           (new_leaf, new_leaf["ca"], ocsp.OCSPCertStatus.REVOKED),
                                           (new_good, new_good["ca"], ocsp.OCSPCertStatus.GOOD)):  # fmt: skip
            status, answer = _ocsp_status(api, leaf["crt"], issuer_pem)
            assert status == expected
            # `cirrus init` configures a delegated responder: each generation has its own responder
            # certificate, issued by that generation, and it signs the answers about its leaves.
            assert len(answer.certificates) == 1
            delegated = answer.certificates[0]
            delegated.verify_directly_issued_by(x509.load_pem_x509_certificate(issuer_pem.encode()))
            delegated.public_key().verify(answer.signature, answer.tbs_response_bytes,  # type: ignore[union-attr, call-arg]
                                          ec.ECDSA(answer.signature_hash_algorithm))  # type: ignore[arg-type]  # fmt: skip
    finally:
        services.close()


def test_a_scheduled_switch_happens_on_its_own_and_every_chain_follows(authority_dir: Path, tmp_path: Path) -> None:
    from shared.clock import FixedClock, SystemClock
    from shared.server import issue_server_certificate

    new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
    switch = SystemClock().now() + dt.timedelta(seconds=90)  # within the test tokens' lifetime
    cirrus("ca", "install", "--stage", "--not-before", switch.isoformat(), "--dir", str(authority_dir),
           "--cert", str(new_crt), "--kms", new_uri)  # fmt: skip
    clock = FixedClock(switch - dt.timedelta(seconds=60))
    services = build_services(Settings.load(authority_dir / "config.json"), clock=clock)
    api = Client(CirrusApp(services, mounts=default_mounts(services)))
    old_pem = (authority_dir / "certs" / "intermediate_ca.crt").read_text()
    try:
        assert _issue(api, authority_dir, "before.example.com")["ca"] == old_pem
        assert api.get("/intermediates").get_json()["crts"] == [old_pem]
        clock.set(switch)  # no activation, no restart: the switch time has come
        services.rotating.rotation.recheck = 0  # type: ignore[union-attr]
        assert _issue(api, authority_dir, "after.example.com")["ca"] == new_crt.read_text()
        assert api.get("/intermediates").get_json()["crts"] == [new_crt.read_text()]
        assert api.get("/intermediates.pem").get_data(as_text=True) == new_crt.read_text()
        # `cirrus up` renews its own TLS certificate with the active intermediate and sends that chain.
        cert_path, _, _ = issue_server_certificate(services, tmp_path)
        server_chain = x509.load_pem_x509_certificates(cert_path.read_bytes())
        new = x509.load_pem_x509_certificate(new_crt.read_bytes())
        assert server_chain[1:] == [new]
        server_chain[0].verify_directly_issued_by(new)
    finally:
        services.close()


@pytest.mark.parametrize(
    "step, message",
    [
        (["stage-intermediate", "--cert", "{old}", "--kms", "{key}"], "not the one the certificate certifies"),
        (["stage-intermediate", "--cert", "{root}", "--kms", "{key}"], "a root, not an intermediate"),
        (["stage-intermediate", "--cert", "{new}", "--kms", "{key}", "--not-before", "tomorrow"], "RFC 3339"),
        (["activate", "--fingerprint", "ab" * 32], "no such intermediate"),
        (["activate", "--fingerprint", "xyz"], "64 hex digits"),
        (["install", "--cert", "{new}", "--kms", "{key}", "--not-before", "2030-01-01T00:00:00Z"], "needs --stage"),
    ],
)
def test_rotation_mistakes_are_one_clear_line(step: list[str], message: str, authority_dir: Path,
                                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
    values = {"old": str(authority_dir / "certs" / "intermediate_ca.crt"), "root": str(authority_dir / "certs" /
              "root_ca.crt"), "new": str(new_crt), "key": new_uri}  # fmt: skip
    args = ["ca", step[0], "--dir", str(authority_dir), *(a.format(**values) for a in step[1:])]
    capsys.readouterr()
    assert cirrus_main(args) != 0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_revoke_intermediate_with_a_wrong_root_key_is_one_clear_line(authority_dir: Path, tmp_path: Path) -> None:
    out = cirrus("ca", "revoke-intermediate", "--root-kms", f"softkms:path={authority_dir}/secrets/intermediate_ca_key",
                 "--root", str(authority_dir / "certs" / "root_ca.crt"), "--cert",
                 str(authority_dir / "certs" / "intermediate_ca.crt"), "--dir", str(authority_dir),
                 "--password-file", str(authority_dir / "secrets" / "password"), check=False)  # fmt: skip
    assert out.returncode != 0 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "root key does not match" in out.stderr
    assert not list((authority_dir / "published").glob("crl/root-*.crl"))


def test_acme_finalize_switches_too(authority_dir: Path, tmp_path: Path) -> None:
    """The ACME server is built once per instance; its finalizer must still sign with the generation issuing now."""
    from shared.acme.identifiers import Identifier
    from shared.api.acme_mount import build_acme

    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        server = services.lazy("acme", build_acme)  # built before the switch
        new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
        cirrus_main(["ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(new_crt), "--kms", new_uri])
        cirrus_main(["ca", "activate", "--dir", str(authority_dir), "--cert", str(new_crt)])
        services.rotating.rotation.recheck = 0  # type: ignore[union-attr]
        csr = x509.load_pem_x509_csr(make_csr("acme.example.com", ["acme.example.com"])[0].encode())
        issued = server._svc.finalizer.issue(csr, [Identifier("dns", "acme.example.com")], provisioner="acme",
                                             account_id="acct", replaces=None, not_before=None, not_after=None)  # fmt: skip
        new = x509.load_pem_x509_certificate(new_crt.read_bytes())
        assert issued.chain == (new,)
        issued.leaf.verify_directly_issued_by(new)
    finally:
        services.close()


def test_roll_back_then_retire(authority_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = str(authority_dir)
    old = authority_dir / "certs" / "intermediate_ca.crt"
    new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
    assert cirrus_main(["ca", "stage-intermediate", "--dir", d, "--cert", str(new_crt), "--kms", new_uri]) == 0
    assert cirrus_main(["ca", "activate", "--dir", d, "--cert", str(new_crt)]) == 0
    capsys.readouterr()
    assert cirrus_main(["ca", "retire-intermediate", "--dir", d, "--cert", str(new_crt)]) == 1
    assert "issues now" in capsys.readouterr().err
    assert cirrus_main(["ca", "retire-intermediate", "--dir", d, "--cert", str(old)]) == 1
    assert "configured intermediate" in capsys.readouterr().err
    assert cirrus_main(["ca", "activate", "--dir", d, "--cert", str(old)]) == 0  # roll back
    capsys.readouterr()
    assert cirrus_main(["ca", "intermediates", "--dir", d]) == 0
    assert f"* {fingerprint(x509.load_pem_x509_certificates(old.read_bytes())[0])}" in capsys.readouterr().out
    assert cirrus_main(["ca", "retire-intermediate", "--dir", d, "--cert", str(new_crt)]) == 0
    capsys.readouterr()
    assert cirrus_main(["ca", "intermediates", "--dir", d]) == 0
    listing = capsys.readouterr().out
    assert fingerprint(x509.load_pem_x509_certificate(new_crt.read_bytes())) not in listing
    assert len(listing.strip().splitlines()) == 1


def test_an_ocsp_responder_without_store_access_answers_for_a_staged_generation(
    authority_dir: Path, tmp_path: Path
) -> None:
    """The deployed `ocsp` function reads only the bucket: it learns the generations from the record's copy there."""
    raw = json.loads((authority_dir / "config.json").read_text())
    raw["key"] = "softkms:path=secrets/not_shipped_to_this_function"  # no CA key either
    raw["store"] = "memory:"  # and no view of the store the others share
    (authority_dir / "config-ocsp.json").write_text(json.dumps(raw))
    publisher = build_services(Settings.load(authority_dir / "config.json"))
    responder = build_services(Settings.load(authority_dir / "config-ocsp.json"))
    try:
        api = Client(CirrusApp(publisher, mounts=default_mounts(publisher)))
        new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
        cirrus_main(["ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(new_crt), "--kms", new_uri])
        cirrus_main(["ca", "activate", "--dir", str(authority_dir), "--cert", str(new_crt)])
        publisher.rotating.rotation.recheck = 0  # type: ignore[union-attr]
        leaf = _issue(api, authority_dir, "leaf.example.com")
        assert leaf["ca"] == new_crt.read_text()
        run_publish(publisher)  # the generation's CRL, its delegated responder certificate, the record's copy
        copy = next(authority_dir.glob("published/rotation/*.json")).read_text()
        assert new_crt.read_text().strip().splitlines()[1] in copy and "softkms" not in copy  # chains, no key URIs
        status, answer = _ocsp_status(Client(CirrusApp(responder, mounts=default_mounts(responder))), leaf["crt"],
                                      leaf["ca"])  # fmt: skip
        assert status == ocsp.OCSPCertStatus.GOOD
        assert len(answer.certificates) == 1
        answer.certificates[0].verify_directly_issued_by(x509.load_pem_x509_certificate(new_crt.read_bytes()))
    finally:
        publisher.close()
        responder.close()


def test_an_intermediate_staged_in_config_json_switches_at_its_time(authority_dir: Path, tmp_path: Path) -> None:
    from shared.errors import ConfigError

    new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
    raw = json.loads((authority_dir / "config.json").read_text())
    raw["intermediates"] = [{"crt": str(new_crt), "key": new_uri, "notBefore": "2020-01-01T00:00:00Z"}]
    raw["rotation"] = {"recheck": "100ms"}
    (authority_dir / "config.json").write_text(json.dumps(raw))
    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        api = Client(CirrusApp(services, mounts=default_mounts(services)))
        assert _issue(api, authority_dir, "cfg.example.com")["ca"] == new_crt.read_text()
    finally:
        services.close()
    for bad, message in (({"recheck": "soon"}, "rotation.recheck"), ({"every": "5s"}, "rotation must be")):
        raw["rotation"] = bad
        (authority_dir / "config.json").write_text(json.dumps(raw))
        with pytest.raises(ConfigError, match=message):
            build_services(Settings.load(authority_dir / "config.json"))
