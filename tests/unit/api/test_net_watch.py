"""The hostile suites' 500-net watch sees every request that reaches the generic handler.

If it did not, `pytest.mark.hostile` would assert nothing: these tests break the app on
purpose and check the watch reports it, on both answer paths (Werkzeug and the direct
`/sign` path of `cirrus up`).
"""

from __future__ import annotations

import pytest

from shared.api.stepca import StepCAAPI
from shared.authority import Authority
from tests.hostile import NetWatch


def test_watch_sees_a_500_on_the_werkzeug_path(api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, request):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(StepCAAPI, "_health", broken)
    with NetWatch() as watch:
        r = api.get("/health")
    assert r.status_code == 500 and "boom" not in r.text
    assert watch.reached == ["RuntimeError: boom"]


def test_watch_sees_a_500_on_the_direct_sign_path(api, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self, **kwargs):  # type: ignore[no-untyped-def]
        raise OverflowError("date value out of range")

    monkeypatch.setattr(Authority, "sign", broken)
    with NetWatch() as watch:
        r = api.post("/1.0/sign", json={"csr": "x", "ott": "y"})
    assert r.status_code == 500
    assert watch.reached == ["OverflowError: date value out of range"]


def test_watch_ignores_refusals(api) -> None:
    with NetWatch() as watch:
        assert api.post("/1.0/sign", data=b"{", content_type="application/json").status_code == 400
    assert watch.reached == []


def test_watch_sees_acme_serverinternal(api, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.acme.server import ACMEServer

    def broken(self, ctx, parts):  # type: ignore[no-untyped-def]
        raise KeyError("boom")

    monkeypatch.setattr(ACMEServer, "_dispatch", broken)
    with NetWatch() as watch:
        r = api.get("/acme/acme/directory")
    assert r.status_code == 500
    assert watch.reached == ["KeyError: 'boom'"]
