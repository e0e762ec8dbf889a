"""Real stand-ins for ACME tests: a small CA, a WSGI mount, a JWS client, responders.

The CA is a genuine cryptography-built root + intermediate that signs real
certificates and records them in the real `MemoryStore`, so finalize,
revocation and ARI run against the same storage semantics as production.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import http.server
import ipaddress
import json
import secrets
import socket
import ssl
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

from shared.acme.config import ACMEProvisionerConfig
from shared.acme.finalize import IssuedChain
from shared.acme.identifiers import Identifier
from shared.acme.nonce_ledger import SharedNonceLedger
from shared.acme.server import ACMEServer
from shared.clock import Clock, SystemClock
from shared.errors import Forbidden
from shared.model import CertificateKind, CertificateRecord, ProvisionerRef, Revocation, subject_key
from shared.store.memory import MemoryStore


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class TestCA:
    """Root + intermediate; implements Finalizer, Revoker (records in a MemoryStore)."""

    __test__ = False

    def __init__(self, store: MemoryStore, *, clock: Clock | None = None, deny: Sequence[str] = ()) -> None:
        self.store = store
        self.clock = clock or SystemClock()
        self.deny = set(deny)
        now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = self._ca(_name("Cirrus Test Root"), self.root_key, self.root_key, None, now)
        self.int_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = self._ca(_name("Cirrus Test Intermediate"), self.int_key, self.root_key, self.root, now)
        self.issued: list[str] = []

    @staticmethod
    def _ca(
        name: x509.Name, key: Any, signer: Any, parent: x509.Certificate | None, now: dt.datetime
    ) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(parent.subject if parent else name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None if parent is None else 0), True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if parent is not None:
            b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False)
        return b.sign(signer, hashes.SHA256())

    def check_identifiers(self, identifiers: Sequence[Identifier], *, provisioner: str) -> None:
        for ident in identifiers:
            if ident.base in self.deny or ident.value in self.deny:
                raise Forbidden(f"policy forbids {ident.value}")

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        identifiers: Sequence[Identifier],
        *,
        provisioner: str,
        account_id: str,
        replaces: str | None,
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
    ) -> IssuedChain:
        self.check_identifiers(identifiers, provisioner=provisioner)
        now = self.clock.now()
        nb = not_before or now - dt.timedelta(minutes=1)
        na = not_after or now + dt.timedelta(hours=24)
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(i.value)) if i.type == "ip" else x509.DNSName(i.value)
            for i in identifiers
        ]
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else identifiers[0].value
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.intermediate.subject)
            .public_key(csr.public_key())
            .serial_number(serial)
            .not_valid_before(nb)
            .not_valid_after(na)
            .add_extension(x509.SubjectAlternativeName(sans), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.int_key.public_key()), False)
            .sign(self.int_key, hashes.SHA256())
        )
        names = tuple(i.value for i in identifiers)
        record = CertificateRecord(
            serial=str(serial),
            authority_id="test",
            kind=CertificateKind.X509,
            der=cert.public_bytes(serialization.Encoding.DER),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            provisioner=ProvisionerRef(provisioner, provisioner, "ACME"),
            endpoint_id="ep-" + hashlib.sha256(subject_key(cn, names).encode()).hexdigest()[:16],
            subject_key=subject_key(cn, names),
            common_name=cn,
            sans=names,
            issued_at=now,
            renewed_from=replaces,
            operation="sign",
        )
        self.store.record_issuance(record)
        self.issued.append(str(serial))
        return IssuedChain(
            serial=str(serial),
            leaf=cert,
            chain=(self.intermediate,),
            alternates=((self.intermediate, self.root),),
        )

    def revoke(self, serial: str, *, reason_code: int, provisioner: str, account_id: str | None) -> None:
        record = self.store.get_certificate(serial)
        assert record is not None
        self.store.revoke(
            Revocation(
                serial=serial,
                authority_id="test",
                revoked_at=self.clock.now(),
                not_after=record.not_after,
                reason_code=reason_code,
                provisioner_id=provisioner,
            )
        )


def provisioner(name: str = "acme", **cirrus: Any) -> ACMEProvisionerConfig:
    """A loopback-friendly provisioner config."""
    extra: dict[str, Any] = {"allowLoopback": True, "validationTimeout": 3}
    top = {k: cirrus.pop(k) for k in list(cirrus) if k in ("requireEAB", "challenges", "termsOfService")}
    extra.update(cirrus)
    return ACMEProvisionerConfig.from_json({"type": "ACME", "name": name, "cirrus": extra, **top})


def build_server(
    store: MemoryStore,
    ca: TestCA,
    provs: Sequence[ACMEProvisionerConfig],
    *,
    clock: Clock | None = None,
    external_url: str | None = None,
    nonce_ledger: SharedNonceLedger | None = None,
) -> ACMEServer:
    return ACMEServer(
        clock=clock or SystemClock(),
        documents=store,
        ledger=store,
        provisioners={p.name: p for p in provs},
        finalizer=ca,
        revoker=ca,
        certificates=store,
        revocations=store,
        nonce_key=b"k" * 32,
        external_url=external_url,
        nonce_ledger=nonce_ledger,
    )


def wsgi_app(server: ACMEServer) -> Any:
    """Mount like the lead's app: /acme/{prov}/... and /2.0/acme/{prov}/..."""

    @Request.application  # type: ignore[misc]
    def app(request: Request) -> Response:
        parts = request.path.split("/")
        if parts[1:3] == ["2.0", "acme"] and len(parts) > 3:
            return server.handle(request, parts[3], "/".join(parts[4:]))
        if parts[1] == "acme" and len(parts) > 2:
            return server.handle(request, parts[2], "/".join(parts[3:]))
        return Response("not found", 404)

    return app


