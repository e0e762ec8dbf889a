"""The CRL object name is built only from a whole, URL-safe authority id.

`re.match` with a `$` anchor accepted `x\\n` (the anchor matches before a
final newline), so `blob_name('x\\n')` named the object `crl/x\\n.crl`. These
properties check the whole string: an id is accepted exactly when every one of
its characters is allowed, and an accepted id survives the name -> path round
trip unchanged. Runs are derandomized so CI sees the same examples each time.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.validation.partition import blob_name, crl_url, parse_blob_path

FAST = settings(derandomize=True, max_examples=100, deadline=None)

_FIRST = string.ascii_letters + string.digits
_REST = _FIRST + "._-"

valid_ids = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(_FIRST),
    st.text(alphabet=_REST, max_size=127),
)


def _is_valid(aid: str) -> bool:
    return 1 <= len(aid) <= 128 and aid[0] in _FIRST and all(c in _REST for c in aid)


@pytest.mark.parametrize("aid", ["x\n", "x\r\n", "\nx", "x\n\n", "x\x00", "x/y", "x ", ""])
def test_ids_with_control_or_path_characters_are_refused(aid: str) -> None:
    with pytest.raises(ValueError):
        blob_name(aid, None)
    with pytest.raises(ValueError):
        crl_url("http://ca.example", aid, 3)
    if aid and "/" not in aid:  # "/" separates the shard (a 400); "" leaves "2.crl"
        assert parse_blob_path(f"{aid}.crl") is None
        assert parse_blob_path(f"{aid}/2.crl") is None


@FAST
@given(valid_ids, st.one_of(st.none(), st.integers(min_value=0, max_value=999_999)))
def test_valid_ids_round_trip(aid: str, shard: int | None) -> None:
    name = blob_name(aid, shard)
    assert parse_blob_path(name) == (aid, shard)


@FAST
@given(valid_ids, st.sampled_from(["\n", "\r", "\t", " ", "\x00", "?", "é", "\u2028"]))
def test_one_bad_character_anywhere_is_refused(aid: str, bad: str) -> None:
    for candidate in (aid + bad, bad + aid, aid[:1] + bad + aid[1:]):
        candidate = candidate[:128]
        if _is_valid(candidate):
            continue
        with pytest.raises(ValueError):
            blob_name(candidate, None)
        assert parse_blob_path(f"crl/{candidate}.crl") is None


@FAST
@given(st.text(max_size=140))
def test_acceptance_is_exactly_the_allowed_alphabet(aid: str) -> None:
    if _is_valid(aid):
        assert blob_name(aid, None) == f"crl/{aid}.crl"
    else:
        with pytest.raises(ValueError):
            blob_name(aid, None)
