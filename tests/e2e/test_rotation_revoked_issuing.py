"""A CA never signs under a revoked intermediate (issue 16, rotation follow-up).

`cirrus ca revoke-intermediate --dir` refuses the intermediate that issues now (one clear line
naming the successor steps, nothing published), and an ARL that lists it anyway (published from
another machine with `--blobs`, which cannot see the deployment) stops issuance at once: `/sign`,
`/renew` and a further authority's `/sign` answer 503 in step-ca's error shape, and nothing is
recorded (no endpoint, no event, the one-time token still unused). Activating a successor resumes
issuance.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli import main as cirrus_main
from shared.config import Settings
from shared.runtime import Services, build_services
from tests.e2e.multi_authority import Deployment, token_for
from tests.e2e.test_rotation import new_intermediate
from tests.helpers import make_csr, mint_sign_token

REFUSED = "the issuing intermediate has been revoked; issuance resumes once its successor is activated"


def _revoke_args(root_key: Path, root: Path, cert: Path, password: Path, where: list[str]) -> list[str]:
    return ["ca", "revoke-intermediate", "--root-kms", f"softkms:path={root_key}", "--root", str(root),
            "--cert", str(cert), *where, "--password-file", str(password)]  # fmt: skip


def _fresh(directory: Path) -> tuple[Services, Client]:
    services = build_services(Settings.load(directory / "config.json"))
    return services, Client(CirrusApp(services, mounts=default_mounts(services)))


def _nothing_recorded(services: Services) -> tuple[int, int]:
    store = services.store
    return len(store.list_endpoints(limit=1000)), len(store.list_events(limit=1000))


def test_revoking_the_issuing_intermediate_is_refused_until_a_successor_is_active(
    authority_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = authority_dir / "secrets"
    root, old = authority_dir / "certs" / "root_ca.crt", authority_dir / "certs" / "intermediate_ca.crt"
    args = _revoke_args(secrets / "root_ca_key", root, old, secrets / "password", ["--dir", str(authority_dir)])
    capsys.readouterr()
    assert cirrus_main(args) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "issues now" in err and "cirrus ca activate" in err, err
    assert not list((authority_dir / "published").glob("crl/root-*.crl")), "nothing may be published"

    # Staged but not active: still refused. Active: the old one may go.
    new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
    assert cirrus_main(["ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(new_crt),
                        "--kms", new_uri]) == 0  # fmt: skip
    assert cirrus_main(args) != 0
    assert cirrus_main(["ca", "activate", "--dir", str(authority_dir), "--cert", str(new_crt)]) == 0
    capsys.readouterr()
    assert cirrus_main(args) == 0, capsys.readouterr().err
    assert "revoked intermediate" in capsys.readouterr().out
    # And now the successor is the one that issues: it is refused in turn.
    again = _revoke_args(secrets / "root_ca_key", root, new_crt, secrets / "password", ["--dir", str(authority_dir)])
    assert cirrus_main(again) != 0
    assert "issues now" in capsys.readouterr().err


def test_an_arl_listing_the_active_intermediate_stops_issuance_with_nothing_recorded(
    authority_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = authority_dir / "secrets"
    root, old = authority_dir / "certs" / "root_ca.crt", authority_dir / "certs" / "intermediate_ca.crt"
    services, api = _fresh(authority_dir)
    try:
        csr, _ = make_csr("before.example.com", ["before.example.com"])
        r = api.post("/1.0/sign", json={"csr": csr, "ott": mint_sign_token(authority_dir, "before.example.com",
                                                                             ["before.example.com"])})  # fmt: skip
        assert r.status_code == 201, r.text
        before_crt = r.get_json()["crt"]
    finally:
        services.close()

    # Another machine (the root's) revokes it with only the bucket: no deployment check there.
    blobs = Settings.load(authority_dir / "config.json").blobs
    assert cirrus_main(_revoke_args(secrets / "root_ca_key", root, old, secrets / "password",
                                    ["--blobs", blobs])) == 0  # fmt: skip

    services, api = _fresh(authority_dir)
    try:
        counts = _nothing_recorded(services)
        csr, _ = make_csr("after.example.com", ["after.example.com"])
        ott = mint_sign_token(authority_dir, "after.example.com", ["after.example.com"])
        r = api.post("/1.0/sign", json={"csr": csr, "ott": ott})
        assert r.status_code == 503, r.text
        assert r.get_json() == {"status": 503, "message": REFUSED}
        r = api.post("/1.0/renew", environ_overrides={"SSL_CLIENT_CERT": before_crt})
        assert r.status_code in (401, 503), r.text  # its issuer is revoked too: refused either way
        assert _nothing_recorded(services) == counts

        # A successor activated: the same token (never claimed) now gets a certificate from it.
        new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
        assert cirrus_main(["ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(new_crt),
                            "--kms", new_uri]) == 0  # fmt: skip
        assert cirrus_main(["ca", "activate", "--dir", str(authority_dir), "--cert", str(new_crt)]) == 0
        services.rotating.rotation.recheck = 0  # type: ignore[union-attr] - see the switch now, not in 5 s
        r = api.post("/1.0/sign", json={"csr": csr, "ott": ott})
        assert r.status_code == 201, r.text
        assert r.get_json()["ca"] == new_crt.read_text()
    finally:
        services.close()


def test_a_further_authority_stops_signing_under_its_revoked_intermediate(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    dep = deployment
    off, pw = dep.root.parent, dep.dir / "secrets" / "password"
    # The ceremony with --dir refuses: `teams` issues with that intermediate and has no successor.
    args = _revoke_args(off / "root_key", dep.root, dep.issuers["teams"], pw, ["--dir", str(dep.dir)])
    capsys.readouterr()
    assert cirrus_main(args) != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "authority 'teams' issues with that intermediate" in err, err

    blobs = Settings.load(dep.dir / "config.json").blobs
    assert cirrus_main(_revoke_args(off / "root_key", dep.root, dep.issuers["teams"], pw, ["--blobs", blobs])) == 0
    services, api = _fresh(dep.dir)
    try:
        counts = _nothing_recorded(services)
        csr, _ = make_csr("svc.teams.example", ["svc.teams.example"])
        r = api.post("/teams/1.0/sign", json={"csr": csr, "ott": token_for(dep, "teams-admin", "svc.teams.example",
                                                                            prefix="/teams")})  # fmt: skip
        assert r.status_code == 503, r.text
        assert r.get_json() == {"status": 503, "message": REFUSED}
        assert _nothing_recorded(services) == counts
        # The other authorities keep issuing.
        csr, _ = make_csr("svc.deep.example", ["svc.deep.example"])
        r = api.post("/deep/1.0/sign", json={"csr": csr, "ott": token_for(dep, "deep-admin", "svc.deep.example",
                                                                          prefix="/deep")})  # fmt: skip
        assert r.status_code == 201, r.text
    finally:
        services.close()


def test_acme_finalize_under_a_revoked_intermediate_is_unavailable_not_a_refusal(authority_dir: Path) -> None:
    """A 503 (not a 4xx) so the ACME order returns to `ready` and can be finalized after the switch."""
    from cryptography import x509

    from shared.acme.identifiers import Identifier
    from shared.api.acme_mount import build_acme
    from shared.errors import Unavailable

    secrets = authority_dir / "secrets"
    blobs = Settings.load(authority_dir / "config.json").blobs
    assert cirrus_main(_revoke_args(secrets / "root_ca_key", authority_dir / "certs" / "root_ca.crt",
                                    authority_dir / "certs" / "intermediate_ca.crt", secrets / "password",
                                    ["--blobs", blobs])) == 0  # fmt: skip
    services = build_services(Settings.load(authority_dir / "config.json"))
    try:
        server = services.lazy("acme", build_acme)
        csr = x509.load_pem_x509_csr(make_csr("acme.example.com", ["acme.example.com"])[0].encode())
        with pytest.raises(Unavailable, match="issuing intermediate has been revoked"):
            server._svc.finalizer.issue(csr, [Identifier("dns", "acme.example.com")], provisioner="acme",
                                        account_id="acct", replaces=None, not_before=None, not_after=None)  # fmt: skip
        assert _nothing_recorded(services) == (0, 0)
    finally:
        services.close()
