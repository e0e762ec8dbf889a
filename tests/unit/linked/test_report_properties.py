"""Any report body, however malformed, is either checked items or one `BadRequest` (never a 500);
and the linked-mode config is refused with a message naming what to fix."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import BadRequest, ConfigError
from shared.linked.ingest import parse_report
from shared.linked.registry import LinkedAuthority
from shared.linked.sink import from_config
from shared.store.memory import MemoryStore

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def _pair() -> tuple[x509.Certificate, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "P Root")])
    root = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=9))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "l")]))
        .issuer_name(name).public_key(key.public_key()).serial_number(2).not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    return root, base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()


ROOT, LEAF = _pair()
LINK = LinkedAuthority(name="p", anchors=(ROOT,))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=30),
                    st.sampled_from(["issued", "revoked", LEAF, "2026-12-06T00:00:00Z", "Z"]))  # fmt: skip
member = st.sampled_from(["type", "certificate", "revokedAt", "reasonCode", "id", "x"])
items = st.one_of(scalars, st.dictionaries(member, scalars, max_size=6))


@settings(derandomize=True, max_examples=400, deadline=None)
@given(st.one_of(st.dictionaries(st.sampled_from(["events", "e"]), st.lists(items, max_size=4) | scalars, max_size=2),
                 st.fixed_dictionaries({"events": st.lists(items, min_size=1, max_size=4)})))  # fmt: skip
def test_any_body_is_items_or_one_bad_request(body: dict[str, Any]) -> None:
    try:
        checked = parse_report(body, LINK, now=NOW)
    except BadRequest as exc:
        assert exc.detail
        return
    assert [i.index for i in checked] == list(range(len(body["events"])))
    assert all(i.type in ("issued", "revoked") and i.certificate.issuer == ROOT.subject for i in checked)


@pytest.mark.parametrize(("raw", "message"), [
    ("https://x", '"linked" must be an object'),
    ({"url": "ftp://x", "tokenFile": "t"}, "linked.url"),
    ({"url": "https://x"}, "linked.tokenFile"),
    ({"url": "https://x", "tokenFile": "missing"}, "cannot read linked.tokenFile"),
    ({"url": "https://x", "tokenFile": "empty"}, "holds no token"),
    ({"url": "https://x", "tokenFile": "token", "root": "missing.pem"}, "cannot read linked.root"),
    ({"url": "https://x", "tokenFile": "token", "extra": 1}, '"linked" must be an object'),
])  # fmt: skip
def test_linked_config_mistakes(tmp_path: Path, raw: Any, message: str) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "token").write_text("p." + "A" * 43 + "\n")
    with pytest.raises(ConfigError, match=message):
        from_config(raw, base_dir=tmp_path, certificates=MemoryStore())