# ---------------------------------------------------------------------- JWS client


def jwk_of(key: Any) -> dict[str, str]:
    pub = key.public_key()
    if isinstance(pub, ec.EllipticCurvePublicKey):
        n = pub.public_numbers()
        size = (pub.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[pub.curve.key_size]
        return {
            "kty": "EC",
            "crv": crv,
            "x": b64(n.x.to_bytes(size, "big")),
            "y": b64(n.y.to_bytes(size, "big")),
        }
    if isinstance(pub, rsa.RSAPublicKey):
        n = pub.public_numbers()
        return {
            "kty": "RSA",
            "n": b64(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")),
            "e": b64(n.e.to_bytes((n.e.bit_length() + 7) // 8, "big")),
        }
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}


def sign(key: Any, data: bytes, alg: str) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        h = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[alg]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(h)))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)  # type: ignore[no-any-return]


def default_alg(key: Any) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    return "RS256" if isinstance(key, rsa.RSAPrivateKey) else "EdDSA"


def make_jws(
    key: Any,
    url: str,
    payload: Any,
    *,
    nonce: str | None,
    kid: str | None = None,
    alg: str | None = None,
    extra: dict[str, Any] | None = None,
    jwk: bool = True,
) -> dict[str, str]:
    header: dict[str, Any] = {"alg": alg or default_alg(key), "url": url}
    if nonce is not None:
        header["nonce"] = nonce
    if kid:
        header["kid"] = kid
    elif jwk:
        header["jwk"] = jwk_of(key)
    header.update(extra or {})
    prot = b64(json.dumps(header).encode())
    body = b"" if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    pl = b64(body)
    # A header alg that does not fit the key still gets a real signature (by the key's own alg),
    # so the server's refusal is about the alg, not a broken signature.
    sig = b"" if header["alg"] == "none" else sign(key, f"{prot}.{pl}".encode(), default_alg(key))
    return {"protected": prot, "payload": pl, "signature": b64(sig)}


class ACMETestClient:
    """A hand-rolled RFC 8555 client over werkzeug's test client (for crafting bad input)."""

    __test__ = False

    def __init__(self, app: Any, *, base: str = "http://localhost/acme/acme", key: Any = None) -> None:
        self.http = Client(app)
        self.base = base
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.kid: str | None = None
        self.directory = self.http.get(base + "/directory").get_json()

    def nonce(self) -> str:
        return str(self.http.head(self.directory["newNonce"]).headers["Replay-Nonce"])

    def raw(self, url: str, body: Any, content_type: str = "application/jose+json") -> Any:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.http.post(url, data=data, headers={"Content-Type": content_type})

    def post(self, url: str, payload: Any, *, key: Any = None, kid: str | None = "auto", **kw: Any) -> Any:
        k = key or self.key
        use_kid = self.kid if kid == "auto" else kid
        nonce = kw.pop("nonce", None) or self.nonce()
        return self.raw(url, make_jws(k, url, payload, nonce=nonce, kid=use_kid, **kw))

    def register(self, **payload: Any) -> Any:
        payload.setdefault("termsOfServiceAgreed", True)
        r = self.post(self.directory["newAccount"], payload, kid=None)
        if r.status_code in (200, 201):
            self.kid = r.headers["Location"]
        return r

    def key_authorization(self, token: str) -> str:
        from shared.acme.jws import thumbprint

        return f"{token}.{thumbprint(jwk_of(self.key))}"


