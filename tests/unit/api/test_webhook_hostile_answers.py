"""Property: whatever a webhook answers, /sign answers 201, a 4xx, or 503 - never another 5xx - and a
refused request leaves no certificate (issue 15, "Bad input").

The hook is a real HTTP server on loopback answering hypothesis-chosen statuses and bodies: random
bytes, JSON of every shape (`allow` of the wrong type, `data` that is not what the template reads,
an `error` with control characters), an answer larger than the limit, nesting deeper than the
parser's recursion, NaN, repeated members and lone surrogates.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit.api.test_stepca_sign import rows
from tests.unit.api.test_stepca_sign_webhooks import TEMPLATE, configure, sign
from tests.webhook_receiver import Seen, hook, webhook_receiver

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "allow": st.one_of(st.booleans(), json_values),
        "data": st.one_of(
            json_values,
            st.fixed_dictionaries({"team": json_values, "alias": st.sampled_from(["a.example.com", "", "-", "*.x"])}),
        ),
        "error": st.one_of(json_values, st.fixed_dictionaries({"code": json_values, "message": st.text(max_size=300)})),
    },
).map(lambda d: json.dumps(d).encode())
SPECIAL = [
    b"",
    b"[" * 5000 + b"]" * 5000,
    b'{"allow": true, "data": {"team": "t", "alias": "a.example.com"}, "pad": "' + b"x" * 70_000 + b'"}',
    b'{"allow": true, "allow": false}',
    b'{"allow": true, "data": NaN}',
    b'{"allow": false, "error": {"message": "\\ud800", "code": "x"}}',
    b'{"allow": true, "data": {"team": "\\u0000", "alias": "a.example.com"}}',
    b"\xff\xfe{not json",
    b'{"allow": true, "data": {"team": ' + b"9" * 400 + b', "alias": "a.example.com"}}',  # beyond float64
]
special = st.sampled_from(SPECIAL)
statuses = st.sampled_from([200, 200, 200, 201, 204, 301, 302, 400, 401, 404, 429, 500, 502, 503])
answers = st.tuples(statuses, st.one_of(shaped, special, st.binary(max_size=64)))


def _check(authority_dir: Path, max_examples: int) -> None:
    with webhook_receiver() as receiver:
        current: dict[str, Any] = {}

        def route(_seen: Seen) -> tuple[int, bytes]:
            return current["status"], current["body"]

        receiver.routes["/"] = route
        # timeout below the retry pause: a 5xx is answered at once (no 1 s retry per example)
        api = configure(authority_dir, {"x509": {"template": TEMPLATE}, "webhooks": [
            hook("inventory", receiver.base + "/enrich", "ENRICHING", timeout=0.5),
            hook("gate", receiver.base + "/authorize", "AUTHORIZING", timeout=0.5),
        ]})

        def hostile(answer: tuple[int, bytes]) -> None:
            current["status"], current["body"] = answer
            before = rows(authority_dir)["certificates"]
            r = sign(api, authority_dir)
            after = rows(authority_dir)["certificates"]
            assert r.status_code in (201, 400, 403, 503), (answer, r.status_code, r.text)
            body = r.get_json()
            if r.status_code == 201:
                assert after == before + 1
            else:
                assert after == before, answer
                assert set(body) == {"status", "message"} and body["status"] == r.status_code
                assert "127.0.0.1" not in body["message"]  # the hook's address is not shown

        run = given(answer=answers)(hostile)
        for body in SPECIAL:  # each hand-picked answer always runs, whatever the generated ones are
            run = example(answer=(200, body))(run)
        settings(max_examples=max_examples, derandomize=True, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])(run)()


def test_hostile_webhook_answers_never_5xx_but_503_and_never_a_refused_certificate(authority_dir: Path) -> None:
    _check(authority_dir, 50)


@pytest.mark.slow
def test_hostile_webhook_answers_longer_run(authority_dir: Path) -> None:
    _check(authority_dir, 300)
