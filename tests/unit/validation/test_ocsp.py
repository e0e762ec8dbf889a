"""The OCSP responder and its HTTP handler, against CRLs really published to a blob store."""

from __future__ import annotations

import base64
import datetime as dt
import urllib.parse
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from shared.store.memory import MemoryStore
from shared.validation.ocsp_http import CRLEndpoint
from shared.validation.publisher import CRL_CONTENT_TYPE, CRLAuthority, CRLPublisher, CRLSchedule
from tests.unit.validation.va_pki import BASE_URL, T0, Chain, World, make_chain


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _verify(resp: ocsp.OCSPResponse, chain: Chain) -> None:
    key = chain.ca_key.public_key()
    key.verify(resp.signature, resp.tbs_response_bytes, ec_sha256())
    assert resp.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(key).digest


def ec_sha256() -> object:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.ECDSA(hashes.SHA256())


def test_good_revoked_unknown(world: World) -> None:
    good, bad = world.issue(), world.issue()
    world.revoke(bad, 1)
    never_issued = world.chain.leaf()  # signed by the CA but never recorded
    world.publisher.publish()

    r = world.ask(good)
    assert r.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert r.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert r.serial_number == good.serial_number
    assert r.this_update_utc == T0 and r.next_update_utc == T0 + dt.timedelta(days=7)
    assert isinstance(r.hash_algorithm, hashes.SHA1)
    _verify(r, world.chain)

    r = world.ask(bad, algorithm=hashes.SHA256())
    assert r.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert r.revocation_time_utc == T0 - dt.timedelta(minutes=5)
    assert r.revocation_reason == x509.ReasonFlags.key_compromise
    assert isinstance(r.hash_algorithm, hashes.SHA256)  # CertID echoed with the request's hash
    req = ocsp.load_der_ocsp_request(world.request(bad, algorithm=hashes.SHA256()))
    assert (r.issuer_key_hash, r.issuer_name_hash) == (req.issuer_key_hash, req.issuer_name_hash)
    assert world.ask(never_issued).certificate_status == ocsp.OCSPCertStatus.UNKNOWN  # OCSP-07


def test_revoked_without_reason_and_cache_keyed_by_generation(world: World) -> None:
    leaf = world.issue()
    world.publisher.publish()
    first = world.responder.respond(world.request(leaf))
    assert world.responder.respond(world.request(leaf)).der == first.der  # pre-signed reuse
    world.revoke(leaf, 0)
    world.publisher.publish()
    world.clock.advance(dt.timedelta(seconds=31))  # past the recheck interval
    r = ocsp.load_der_ocsp_response(world.responder.respond(world.request(leaf)).der)
    assert r.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert r.revocation_reason is None  # unspecified: absent


def test_unknown_is_not_cached(world: World) -> None:
    leaf = world.chain.leaf()
    world.publisher.publish()
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.UNKNOWN
    world.store.record_issuance(world.chain.record(leaf))
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.GOOD  # OCSP-08


def test_nonce_echo(world: World) -> None:
    leaf = world.issue()
    world.publisher.publish()
    r = world.ask(leaf, nonce=b"\x01" * 16)
    assert r.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"\x01" * 16
    r = world.ask(leaf, nonce=b"\x02" * 40)  # over 32 octets: answered without an echo
    assert r.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    with pytest.raises(x509.ExtensionNotFound):
        r.extensions.get_extension_for_class(x509.OCSPNonce)


def test_error_statuses(world: World) -> None:
    leaf = world.issue()
    # no CRL published yet: do not guess
    assert _status(world.responder.respond(world.request(leaf)).der) == "TRY_LATER"
    world.publisher.publish()
    other = make_chain()
    foreign = other.leaf()
    req = ocsp.OCSPRequestBuilder().add_certificate(foreign, other.ca, hashes.SHA1()).build()
    assert _status(world.responder.respond(req.public_bytes(serialization.Encoding.DER)).der) == (
        "UNAUTHORIZED"
    )
    good = world.request(leaf)
    for garbage in (b"", b"\x30\x03\x02\x01", good[:-3], b"\xff" * 10, b"A" * 5000):
        assert _status(world.responder.respond(garbage).der) == "MALFORMED_REQUEST"
    # two CertIDs (hand-built: cryptography's builder refuses), RFC 5019 allows one
    assert _status(world.responder.respond(_two_certids(good)).der) == "MALFORMED_REQUEST"
    # an unknown CertID hash algorithm
    sha1_oid = bytes.fromhex("06052b0e03021a")
    odd = good.replace(sha1_oid, bytes.fromhex("06052b0e03021b"))
    assert _status(world.responder.respond(odd).der) == "MALFORMED_REQUEST"
    # stale CRL (publisher stalled past nextUpdate): tryLater, not a stale answer
    world.clock.advance(dt.timedelta(days=8))
    assert _status(world.responder.respond(good).der) == "TRY_LATER"


