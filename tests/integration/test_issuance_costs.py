"""Backend operations per issued certificate, counted through the real stack.

Drives step-ca's HTTP API (`CirrusApp`) with tokens minted as the step CLI
does, on `FirestoreStore` over the Firestore emulator and Cloud KMS over the
real client library and a fake KMS gRPC server (see `issuing_stack.py`).
Counts, per API call, Firestore commits, document writes (sent and applied),
documents read (every document a get names: Firestore bills a read for it
whether or not it exists) and queries, and every KMS RPC.

Targets from the serverless issue: exactly one KMS `AsymmetricSign` per
certificate (the public key is fetched once per instance, not per
certificate) and at most three document writes per issued certificate, now
four with the endpoint-month usage document (issue 17). The
table printed here (`pytest -s`) is the source of docs/costs.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from issuing_stack import Cost, Stack, issuing_stack, kms_call_summary

from shared.store import firestore_docs as docs

pytestmark = pytest.mark.firestore


@pytest.fixture
def stack(authority_dir: Path, firestore_emulator_host: str) -> Iterator[Stack]:
    with issuing_stack(authority_dir) as s:
        yield s


def measure(stack: Stack, call: object) -> tuple[object, Cost]:
    stack.start_metering()
    result = call() if callable(call) else call
    return result, stack.cost()


def print_table(rows: list[tuple[str, Cost, int]]) -> None:
    head = f"{'operation':<46} {'certs':>5} {'commits':>7} {'writes sent':>11} {'writes':>6} {'reads':>5} {'KMS calls'}"
    print("\n" + head)
    print("-" * len(head))
    for label, c, certs in rows:
        print(
            f"{label:<46} {certs:>5} {c.commits:>7} {c.writes_sent:>11} {c.writes_applied:>6} {c.reads:>5} "
            f"{kms_call_summary(c.kms)}"
        )


def test_cost_per_certificate(stack: Stack, tmp_path: Path) -> None:
    rows: list[tuple[str, Cost, int]] = []

    # Warm-up: the instance's first request is not typical (nothing to fetch per request, but
    # the gRPC channels connect); the KMS public key was fetched when the stack was built.
    assert stack.sign("warmup.example.com").status_code == 201

    # 1. /sign, renewal-enabled provisioner: a new endpoint per certificate.
    r, sign_new = measure(stack, lambda: stack.sign("svc.example.com"))
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    cert, key, chain = r.issued  # type: ignore[attr-defined]
    rows.append(("POST /1.0/sign (renewal enabled, new endpoint)", sign_new, 1))

    # 2. /sign, renewal-disabled provisioner: the first certificate for a subject creates the
    #    endpoint, the next ones join it (subject grouping).
    r, first_grouped = measure(stack, lambda: stack.sign("grouped.example.com", provisioner="norenew"))
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    rows.append(("POST /1.0/sign (renewal disabled, new subject)", first_grouped, 1))
    r, grouped = measure(stack, lambda: stack.sign("grouped.example.com", provisioner="norenew"))
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    rows.append(("POST /1.0/sign (renewal disabled, existing subj.)", grouped, 1))

    # 3. /renew with the Bearer (x5cInsecure) token: attaches to the old certificate's endpoint.
    r, renew = measure(stack, lambda: stack.renew_bearer(chain, key, tmp_path))
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]
    rows.append(("POST /1.0/renew (Bearer token)", renew, 1))

    # 4. /revoke with a one-time token (no certificate issued).
    r, revoke = measure(stack, lambda: stack.revoke(cert.serial_number))
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    rows.append(("POST /1.0/revoke (token)", revoke, 0))

    print_table(rows)

    # ------------------------------------------------------------------ targets
    issuing = [sign_new, first_grouped, grouped, renew]
    for c in issuing:
        assert c.kms == {"AsymmetricSign": 1}, c  # one KMS call per certificate, nothing else
        # At most four writes: the usage document (issue 17, kept in the issuance's own
        # transaction) is the fourth on a new endpoint; docs/costs.md says so.
        assert c.writes_applied <= 4, c
        assert c.writes_sent <= 4, c  # not even refused writes beyond four
        assert c.queries == 1, c  # the endpoint's active certificates, for its peak (metering)
    assert revoke.kms_calls == 0

    # The exact figures docs/costs.md quotes; a change here must update the document.
    # One transaction per issuance: token claim + certificate (+ new endpoint) + the month's usage;
    # reads: the claim, certificate and endpoint (one batch), the month's usage document, the
    # query of the endpoint's active certificates (one read each, at least one), their revocations.
    assert (sign_new.commits, sign_new.writes_applied, sign_new.reads) == (1, 4, 5)
    assert (first_grouped.commits, first_grouped.writes_applied, first_grouped.reads) == (1, 4, 6)
    assert (grouped.commits, grouped.writes_applied, grouped.reads) == (1, 3, 7)
    assert (renew.commits, renew.writes_applied, renew.reads) == (1, 3, 8)
    assert (revoke.commits, revoke.writes_applied, revoke.reads) == (2, 3, 7)  # claim; revocation + usage

    # And what those writes left behind: 1 + 1 + 2 signs + 1 renewal = 5 certificates,
    # 1 + 1 + 1 endpoints (the renewal and the grouped second cert join existing ones).
    counts = stack.counts()
    assert counts[docs.CERTIFICATES] == 5
    assert counts[docs.ENDPOINTS] == 3
    assert counts[docs.REVOCATIONS] == 1
    assert counts[docs.CLAIMS] == 6  # 4 sign tokens + 1 renew token + 1 revoke token
    assert counts[docs.EVENTS] == 0  # events ride inside the certificate/revocation documents


def test_sustained_issuance_costs_one_sign_per_certificate(stack: Stack) -> None:
    """Over many certificates, the per-certificate figures do not drift (no hidden per-N calls)."""
    n = 20
    stack.start_metering()
    for i in range(n):
        r = stack.sign(f"bulk{i}.example.com")
        assert r.status_code == 201, r.text
    c = stack.cost()
    print(f"\n{n} x POST /1.0/sign: {kms_call_summary(c.kms)}, writes {c.writes_applied}, reads {c.reads}")
    assert c.kms == {"AsymmetricSign": n}
    assert c.writes_applied == 4 * n and c.writes_sent == 4 * n
    assert c.reads == 5 * n
