"""The `authorities` config list (shared.authority_settings): what loads, and one clear line for what does not."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.authority_settings import RESERVED_PREFIXES, parse_authorities
from shared.config import ZERO_AUTHORITY_ID, Settings
from shared.errors import ConfigError


def _entry(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "crt": f"certs/{name}.crt", "key": f"softkms:path=secrets/{name}_key", **extra}


def _parse(entries: object, default_provisioners: list[dict[str, Any]] | None = None) -> Any:
    return parse_authorities(entries, resolve=lambda v: "/base/" + v, default_id=ZERO_AUTHORITY_ID,
                             default_provisioners=default_provisioners or [{"type": "JWK", "name": "admin"}])  # fmt: skip


def test_an_entry_loads_with_its_defaults_and_resolved_paths() -> None:
    (teams,) = _parse([_entry("teams", prefix="teams", provisioners=[{"type": "JWK", "name": "t"}])])
    assert (teams.name, teams.authority_id, teams.prefix) == ("teams", "teams", "teams")
    assert teams.chain == Path("/base/certs/teams.crt") and teams.key == "/base/softkms:path=secrets/teams_key"
    assert [p["name"] for p in teams.provisioners] == ["t"]
    (other,) = _parse([_entry("other", authorityId="other-id")])
    assert (other.authority_id, other.prefix, other.ca_issuers_url) == ("other-id", "", "")
    assert _parse(None) == ()


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"name": "x"}, "'authorities' must be a list of objects"),
        ([_entry("a"), _entry("a")], "authority name/id 'a' is used twice"),
        ([_entry("a"), _entry("b", authorityId="a")], "authority name/id 'a' is used twice"),
        ([_entry("a", authorityId=ZERO_AUTHORITY_ID)], "is used twice"),  # the default authority's id
        ([_entry("a", prefix="p"), _entry("b", prefix="p")], "prefix 'p' is used twice"),
        ([_entry("a", prefix="sign")], "prefix 'sign' is a route the CA already serves"),
        ([_entry("a", prefix="a/b")], "prefix must be one lowercase URL path segment"),
        ([_entry("a", provisioners=[{"name": "admin"}])], "provisioner 'admin' already belongs to the default"),
        ([_entry("a", provisioners=[{"name": "p"}]), _entry("b", provisioners=[{"name": "p"}])],
         "provisioner 'p' already belongs to authority 'a'"),
        ([_entry("a", crt="")], "authority 'a': 'crt' must be a non-empty string"),
        ([{"name": "a", "crt": "c"}], "authority 'a': 'key' must be a non-empty string"),
        ([_entry("a", caIssuersURL="ftp://x")], "caIssuersURL must be an http(s) URL"),
        ([_entry("a b")], "authorities[0].name must be"),
        ([_entry("a\n")], "authorities[0].name must be"),  # `$` would have let the newline through
    ],
)  # fmt: skip
def test_mistakes_are_one_clear_line(entries: object, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _parse(entries)
    text = str(raised.value)
    assert message in text and "\n" not in text


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=70), st.from_regex(r"[a-z]{1,8}\n", fullmatch=True), st.integers(), st.none(),
                 st.lists(st.text(max_size=3), max_size=2)))
def test_any_prefix_is_accepted_as_one_path_segment_or_refused_as_config(prefix: object) -> None:
    try:
        (parsed,) = _parse([_entry("a", prefix=prefix)] if prefix is not None else [_entry("a")])
    except ConfigError:
        return
    assert parsed.prefix == (prefix or "")
    if parsed.prefix:
        assert re.fullmatch(r"[a-z0-9][a-z0-9_-]*", parsed.prefix), repr(parsed.prefix)
        assert parsed.prefix not in RESERVED_PREFIXES


def test_not_beside_a_registration_authority(tmp_path: Path) -> None:
    raw = {"root": "root.crt", "crt": "int.crt", "key": "k", "issuerURL": "https://issuer.test",
           "authorities": [_entry("a")]}  # fmt: skip
    with pytest.raises(ConfigError, match="'authorities' needs a signing deployment"):
        Settings.from_mapping(raw, base_dir=tmp_path)
