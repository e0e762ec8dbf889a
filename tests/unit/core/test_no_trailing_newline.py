"""Validators anchored with `$` accepted a trailing newline (`$` matches before a final "\\n").

Each of these checks guards a value that reaches a certificate, an SSH principal or a JWS
decode; "abc\\n" must be refused exactly like any other character outside the alphabet.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.acme.accounts import check_contacts
from shared.acme.jws import b64d
from shared.acme.problems import ACMEProblem
from shared.x509.names import is_dns_name

_LABEL = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)


@settings(derandomize=True, max_examples=50)
@given(_LABEL, _LABEL)
def test_a_dns_name_with_a_trailing_newline_is_not_a_dns_name(a: str, b: str) -> None:
    name = f"{a}.{b}"
    assert is_dns_name(name)
    assert not is_dns_name(name + "\n")


@settings(derandomize=True, max_examples=50)
@given(st.binary(min_size=1, max_size=40))
def test_base64url_with_a_trailing_newline_is_malformed(raw: bytes) -> None:
    import base64

    text = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    assert b64d(text) == raw
    with pytest.raises(ACMEProblem):
        b64d(text + "\n")


def test_an_acme_contact_with_a_trailing_newline_is_invalid() -> None:
    assert check_contacts(["mailto:admin@example.com"]) == ["mailto:admin@example.com"]
    with pytest.raises(ACMEProblem):
        check_contacts(["mailto:admin@example.com\n"])


def test_an_ssh_principal_with_a_trailing_newline_cannot_be_added() -> None:
    from shared.ssh.add_user import _USER_NAME

    assert _USER_NAME.match("root")
    assert not _USER_NAME.match("root\n")
