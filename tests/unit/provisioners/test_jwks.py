"""The remote key set: cached, refreshed once per bound on an unknown kid, stale keys kept in an outage."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from shared.errors import Unauthorized, Unavailable
from shared.provisioners.jwks import RemoteKeySet


class Server:
    def __init__(self) -> None:
        self.kids = ["a"]
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.calls = 0
        self.down = False
        self.cache_control = "public, max-age=600"

    def __call__(self, url: str) -> tuple[bytes, Mapping[str, str]]:
        self.calls += 1
        if self.down:
            raise Unavailable("down")
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        keys = [{**jwk, "kid": k} for k in self.kids] + [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]
        return json.dumps({"keys": keys}).encode(), {"cache-control": self.cache_control}


@pytest.fixture
def server() -> Server:
    return Server()


def test_cached_for_max_age(server: Server) -> None:
    now = [0.0]
    ks = RemoteKeySet("https://keys", fetch=server, monotonic=lambda: now[0])
    assert ks.keys_for("a") and server.calls == 1
    now[0] = 599
    ks.keys_for("a")
    assert server.calls == 1
    now[0] = 601
    ks.keys_for("a")
    assert server.calls == 2


def test_unknown_kid_refreshes_at_most_once_per_bound(server: Server) -> None:
    now = [0.0]
    ks = RemoteKeySet("https://keys", fetch=server, monotonic=lambda: now[0], min_refresh=60)
    ks.keys_for("a")
    for _ in range(20):
        with pytest.raises(Unauthorized):
            ks.keys_for("rotated")
    assert server.calls == 1  # within the bound: no refresh
    server.kids.append("rotated")
    now[0] = 61
    assert ks.keys_for("rotated")
    assert server.calls == 2


def test_symmetric_keys_in_the_set_are_never_used(server: Server) -> None:
    ks = RemoteKeySet("https://keys", fetch=server)
    with pytest.raises(Unauthorized):
        ks.keys_for("hmac")


def test_outage_first_fetch_is_503_later_keeps_stale_keys(server: Server) -> None:
    now = [0.0]
    server.down = True
    ks = RemoteKeySet("https://keys", fetch=server, monotonic=lambda: now[0])
    with pytest.raises(Unavailable):
        ks.keys_for("a")
    server.down = False
    ks.keys_for("a")
    server.down = True
    now[0] = 10_000
    assert ks.keys_for("a")  # stale but usable


def test_malformed_kid_is_refused_without_a_fetch(server: Server) -> None:
    ks = RemoteKeySet("https://keys", fetch=server)
    for kid in (None, "", "x" * 300, 5):
        with pytest.raises(Unauthorized):
            ks.keys_for(kid)
    assert server.calls == 0
