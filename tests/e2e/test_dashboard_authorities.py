"""The dashboard across several issuing authorities and intermediate generations (issue 16/17 follow-up).

On the multi-authority deployment (tests/e2e/multi_authority.py: `default`, `teams` at /teams/,
`deep` two levels down at /deep/): the certificates list shows every authority's certificates
(HTML and CSV), a further authority's certificate is revoked through the authority that issued
it (its CRL and OCSP then say revoked), and the authorities page shows each authority with its
chain, generations, CRL state and OCSP signer, and each root's ARL. On a single authority with a
rotation: staged, active and retired generations, and a revoked intermediate in the root's ARL.
Checks are made on the DOM (the standard library's HTMLParser), not on substrings.
"""

from __future__ import annotations

import csv
import io
from html.parser import HTMLParser
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from werkzeug.test import Client

from shared.api.app import CirrusApp
from shared.api.mounts import default_mounts
from shared.cli import main as cirrus_main
from shared.cli.crl import run_publish
from shared.config import Settings
from shared.runtime import build_services
from tests.e2e.multi_authority import Deployment, crt_of, sign_and_key, sign_at
from tests.e2e.test_rotation import new_intermediate
from tests.unit.dashboard.test_dashboard import BASE, sign_in


class Dom(HTMLParser):
    """Tables by caption (rows of cell texts) and the page's dt -> dd texts, in order."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.definitions: list[tuple[str, str]] = []
        self._caption: str | None = None
        self._in: str = ""
        self._text = ""
        self._row: list[str] | None = None
        self._dt = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("caption", "td", "dt", "dd"):
            self._in, self._text = tag, ""
        elif tag == "tr":
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        text = " ".join(self._text.split())
        if tag == "caption":
            self._caption = text
            self.tables[text] = []
        elif tag == "td" and self._row is not None:
            self._row.append(text)
        elif tag == "tr" and self._row and self._caption is not None:
            self.tables[self._caption].append(self._row)
            self._row = None
        elif tag == "dt":
            self._dt = text
        elif tag == "dd":
            self.definitions.append((self._dt, text))
        if tag == self._in:
            self._in = ""

    def handle_data(self, data: str) -> None:
        if self._in:
            self._text += data


def _dom(api: Client, path: str) -> Dom:
    r = api.get(f"{BASE}/dashboard{path}")
    assert r.status_code == 200, r.text
    return Dom(r.text)


def test_certificates_of_every_authority_are_listed_and_revoked_by_their_issuer(deployment: Deployment) -> None:
    dep = deployment
    issued = {
        "default": sign_and_key(dep, "admin", "svc.default.example")[0],
        "teams": x509.load_pem_x509_certificate(sign_at(dep, "teams-admin", "svc.teams.example",
                                                        prefix="/teams")["crt"].encode()),
        "deep": x509.load_pem_x509_certificate(sign_at(dep, "deep-admin", "svc.deep.example",
                                                       prefix="/deep")["crt"].encode()),
    }  # fmt: skip
    csrf = sign_in(dep.api, dep.services)
    rows = _dom(dep.api, "/certificates").tables["Current certificates, soonest expiry first"]
    listed = {row[0]: row[4] for row in rows}
    ids = {name: dep.services.store.get_certificate(str(c.serial_number)).authority_id  # type: ignore[union-attr]
           for name, c in issued.items()}  # fmt: skip
    assert listed == {str(c.serial_number): ids[name] for name, c in issued.items()}
    exported = dep.api.get(f"{BASE}/dashboard/certificates?format=csv").get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(exported)))
    assert {r["serial"]: r["authority_id"] for r in table} == listed

    # The teams certificate: a revoke form, then revoked by the teams authority.
    teams = issued["teams"]
    serial = str(teams.serial_number)
    page = dep.api.get(f"{BASE}/dashboard/certificates/{serial}")
    assert page.status_code == 200 and f"/dashboard/certificates/{serial}/revoke" in page.text
    done = dep.api.post(f"{BASE}/dashboard/certificates/{serial}/revoke",
                        data={"reason": "1", "csrf": csrf, "confirm": "yes"})  # fmt: skip
    assert done.status_code == 200 and "Certificate revoked." in done.text, done.text
    revocation = dep.services.store.get_revocation(serial)
    assert revocation is not None and revocation.reason_code == 1
    assert dep.services.store.get_revocation(str(issued["deep"].serial_number)) is None
    # Its own CRL lists it, and OCSP (answering from the published CRLs) says revoked.
    run_publish(dep.services)
    req = ocsp.OCSPRequestBuilder().add_certificate(teams, crt_of(dep.issuers["teams"]), hashes.SHA1()).build()
    r = dep.api.post("/ocsp", data=req.public_bytes(serialization.Encoding.DER),
                     headers={"Content-Type": "application/ocsp-request"})  # fmt: skip
    answer = ocsp.load_der_ocsp_response(r.get_data())
    assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED

    page = _dom(dep.api, "/authorities")
    crls = {name: page.tables[f"{name}: CRLs"] for name in ("default", "teams", "deep")}
    assert crls["teams"][0][0] == ids["teams"] and crls["teams"][0][4] == "1"  # one entry: the revoked one
    assert crls["deep"][0][4] == "0" and crls["default"][0][4] == "0"
    for rows in crls.values():
        assert rows[0][1].endswith("Z") and rows[0][2].endswith("Z"), rows  # last published, next update


class _Form(Dom):
    """Also each select's options: select id -> [(value, label)]."""

    def __init__(self, html: str) -> None:
        self.options: dict[str, list[tuple[str, str]]] = {}
        self._select = ""
        self._option: str | None = None
        super().__init__(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "select":
            self._select = dict(attrs).get("id") or ""
            self.options[self._select] = []
        elif tag == "option":
            self._option, self._label = dict(attrs).get("value") or "", ""
        super().handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "option" and self._option is not None:
            self.options[self._select].append((self._option, self._label.strip()))
            self._option = None
        super().handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._label += data
        super().handle_data(data)


def test_endpoints_of_every_authority_are_listed_and_filtered_by_any_provisioner(deployment: Deployment) -> None:
    """The endpoints page (by id and by expiry, HTML and CSV) and its provisioner filter cover every
    authority; one id cursor pages across them without a gap or a repeat."""
    from shared.dashboard import listing

    dep = deployment
    sign_and_key(dep, "admin", "svc.default.example")
    sign_at(dep, "teams-admin", "svc.teams.example", prefix="/teams")
    sign_at(dep, "deep-admin", "svc.deep.example", prefix="/deep")
    names = {"svc.default.example", "svc.teams.example", "svc.deep.example"}
    sign_in(dep.api, dep.services)
    for sort in ("id", "expiry"):
        page = _Form(dep.api.get(f"{BASE}/dashboard/endpoints?sort={sort}").get_data(as_text=True))
        rows = page.tables["Endpoints"]
        assert {r[0] for r in rows} == names, (sort, rows)
        assert {(r[0], r[1]) for r in rows} >= {("svc.teams.example", "teams-admin"),
                                                ("svc.deep.example", "deep-admin")}  # fmt: skip
    offered = dict(page.options["provisioner"])
    ids = {p.ref.name: p.ref.id for p in dep.services.provisioners}
    teams_id = next(v for v, label in offered.items() if label == "teams-admin")
    assert {"admin", "teams-admin", "deep-admin"} <= set(offered.values()) and "admin" in ids
    for sort in ("id", "expiry"):
        filtered = _Form(dep.api.get(f"{BASE}/dashboard/endpoints?sort={sort}&provisioner={teams_id}")
                         .get_data(as_text=True))  # fmt: skip
        assert [r[0] for r in filtered.tables["Endpoints"]] == ["svc.teams.example"], sort
    exported = dep.api.get(f"{BASE}/dashboard/endpoints?format=csv").get_data(as_text=True)
    assert {r["name"] for r in csv.DictReader(io.StringIO(exported))} == names

    every = [dep.services.settings.authority_id, *(a.authority_id for a in dep.services.settings.authorities)]
    seen: list[str] = []
    cursor = ""
    while True:
        got, cursor = listing.list_endpoints(dep.services.store, authority_id=every, now=dep.services.clock.now(),  # type: ignore[arg-type]
                                             after=cursor, limit=1)  # fmt: skip
        seen += [r.endpoint.name for r in got]
        if not cursor:
            break
    assert sorted(seen) == sorted(names)
    # One authority alone still lists only its own.
    only, _ = listing.list_endpoints(dep.services.store, authority_id=every[1], now=dep.services.clock.now())  # type: ignore[arg-type]
    assert [r.endpoint.authority_id for r in only] == [every[1]]


def test_authorities_page_shows_every_authority_with_its_chain_and_ocsp(deployment: Deployment) -> None:
    dep = deployment
    sign_in(dep.api, dep.services)
    page = _dom(dep.api, "/authorities")
    subject = {name: crt_of(path).subject.rfc4514_string() for name, path in dep.issuers.items()}
    for name in ("default", "teams", "deep"):
        chain = page.tables[f"{name}: chain (issuing CA first)"]
        assert chain[0][0] == subject[name]
        generations = page.tables[f"{name}: intermediate generations"]
        assert [(g[0], g[2]) for g in generations] == [("active", subject[name])]
        assert page.tables[f"{name}: CRLs"][0][1] == "not published yet"
    assert len(page.tables["deep: chain (issuing CA first)"]) == 2  # deep, then mid
    signers = [dd for dt_, dd in page.definitions if dt_ == "OCSP answers signed by"]
    # `cirrus init` configures a delegated responder key; each authority's certificate for it
    # is issued at the first CRL publication.
    assert signers == ["delegated responder certificate, not issued yet"] * 3
    run_publish(dep.services)
    page = _dom(dep.api, "/authorities")
    signers = [dd for dt_, dd in page.definitions if dt_ == "OCSP answers signed by"]
    assert len(signers) == 3 and all(s.startswith("delegated responder certificate, valid until 20") for s in signers)
    arl = page.tables["Root authority revocation lists (revoked intermediates)"]
    assert len(arl) == 1 and arl[0][2] == "none published (no intermediate revoked)"


def test_generations_and_the_root_arl_on_the_authorities_page(authority_dir: Path, tmp_path: Path) -> None:
    new_crt, new_uri = new_intermediate(authority_dir, tmp_path, "Gen2")
    assert cirrus_main(["ca", "stage-intermediate", "--dir", str(authority_dir), "--cert", str(new_crt),
                        "--kms", new_uri]) == 0  # fmt: skip
    services = build_services(Settings.load(authority_dir / "config.json"))
    api = Client(CirrusApp(services, mounts=default_mounts(services)))
    old = crt_of(authority_dir / "certs" / "intermediate_ca.crt")
    new = crt_of(new_crt)
    try:
        sign_in(api, services)
        rows = _dom(api, "/authorities").tables["default: intermediate generations"]
        assert [(r[0], r[2]) for r in rows] == [("active", old.subject.rfc4514_string()),
                                                ("staged", new.subject.rfc4514_string())]  # fmt: skip
        assert rows[1][1] == ""  # not issuing yet

        assert cirrus_main(["ca", "activate", "--dir", str(authority_dir), "--cert", str(new_crt)]) == 0
        secrets = authority_dir / "secrets"
        assert cirrus_main(["ca", "revoke-intermediate", "--root-kms", f"softkms:path={secrets}/root_ca_key",
                            "--root", str(authority_dir / "certs" / "root_ca.crt"), "--cert",
                            str(authority_dir / "certs" / "intermediate_ca.crt"), "--dir", str(authority_dir),
                            "--password-file", str(secrets / "password")]) == 0  # fmt: skip
        services.rotating.rotation.recheck = 0  # type: ignore[union-attr] - see the switch now
        page = _dom(api, "/authorities")
        rows = page.tables["default: intermediate generations"]
        assert [r[0] for r in rows] == ["retired", "active"]
        assert rows[1][1].endswith("Z")  # issuing since the activation
        assert page.tables["default: chain (issuing CA first)"][0][0] == new.subject.rfc4514_string()
        assert [r[0] for r in page.tables["default: CRLs"]] == [services.settings.authority_id,
                                                                 rows[1][5]]  # fmt: skip
        arl = page.tables["Root authority revocation lists (revoked intermediates)"]
        assert arl[0][2] == "1" and arl[0][5] == str(old.serial_number)
    finally:
        services.close()
