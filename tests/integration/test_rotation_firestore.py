"""The rotation record on Firestore (the Cloud Functions' store): stage, activate, retire, and the running view.

Against Google's Firestore emulator: concurrent stagings land once each (compare-and-set on the
document's version), and an instance's view switches when another process activates a generation.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from cryptography import x509

from shared.clock import FixedClock
from shared.rotation import IntermediateRotation
from shared.rotation_record import COLLECTION, Generation, activate, fingerprint, retire, stage
from tests.unit.core.test_rotation_rules import T0, _ca

pytestmark = pytest.mark.firestore


def test_rotation_record_on_firestore(tmp_path: Path) -> None:
    from shared.retry import RetryPolicy
    from shared.store.firestore import FirestoreStore
    from tests.contract.store_firestore import PROJECT, emulator_host, unique_prefix

    emulator_host()
    prefix = unique_prefix()
    store, other = (FirestoreStore(project=PROJECT, prefix=prefix, retry=RetryPolicy(deadline=30.0)) for _ in range(2))
    try:
        certs: list[x509.Certificate] = [_ca(f"F{i}")[0] for i in range(5)]
        threads = [threading.Thread(target=stage, args=(store if i % 2 else other, "a1"),
                                    kwargs={"chain": [c], "key_uri": f"k{i}", "not_before": None})
                   for i, c in enumerate(certs[1:])]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        found = store.get_document(COLLECTION, "a1")
        assert found is not None and len(found[0]["staged"]) == 4
        base = Generation(chain=(certs[0],), key_uri="k", crl_id="a1", base=True)
        view = IntermediateRotation(authority_id="a1", base=base, documents=store, clock_now=FixedClock(T0).now,
                                    recheck=0)  # fmt: skip
        assert view.active().base and len(view.generations()) == 5
        activate(other, "a1", fp=fingerprint(certs[3]), at=T0 - dt.timedelta(seconds=1))
        assert view.active().certificate == certs[3]
        assert retire(other, "a1", fp=fingerprint(certs[2]))
        assert fingerprint(certs[2]) not in {g.fingerprint for g in view.generations()}
    finally:
        store.close()
        other.close()
