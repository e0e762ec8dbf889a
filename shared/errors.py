"""One error root for the whole library.

Every `CAError` carries an HTTP status and a `detail` that is safe to show to a
client: it never contains stack traces, file paths, SQL or key material. The API
layer maps these to step-ca's `{"status", "message"}` JSON (or ACME problems);
anything that is not a `CAError` becomes a generic 500 whose details go only to
the structured log.
"""

from __future__ import annotations


class CAError(Exception):
    """Base of every error the CA shows to a client."""

    status: int = 500
    default_detail = "The certificate authority encountered an Internal Server Error."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.default_detail
        super().__init__(self.detail)


class BadRequest(CAError):
    """Malformed or missing data (400)."""

    status = 400
    default_detail = "The request could not be completed; malformed or missing data."


class Unauthorized(CAError):
    """The request lacked valid authorization (401)."""

    status = 401
    default_detail = "The request lacked necessary authorization to be completed."


class Forbidden(CAError):
    """The request was authenticated but policy forbids it (403)."""

    status = 403
    default_detail = "The request was forbidden by the certificate authority."


class NotFound(CAError):
    """The requested resource does not exist (404)."""

    status = 404
    default_detail = "The requested resource could not be found."


class Conflict(CAError):
    """A create-if-absent lost the race or the state changed (409)."""

    status = 409
    default_detail = "The request conflicts with the current state."


class PayloadTooLarge(CAError):
    """The request body exceeds the configured limit (413)."""

    status = 413
    default_detail = "The request body is too large."


class NotImplementedYet(CAError):
    """The requested flow is not implemented by this authority (501)."""

    status = 501
    default_detail = "The requested method is not implemented by the certificate authority."


class Unavailable(CAError):
    """A backend kept failing past its retry deadline (503)."""

    status = 503
    default_detail = "The certificate authority is temporarily unavailable; retry later."


class AlreadyRevoked(BadRequest):
    """The certificate was revoked before (step-ca answers 400)."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        super().__init__(f"certificate with serial number '{serial}' is already revoked")


class TokenAlreadyUsed(Unauthorized):
    """A one-time token (or nonce) was presented a second time."""

    def __init__(self) -> None:
        super().__init__("token already used")


class BackendError(Exception):
    """A storage, blob or key backend failed; never shown to clients as-is.

    `transient` tells the retry layer whether another attempt may succeed.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        self.transient = transient
        super().__init__(message)


class ConfigError(Exception):
    """The configuration is invalid; raised at start so a bad deploy fails loudly."""