def make_csr(names: Sequence[str], *, key: Any = None, cn: str | None = None) -> tuple[Any, bytes]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    b = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(cn) if cn else x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(sans), False)
    )
    csr = b.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.DER)


# ---------------------------------------------------------------------- responders


class HTTP01Responder:
    """A real HTTP server on loopback serving /.well-known/acme-challenge/ tokens."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.redirects: dict[str, str] = {}
        self.hold: threading.Event | None = None  # when set to an Event, each GET waits for it (a slow applicant)
        tokens, redirects, responder = self.tokens, self.redirects, self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if responder.hold is not None:
                    responder.hold.wait(10)
                if self.path in redirects:
                    self.send_response(302)
                    self.send_header("Location", redirects[self.path])
                    self.end_headers()
                    return
                token = self.path.rsplit("/", 1)[-1]
                if self.path.startswith("/.well-known/acme-challenge/") and token in tokens:
                    body = tokens[token].encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alpn_cert(
    identifier: Identifier, key_auth: str, *, critical: bool = True, extra_san: str | None = None
) -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    digest = hashlib.sha256(key_auth.encode()).digest()
    san: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address(identifier.value))
        if identifier.type == "ip"
        else x509.DNSName(identifier.value)
    ]
    if extra_san:
        san.append(x509.DNSName(extra_san))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("acme"))
        .issuer_name(_name("acme"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(san), False)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31"), b"\x04\x20" + digest),
            critical,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


class TLSALPNResponder:
    """A real TLS server on loopback answering acme-tls/1 with a given certificate."""

    def __init__(self, key: Any, cert: x509.Certificate, *, alpn: str = "acme-tls/1") -> None:
        self.dir = tempfile.mkdtemp()
        cp, kp = Path(self.dir, "c.pem"), Path(self.dir, "k.pem")
        cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        kp.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cp, kp)
        self.ctx.set_alpn_protocols([alpn])
        self.sni: list[str | None] = []
        self.ctx.sni_callback = lambda sock, name, ctx: self.sni.append(name)  # type: ignore[assignment]
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()


def server_tls_files(ca: TestCA, d: Path) -> tuple[Path, Path, Path]:
    """A TLS server certificate for localhost/127.0.0.1 from the test CA: (chain, key, root bundle) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.int_key.public_key()), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(ca.int_key, hashes.SHA256())
    )
    chain, keyfile, bundle = d / "server-chain.pem", d / "server-key.pem", d / "bundle.pem"
    chain.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca.intermediate.public_bytes(serialization.Encoding.PEM)
    )
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    bundle.write_bytes(ca.root.public_bytes(serialization.Encoding.PEM))
    return chain, keyfile, bundle


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def random_name() -> str:
    return f"h{secrets.token_hex(4)}.example.test"


class ChallTestSrv:
    """pebble-challtestsrv (Debian `pebble`) as a loopback DNS server for tests.

    Every A query gets 127.0.0.1 (`-defaultIPv4`), so any name validates
    against loopback responders; TXT records are set through its management API.
    """

    def __init__(self) -> None:
        import subprocess
        import time
        import urllib.request

        self.dns_port, self.mgmt_port = free_port(), free_port()
        self.proc = subprocess.Popen(
            [
                "pebble-challtestsrv",
                "-dns01",
                f"127.0.0.1:{self.dns_port}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{self.mgmt_port}",
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._urlopen = urllib.request.urlopen
        deadline = time.monotonic() + 10
        while True:
            try:
                self._post("clear-txt", {"host": "_probe."})
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("pebble-challtestsrv did not start") from None
                time.sleep(0.05)

    @property
    def resolver(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    def _post(self, path: str, body: dict[str, Any]) -> None:
        import urllib.request

        req = urllib.request.Request(
            f"http://127.0.0.1:{self.mgmt_port}/{path}",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with self._urlopen(req, timeout=5) as r:
            r.read()

    def set_txt(self, host: str, value: str) -> None:
        self._post("set-txt", {"host": host.rstrip(".") + ".", "value": value})

    def clear_txt(self, host: str) -> None:
        self._post("clear-txt", {"host": host.rstrip(".") + "."})

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except Exception:
            self.proc.kill()
