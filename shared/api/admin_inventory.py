"""`/admin/inventories`: inventories over HTTP, behind an admin token, with step-ca's admin error JSON.

Routes (every one needs `Authorization: Bearer <token>`, a token from `cirrus dashboard
token`, checked as the dashboard checks it: looked up by its SHA-256, never compared as text):

| method | path | body | answer |
|---|---|---|---|
| GET | /admin/inventories | | `{"inventories": [{"name","kind","createdAt"}]}` |
| PUT | /admin/inventories/NAME | `{"kind": K}` | 201 the inventory (409 if it exists) |
| GET | /admin/inventories/NAME[?cursor&limit] | | the inventory, `entries` (`{"key","entry"}`), `nextCursor` |
| DELETE | /admin/inventories/NAME | | `{"status": "ok"}` |
| POST | /admin/inventories/NAME/entries | JSON (object or array) or CSV (`text/csv`) | `{"imported": N}` |
| GET | /admin/inventories/NAME/entries/KEY | | the entry |
| PUT | /admin/inventories/NAME/entries/KEY | the entry (a JSON object) | `{"status": "ok"}` |
| DELETE | /admin/inventories/NAME/entries/KEY | | `{"status": "ok"}` |

Errors are step-ca's `admin.Error` shape, `{"type", "detail", "message"}` with types
`badRequest` (400), `unauthorized` (401), `notFound` (404), `conflict` (409), and
`badRequest` for a body over the size limit (413); an import with bad rows is a 400 that
also lists them in `problems`. A key is the rest of the path after
`/entries/`, percent-decoded, so keys with `/` work. Lists page like step-ca's admin lists:
`limit` 1-100 (default 20), `cursor` the last key of the previous page.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from shared.api.render import json_response
from shared.dashboard.session import check_admin_token
from shared.errors import BadRequest, CAError, NotFound, PayloadTooLarge, Unauthorized
from shared.inventory.base import Inventory, InventoryError, check_key, check_name
from shared.inventory.changes import InventoryChanges, changes_for
from shared.inventory.imports import MAX_IMPORT_BYTES, ImportRejected, parse_import
from shared.runtime import Services
from shared.strict_json import StrictJSONError, loads_strict

MAX_ENTRY_BODY = 64 * 1024
_TYPES = {400: "badRequest", 401: "unauthorized", 403: "unauthorized", 404: "notFound", 409: "conflict",
          413: "badRequest", 405: "badRequest"}
_DETAILS = {400: "bad request", 401: "unauthorized", 403: "unauthorized", 404: "not found", 409: "conflict",
            413: "bad request", 405: "method not allowed"}


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"type": _TYPES.get(status, "badRequest"), "detail": _DETAILS.get(status, "bad request"),
                          "message": message}, status, headers)


def admin_inventories(request: Request, services: Services, tail: str) -> Response:
    """Serve one `/admin/inventories` request (the `Mount` signature of `shared.api.app`)."""
    try:
        _authenticate(request, services)
        return _route(request, services, tail)
    except CAError as exc:
        return _error(exc.status, exc.detail)


def _authenticate(request: Request, services: Services) -> None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not check_admin_token(services.store, token.strip(), services.clock.now()):
        raise Unauthorized("missing or invalid admin token")


def _not_allowed(allow: str) -> Response:
    return _error(405, "method not allowed", {"Allow": allow})


def _route(request: Request, s: Services, tail: str) -> Response:
    if tail in ("", "/"):
        if request.method != "GET":
            return _not_allowed("GET")
        return json_response({"inventories": [_inventory_json(i) for i in s.store.list_inventories()]})
    name, sep, rest = tail[1:].partition("/")
    name = _name(name)
    if not sep:
        if request.method == "GET":
            return _show(request, s, name)
        if request.method == "PUT":
            body = _json(request, MAX_ENTRY_BODY)
            if not isinstance(body, dict):
                raise BadRequest("expected a JSON object {\"kind\": ...}")
            return json_response(_inventory_json(_changes(s).create(name, body.get("kind"))), 201)
        if request.method == "DELETE":
            _changes(s).delete(name)
            return json_response({"status": "ok"})
        return _not_allowed("GET, PUT, DELETE")
    if rest == "entries":
        if request.method != "POST":
            return _not_allowed("POST")
        return _import(request, s, name)
    if not rest.startswith("entries/"):
        raise NotFound("The requested resource could not be found.")
    key = _key(rest[len("entries/"):])
    if request.method == "GET":
        if s.store.get_inventory(name) is None:
            raise NotFound(f"no inventory {name!r}")
        entry = s.store.get_inventory_entry(name, key)
        if entry is None:
            raise NotFound(f"no entry {key!r} in inventory {name!r}")
        return json_response(entry)
    if request.method == "PUT":
        _changes(s).set(name, key, _json(request, MAX_ENTRY_BODY))
        return json_response({"status": "ok"})
    if request.method == "DELETE":
        _changes(s).delete(name, key)
        return json_response({"status": "ok"})
    return _not_allowed("GET, PUT, DELETE")


def _changes(s: Services) -> InventoryChanges:
    return changes_for(s, "admin-api")


def _name(text: str) -> str:
    try:
        return check_name(text)
    except InventoryError as exc:
        raise BadRequest(str(exc)) from None


def _key(text: str) -> str:
    try:
        return check_key(text)
    except InventoryError as exc:
        raise BadRequest(str(exc)) from None


def _inventory_json(inventory: Inventory) -> dict[str, str]:
    return {"name": inventory.name, "kind": inventory.kind, "createdAt": inventory.created_at.isoformat()}


def _body(request: Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"request body larger than {limit} bytes")
    return data


def _json(request: Request, limit: int) -> Any:
    try:
        return loads_strict(_body(request, limit))
    except (StrictJSONError, ValueError):
        raise BadRequest("error decoding json") from None


def _show(request: Request, s: Services, name: str) -> Response:
    inventory = s.store.get_inventory(name)
    if inventory is None:
        raise NotFound(f"no inventory {name!r}")
    raw_limit = request.args.get("limit", "20")
    if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        raise BadRequest("limit must be a number from 1 to 100")
    cursor = request.args.get("cursor", "")
    if cursor:
        _key(cursor)
    limit = int(raw_limit)
    page = list(s.store.list_inventory_entries(name, after=cursor, limit=limit + 1))
    more = len(page) > limit
    page = page[:limit]
    return json_response({
        **_inventory_json(inventory),
        "entries": [{"key": k, "entry": e} for k, e in page],
        "nextCursor": page[-1][0] if more and page else "",
    })


def _import(request: Request, s: Services, name: str) -> Response:
    data = _body(request, MAX_IMPORT_BYTES)
    fmt = "csv" if request.mimetype in ("text/csv", "application/csv") else "json"
    try:
        entries = parse_import(data, fmt=fmt)
    except ImportRejected as exc:
        return json_response({"type": "badRequest", "detail": "bad request",
                              "message": f"{exc}: " + "; ".join(exc.problems), "problems": exc.problems}, 400)
    count = _changes(s).put(name, entries)
    return json_response({"imported": count})

