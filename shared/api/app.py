"""The WSGI application: request ids, JSON access log, size limits, routing.

The same `CirrusApp` serves `cirrus up` (behind our TLS server) and the Cloud
Functions (Functions Framework hands each function a Werkzeug/Flask request;
`handle(request)` takes it directly).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from werkzeug.wrappers import Request, Response

from shared import linelog
from shared.api.render import error_response, json_response
from shared.api.stepca import StepCAAPI
from shared.api.wsgi import wsgi_path, wsgi_text
from shared.groupcommit import CommitGroup
from shared.runtime import Services
from shared.store.base import BatchIssuanceLedger

access_log = logging.getLogger("cirrus.access")
# One encoder for every line: `json.dumps` with options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
REQUEST_ID_KEY = "cirrus.request_id"

# Extra mounts (ACME, OCSP, CRL) register here: prefix -> handler(request, services, tail).
Mount = Callable[[Request, Services, str], Response]
# The same for `cirrus up`'s WSGI entry, straight from the environ: -> (status, headers, body).
Answer = tuple[int, list[tuple[str, str]], bytes]
DirectMount = Callable[[dict[str, Any], Services, str], Answer]


def _new_request_id() -> str:
    """32 random hex digits, the length of a UUID's (a UUID object costs four times as much to make)."""
    return os.urandom(16).hex()


def _request_id(environ: dict[str, Any]) -> str:
    """The client's X-Request-Id (or step's X-Smallstep-Id) when it is short and printable, else a new one."""
    for key in ("HTTP_X_REQUEST_ID", "HTTP_X_SMALLSTEP_ID"):
        value = str(environ.get(key, ""))
        if value and len(value) <= 128 and value.isprintable():
            return value
    return _new_request_id()


def _log_access(
    environ: dict[str, Any], rid: str, status: int, *, started: float | None = None, note: str | None = None
) -> None:
    """The one JSON access-log line per answer (Werkzeug and direct entries, replaced held answers)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    line: dict[str, Any] = {
        "requestId": rid,
        "method": environ.get("REQUEST_METHOD", ""),
        "path": wsgi_path(environ),
        "status": status,
    }
    if started is not None:
        line["durationMs"] = round((time.perf_counter() - started) * 1000, 3)
    line["remote"] = environ.get("REMOTE_ADDR")
    line["userAgent"] = str(environ.get("HTTP_USER_AGENT", ""))[:200]
    if note:
        line["note"] = note
    linelog.write(access_log, _ENCODE(line))


class CirrusApp:
    """Routes a request to the step-ca API or a mounted sub-application."""

    def __init__(
        self,
        services: Services,
        *,
        mounts: dict[str, Mount] | None = None,
        direct: dict[str, DirectMount] | None = None,
    ) -> None:
        self.services = services
        self._stepca = StepCAAPI(services)
        self._mounts = dict(mounts or {})
        self._direct = dict(direct or {})

    def handle(self, request: Request) -> Response:
        """Serve one request; never raises."""
        started = time.perf_counter()
        rid = _request_id(request.environ)
        request.environ[REQUEST_ID_KEY] = rid
        try:
            response = self._route(request)
        except Exception as exc:  # one mapping for every error
            response = error_response(exc)
        response.headers["X-Request-Id"] = rid
        _log_access(request.environ, rid, response.status_code, started=started)
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
        rid = str(environ.get(REQUEST_ID_KEY) or _new_request_id())
        response.headers["X-Request-Id"] = rid
        _log_access(environ, rid, response.status_code, note="answer replaced: the issuance was not recorded")
        return response.status, response.headers.to_wsgi_list(), response.get_data()

    def waits_on_network(self, method: str, path: str) -> bool:
        """Whether a request may wait on a remote host rather than the CPU.

        `cirrus up` serves each worker from one event loop and runs these on a
        thread pool instead, so one slow remote cannot stall other clients: in
        forwarding mode, everything that may be sent on to the issuer. (ACME
        challenge validations wait on the applicant's host too, but they run
        after their answer, as after-response work on that pool.) The dashboard's
        OIDC sign-in asks the provider for its discovery document and tokens.
        """
        return bool(self.services.settings.issuer_url) or path.startswith("/dashboard/oidc/")

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
        """WSGI entry.

        The hot paths (`POST /sign`, and the `direct` mounts: ACME) are answered
        straight from the environ; Werkzeug's request and response objects cost
        about 30 us a request, a few percent of a certificate. Everything else,
        and every request of the Functions (`handle`), goes through Werkzeug.
        """
        path = environ.get("PATH_INFO", "")
        answer: Callable[[], Answer] | None = None
        if path in _SIGN_PATHS and environ.get("REQUEST_METHOD") == "POST" and self.services.issuer_link is None:
            answer = functools.partial(self._stepca.sign_environ, environ)
        else:
            for prefix, mount in self._direct.items():
                if path == prefix or path.startswith(prefix + "/"):
                    answer = functools.partial(mount, environ, self.services, wsgi_text(path[len(prefix) :]))
                    break
        if answer is None:
            request = Request(environ)
            response = self.handle(request)
            return response(environ, start_response)
        return self._answer_direct(environ, start_response, answer)

    def _answer_direct(self, environ: dict[str, Any], start_response: Any, answer: Callable[[], Answer]) -> list[bytes]:
        started = time.perf_counter()
        rid = _request_id(environ)
        environ[REQUEST_ID_KEY] = rid
        try:
            status, headers, body = answer()
        except Exception as exc:  # one mapping for every error, as in `handle`
            response = error_response(exc)
            status, headers, body = response.status_code, response.headers.to_wsgi_list(), response.get_data()
        headers.append(("X-Request-Id", rid))
        _log_access(environ, rid, status, started=started)
        start_response(_status_line(status), headers)
        return [body]


_SIGN_PATHS = frozenset(("/sign", "/1.0/sign"))


@functools.lru_cache(maxsize=64)
def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"
