"""The shared record codec: time encodings, JSON rules, index keys, round trips."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from shared.model import (
    CertificateKind,
    CertificateRecord,
    Endpoint,
    Event,
    ProvisionerRef,
    Revocation,
)
from shared.store import codec

T0 = dt.datetime(2025, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)

CERT = CertificateRecord(
    serial="123456789012345678901234567890",
    authority_id="auth",
    kind=CertificateKind.SSH,
    der=b"\x00\xff" * 10,
    not_before=T0,
    not_after=T0 + dt.timedelta(days=1),
    provisioner=ProvisionerRef(id="p", name="n", type="OIDC"),
    endpoint_id="ep",
    subject_key="a\nb",
    common_name="a",
    sans=("a", "b"),
    issued_at=T0,
    renewed_from="99",
    operation="rekey",
)
ENDPOINT = Endpoint(
    id="ep", authority_id="auth", provisioner_id="p", subject_key="a", name="a", created_at=T0
)
REVOCATION = Revocation(
    serial="5",
    authority_id="auth",
    revoked_at=T0,
    not_after=T0 + dt.timedelta(hours=1),
    reason_code=4,
    reason="superseded",
    provisioner_id="p",
    mtls=True,
)
EVENT = Event(
    id="e1", type="t", source="s", subject="x", time=T0, data={"a": [1, {"b": None}], "é": "ü"}
)


def test_require_aware_rejects_naive_and_non_datetimes() -> None:
    with pytest.raises(ValueError, match="expires_at must be timezone-aware"):
        codec.require_aware(dt.datetime(2025, 1, 1), "expires_at")
    with pytest.raises(ValueError, match="must be a datetime"):
        codec.require_aware("2025-01-01", "x")  # type: ignore[arg-type]
    plus9 = dt.timezone(dt.timedelta(hours=9))
    converted = codec.require_aware(T0.astimezone(plus9))
    assert converted == T0 and converted.tzinfo == dt.UTC


@pytest.mark.parametrize(
    "when",
    [
        T0,
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(1000, 1, 1, tzinfo=dt.UTC),
    ],
)
def test_time_encodings_round_trip_exactly(when: dt.datetime) -> None:
    assert codec.from_epoch_us(codec.to_epoch_us(when)) == when
    assert codec.from_iso(codec.to_iso(when)) == when


def test_epoch_microseconds_are_exact() -> None:
    assert codec.to_epoch_us(dt.datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=dt.UTC)) == 1_000_005
    assert codec.to_epoch_us(dt.datetime(1969, 12, 31, 23, 59, 59, tzinfo=dt.UTC)) == -1_000_000


def test_iso_is_fixed_width_so_string_order_is_time_order() -> None:
    times = [
        dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2025, 1, 1, 0, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(2025, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
        dt.datetime(2025, 10, 1, tzinfo=dt.UTC),
        dt.datetime(10000 - 1, 1, 1, tzinfo=dt.UTC),
    ]
    encoded = [codec.to_iso(t) for t in times]
    assert len({len(e) for e in encoded}) == 1
    assert encoded == sorted(encoded)
    assert codec.to_iso(T0) == "2025-03-04T05:06:07.891011Z"
    assert codec.from_iso("2025-03-04T06:06:07.891011+01:00") == T0


def test_dump_json_is_deterministic_and_strict() -> None:
    assert codec.dump_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    for bad in ({"x": float("nan")}, {"x": b"b"}, {"x": T0}, {"x": object()}):
        with pytest.raises(ValueError, match="not plain JSON"):
            codec.dump_json(bad)
    with pytest.raises(ValueError, match="JSON object"):
        codec.dump_json([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        codec.load_json_object("[1]")


def test_copy_json_is_a_deep_copy() -> None:
    original = {"l": [1, {"m": 2}]}
    copied = codec.copy_json(original)
    copied["l"][1]["m"] = 3
    assert original == {"l": [1, {"m": 2}]}


def test_index_value_short_long_and_fields() -> None:
    assert codec.index_value("abc") == "abc"
    short = "x" * codec.INDEX_VALUE_MAX
    assert codec.index_value(short) == short
    long_value = "x" * (codec.INDEX_VALUE_MAX + 1)
    digest = codec.index_value(long_value)
    assert digest.startswith("\x00sha256:") and len(digest) < codec.INDEX_VALUE_MAX
    assert digest != codec.index_value(long_value + "y")
    fields = dict(codec.indexable_fields({"s": "v", "n": 1, "b": True, "o": {"s": "v"}, "x": None}))
    assert fields == {"s": "v"}
    assert codec.field_matches({"s": "v"}, "s", "v")
    assert not codec.field_matches({"s": 5}, "s", "5")
    assert not codec.field_matches({}, "s", "v")


@pytest.mark.parametrize(
    ("value", "to_dict", "from_dict"),
    [
        (CERT, codec.certificate_to_dict, codec.certificate_from_dict),
        (ENDPOINT, codec.endpoint_to_dict, codec.endpoint_from_dict),
        (REVOCATION, codec.revocation_to_dict, codec.revocation_from_dict),
        (EVENT, codec.event_to_dict, codec.event_from_dict),
    ],
    ids=["certificate", "endpoint", "revocation", "event"],
)
def test_dict_codecs_round_trip_through_json(
    value: object, to_dict: object, from_dict: object
) -> None:
    encoded = to_dict(value)  # type: ignore[operator]
    wire = json.loads(json.dumps(encoded))  # must be plain JSON
    assert from_dict(wire) == value  # type: ignore[operator]


@pytest.mark.parametrize(
    ("value", "to_row", "from_row"),
    [
        (CERT, codec.certificate_to_row, codec.certificate_from_row),
        (ENDPOINT, codec.endpoint_to_row, codec.endpoint_from_row),
        (REVOCATION, codec.revocation_to_row, codec.revocation_from_row),
        (EVENT, codec.event_to_row, codec.event_from_row),
    ],
    ids=["certificate", "endpoint", "revocation", "event"],
)
def test_row_codecs_round_trip(value: object, to_row: object, from_row: object) -> None:
    assert from_row(to_row(value)) == value  # type: ignore[operator]


def test_row_columns_match_row_length() -> None:
    assert len(codec.certificate_to_row(CERT)) == len(codec.CERTIFICATE_COLUMNS)
    assert len(codec.endpoint_to_row(ENDPOINT)) == len(codec.ENDPOINT_COLUMNS)
    assert len(codec.revocation_to_row(REVOCATION)) == len(codec.REVOCATION_COLUMNS)
    assert len(codec.event_to_row(EVENT)) == len(codec.EVENT_COLUMNS)


def test_certificate_dict_keeps_der_as_base64_and_times_as_iso() -> None:
    encoded = codec.certificate_to_dict(CERT)
    assert encoded["der"] == "AP8A/wD/AP8A/wD/AP8A/wD/AP8="
    assert encoded["issued_at"] == "2025-03-04T05:06:07.891011Z"
    assert encoded["kind"] == "ssh"