def _two_certids(req: bytes) -> bytes:
    """OCSPRequest with its single Request duplicated."""
    from shared.validation import der

    s, e = der.expect(req, 0, der.SEQUENCE)  # OCSPRequest
    ts, te = der.expect(req, s, der.SEQUENCE, e)  # TBSRequest
    ls, le = der.expect(req, ts, der.SEQUENCE, te)  # requestList
    one = req[ls:le]
    tbs = der.tlv(der.SEQUENCE, der.tlv(der.SEQUENCE, one + one) + req[le:te])
    return der.tlv(der.SEQUENCE, tbs)


def _status(data: bytes) -> str:
    return ocsp.load_der_ocsp_response(data).response_status.name


def test_corrupt_or_foreign_crl_is_refused_and_last_good_kept(world: World) -> None:
    leaf = world.issue()
    world.publisher.publish()
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.GOOD
    world.revoke(leaf, 1)
    current = world.blobs.read("crl/intermediate.crl")
    assert current is not None
    # a corrupted upload, then one signed by another CA
    world.blobs.write(
        "crl/intermediate.crl",
        current.data[:-20] + b"\x00" * 20,
        content_type=CRL_CONTENT_TYPE,
        if_generation_match=current.generation,
    )
    world.clock.advance(dt.timedelta(seconds=31))
    world.responder._cache.clear()
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.GOOD  # last good data
    assert world.crls.failures == 1
    impostor = make_chain()
    forged = CRLPublisher(
        revocations=world.store,
        counter=MemoryStore(),
        blobs=world.blobs,
        clock=world.clock,
        schedule=CRLSchedule(base_url=BASE_URL),
        authorities=[CRLAuthority("intermediate", impostor.ca, impostor.ca_signer)],
    )
    forged.publish()
    world.clock.advance(dt.timedelta(seconds=31))
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert world.crls.failures == 2
    # the real publisher (higher number) fixes it
    world.publisher.publish()
    world.clock.advance(dt.timedelta(seconds=31))
    assert world.ask(leaf).certificate_status == ocsp.OCSPCertStatus.REVOKED


def test_sharded(tmp_path: Path) -> None:
    w = World(tmp_path, shards=3)
    leaves = [w.issue() for _ in range(9)]
    for leaf in leaves[::2]:
        w.revoke(leaf, 4)
    w.publisher.publish()
    for i, leaf in enumerate(leaves):
        want = ocsp.OCSPCertStatus.REVOKED if i % 2 == 0 else ocsp.OCSPCertStatus.GOOD
        assert w.ask(leaf).certificate_status == want


def test_http_get_post_and_caching_headers(world: World) -> None:
    leaf = world.issue()
    world.publisher.publish()
    body = world.request(leaf)
    status, headers, post = world.http.handle_ocsp("POST", "", body)
    assert status == 200 and headers["Content-Type"] == "application/ocsp-response"
    assert headers["Cache-Control"] == (
        f"max-age={7 * 86400}, public, no-transform, must-revalidate"
    )
    assert headers["Last-Modified"] == "Sun, 01 Mar 2026 12:00:00 GMT"
    assert headers["Expires"] == "Sun, 08 Mar 2026 12:00:00 GMT"
    assert headers["ETag"].startswith('"')
    b64 = base64.b64encode(body).decode()
    for tail in (
        b64,
        urllib.parse.quote(b64, safe=""),
        base64.urlsafe_b64encode(body).decode().rstrip("="),
    ):
        status, _, got = world.http.handle_ocsp("GET", tail, b"")
        assert status == 200 and got == post
    for tail in ("", "not base64!!", "%%%"):
        status, headers, got = world.http.handle_ocsp("GET", tail, b"")
        assert status == 200 and _status(got) == "MALFORMED_REQUEST"
        assert headers["Cache-Control"] == "no-store"
    status, headers, _ = world.http.handle_ocsp("PUT", "", b"")
    assert status == 405 and headers["Allow"] == "GET, POST"
    status, headers, _ = world.http.handle_ocsp("POST", "", world.request(leaf, nonce=b"n" * 16))
    assert headers["Cache-Control"] == "private, no-store"


def test_http_crl(world: World) -> None:
    world.publisher.publish()
    crls = CRLEndpoint(blobs=world.blobs, clock=world.clock, default_authority_id="intermediate")
    status, headers, body = crls.handle_crl("GET", "", "")
    assert status == 200 and headers["Content-Type"] == "application/pkix-crl"
    assert x509.load_der_x509_crl(body).issuer == world.chain.ca.subject
    assert headers["Cache-Control"] == "public, max-age=3600"
    status, headers, body = crls.handle_crl("GET", "intermediate.crl", "pem")
    assert status == 200 and body.startswith(b"-----BEGIN X509 CRL-----")
    assert crls.handle_crl("GET", "../../etc/passwd", "")[0] == 404
    assert crls.handle_crl("GET", "nope.crl", "")[0] == 404
    assert crls.handle_crl("POST", "", "")[0] == 405
