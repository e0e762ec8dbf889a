"""The composition root defers what a function's first request may never need (shared.runtime, shared.once).

A Cloud Function builds its services with `deferred=True`: the provisioners (PyJWT, every
provisioner's code), the issuance policies and the revoker are built on first use, once, even
with concurrent first requests. The CLI and `cirrus up` build them at start, so a wrong
provisioner block still stops them there.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from shared.config import Settings
from shared.errors import ConfigError
from shared.once import Once
from shared.runtime import build_services


def test_once_builds_once_for_concurrent_first_callers() -> None:
    calls: list[int] = []

    def slow_factory() -> object:
        calls.append(1)
        time.sleep(0.05)  # long enough that unguarded callers would all enter the factory
        return object()

    once = Once(slow_factory)
    start = threading.Barrier(4)
    seen: list[object] = []

    def first_request() -> None:
        start.wait()
        seen.append(once.get())

    threads = [threading.Thread(target=first_request) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(seen) == 4 and all(v is seen[0] for v in seen)
    assert once.built


def test_once_keeps_nothing_half_built_when_the_factory_fails() -> None:
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConfigError("first attempt fails")
        return "built"

    once = Once(flaky)
    with pytest.raises(ConfigError):
        once.get()
    assert not once.built
    assert once.get() == "built" and once.get() == "built"
    assert len(attempts) == 2


def test_deferred_services_build_the_provisioners_on_first_use(authority_dir: Path) -> None:
    services = build_services(Settings.load(authority_dir / "config.json"), deferred=True)
    try:
        assert not services.deferred_provisioners.built and not services.deferred_revoker.built
        assert services.provisioners.by_name("admin") is not None
        assert services.deferred_provisioners.built and not services.deferred_revoker.built
        assert services.revoker is services.revoker
    finally:
        services.close()


def _break_provisioners(authority_dir: Path) -> Settings:
    config = json.loads((authority_dir / "config.json").read_text())
    config["authority"]["provisioners"].append({"type": "JWK"})  # no name: not a provisioner
    (authority_dir / "config.json").write_text(json.dumps(config))
    return Settings.load(authority_dir / "config.json")


def test_a_wrong_provisioner_block_fails_at_start_unless_deferred(authority_dir: Path) -> None:
    settings = _break_provisioners(authority_dir)
    with pytest.raises(ConfigError, match="provisioner"):
        build_services(settings)  # the CLI and `cirrus up`: at start
    services = build_services(settings, deferred=True)  # a Cloud Function: on the request that needs them
    try:
        with pytest.raises(ConfigError, match="provisioner"):
            services.provisioners.by_name("admin")
        with pytest.raises(ConfigError, match="provisioner"):
            services.issuing()  # signing needs them too: no authority without its provisioners
    finally:
        services.close()


def test_deferred_services_open_the_store_on_first_use(authority_dir: Path) -> None:
    """A Cloud Function opens its store on the first operation that needs it: building the services,
    the rotation view and the tracked sinks opens nothing, and closing a store never opened is a no-op."""
    services = build_services(Settings.load(authority_dir / "config.json"), deferred=True)
    try:
        assert not services.deferred_store.built
        assert services.rotating is not None and services.sinks is not None
        services.close()
        assert not services.deferred_store.built  # closing did not open it to close it
        assert services.active_intermediates() == services.intermediates  # reads the rotation record ...
        assert services.deferred_store.built  # ... through the store, now open
        assert services.store is services.store
    finally:
        services.close()
    eager = build_services(Settings.load(authority_dir / "config.json"))
    try:
        assert eager.deferred_store.built  # the CLI and `cirrus up` open it at start
    finally:
        eager.close()


def test_a_store_url_that_cannot_be_opened_fails_at_start_unless_deferred(authority_dir: Path) -> None:
    settings = Settings.load(authority_dir / "config.json", overrides={"store": "nosuch:/x"})
    with pytest.raises(ConfigError, match="store URL"):
        build_services(settings)
    services = build_services(settings, deferred=True)  # e.g. the OCSP responder, which never uses it
    try:
        with pytest.raises(ConfigError, match="store URL"):
            services.issuing()  # signing needs the store: the error shows on that request
        with pytest.raises(ConfigError, match="store URL"):
            _ = services.store
    finally:
        services.close()
