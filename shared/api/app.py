"""The WSGI application: request ids, JSON access log, size limits, routing.

The same `CirrusApp` serves `cirrus up` (behind our TLS server) and the Cloud
Functions (Functions Framework hands each function a Werkzeug/Flask request;
`handle(request)` takes it directly).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.wrappers import Request, Response

from shared.api.render import error_response, json_response
from shared.api.stepca import StepCAAPI
from shared.groupcommit import CommitGroup
from shared.runtime import Services
from shared.store.base import BatchIssuanceLedger

access_log = logging.getLogger("cirrus.access")
REQUEST_ID_KEY = "cirrus.request_id"

# Extra mounts (ACME, OCSP, CRL) register here: prefix -> handler(request, services, tail).
Mount = Callable[[Request, Services, str], Response]


def _request_id(request: Request) -> str:
    for header in ("X-Request-Id", "X-Smallstep-Id"):
        value = request.headers.get(header, "")
        if value and len(value) <= 128 and value.isprintable():
            return value
    return uuid.uuid4().hex


class CirrusApp:
    """Routes a request to the step-ca API or a mounted sub-application."""

    def __init__(self, services: Services, *, mounts: dict[str, Mount] | None = None) -> None:
        self.services = services
        self._stepca = StepCAAPI(services)
        self._mounts = dict(mounts or {})

    def handle(self, request: Request) -> Response:
        """Serve one request; never raises."""
        started = time.perf_counter()
        rid = _request_id(request)
        request.environ[REQUEST_ID_KEY] = rid
        try:
            response = self._route(request)
        except Exception as exc:  # one mapping for every error
            response = error_response(exc)
        response.headers["X-Request-Id"] = rid
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                json.dumps(
                    {
                        "requestId": rid,
                        "method": request.method,
                        "path": request.path,
                        "status": response.status_code,
                        "durationMs": round((time.perf_counter() - started) * 1000, 3),
                        "remote": request.remote_addr,
                        "userAgent": request.headers.get("User-Agent", "")[:200],
                    },
                    separators=(",", ":"),
                )
            )
        return response

    def commit_group(self) -> CommitGroup | None:
        """A group commit for `cirrus up`'s loop (see `shared.groupcommit`), when the store can batch."""
        store = self.services.store
        if not isinstance(store, BatchIssuanceLedger):
            return None
        return CommitGroup(store, self._held_answer_failed)

    @staticmethod
    def _held_answer_failed(exc: BaseException, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        """The answer that replaces a held one whose issuance was not recorded (logged like any answer)."""
        response = error_response(exc)
        rid = str(environ.get(REQUEST_ID_KEY) or uuid.uuid4().hex)
        response.headers["X-Request-Id"] = rid
        if access_log.isEnabledFor(logging.INFO):
            access_log.info(
                json.dumps(
                    {
                        "requestId": rid,
                        "method": environ.get("REQUEST_METHOD", ""),
                        "path": environ.get("PATH_INFO", ""),
                        "status": response.status_code,
                        "note": "answer replaced: the issuance was not recorded",
                    },
                    separators=(",", ":"),
                )
            )
        return response.status, response.headers.to_wsgi_list(), response.get_data()

    def waits_on_network(self, method: str, path: str) -> bool:
        """Whether a request may wait on a remote host rather than the CPU.

        `cirrus up` serves each worker from one event loop and runs these on a
        thread pool instead, so one slow remote cannot stall other clients: in
        forwarding mode, everything that may be sent on to the issuer. (ACME
        challenge validations wait on the applicant's host too, but they run
        after their answer, as after-response work on that pool.)
        """
        return bool(self.services.settings.issuer_url)

    def _route(self, request: Request) -> Response:
        path = request.path
        for prefix, mount in self._mounts.items():
            if path == prefix or path.startswith(prefix + "/"):
                return mount(request, self.services, path[len(prefix) :])
        response = self._stepca.dispatch(request, path)
        if response is None:
            return json_response({"status": 404, "message": "The requested resource could not be found."}, 404)
        return response

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        """WSGI entry."""
        request = Request(environ)
        response = self.handle(request)
        return response(environ, start_response)
