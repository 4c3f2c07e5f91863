"""The errors Tickmark reports to its clients.

Every error a client may see is a :class:`TickmarkError`: it carries a
stable ``code`` that programs match on, a ``message`` safe to show a
person, and, for bad input, the ``field`` at fault. HTTP answers them with
``status`` and a JSON body; the WebSocket endpoint with an error frame.
Anything else that escapes a handler is our bug: it is logged and the
client sees only ``internal_error``.

.. code-block:: text

    TickmarkError
    ├── BadRequest              400 malformed_json, bad_request
    ├── Unauthenticated         401 unauthenticated
    ├── Forbidden               403 forbidden, bad_origin, missing_scope
    ├── NotFound                404 not_found
    ├── Conflict                409 idempotency_conflict
    ├── PayloadTooLarge         413 too_large
    ├── UnsupportedMediaType    415 unsupported_media_type
    ├── InvalidInput            422 invalid
    │   └── ConversationNotAllowed  422 conversation_not_allowed
    ├── RateLimited             429 rate_limited
    └── Unavailable             503 unavailable

"""

from __future__ import annotations

from typing import Any, ClassVar


__all__ = [
    "BadRequest",
    "Conflict",
    "ConversationNotAllowed",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "TickmarkError",
    "Unauthenticated",
    "Unavailable",
    "UnsupportedMediaType",
]


class TickmarkError(Exception):
    """Base class of the errors a client may see."""

    status: ClassVar[int] = 500
    default_code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        # Dotted path of the input field at fault, or None when the error
        # is about the request as a whole.
        self.field = field

    def to_json(self) -> dict[str, Any]:
        """The error as the JSON object clients receive under ``"error"``."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class BadRequest(TickmarkError):
    """The request cannot be read at all, such as malformed JSON."""

    status = 400
    default_code = "bad_request"


class Unauthenticated(TickmarkError):
    """No credentials, or credentials that are wrong, expired or revoked."""

    status = 401
    default_code = "unauthenticated"


class Forbidden(TickmarkError):
    """The caller is known and sees the target but may not do this to it."""

    status = 403
    default_code = "forbidden"


class NotFound(TickmarkError):
    """The target does not exist or the caller may not see it.

    Both cases give the same answer, so ids of other companies cannot be
    probed.
    """

    status = 404
    default_code = "not_found"

    def __init__(self, message: str = "Not found.") -> None:
        super().__init__(message)


class Conflict(TickmarkError):
    """The request contradicts what is stored, such as a reused key."""

    status = 409
    default_code = "conflict"


class PayloadTooLarge(TickmarkError):
    """The request body is larger than the documented limit."""

    status = 413
    default_code = "too_large"


class UnsupportedMediaType(TickmarkError):
    """The request body is not JSON."""

    status = 415
    default_code = "unsupported_media_type"


class InvalidInput(TickmarkError):
    """A field is missing, has the wrong type, or breaks a documented limit."""

    status = 422
    default_code = "invalid"


class ConversationNotAllowed(InvalidInput):
    """The transaction's type does not take conversations."""

    default_code = "conversation_not_allowed"


class RateLimited(TickmarkError):
    """Too many attempts; the client may try again after a delay."""

    status = 429
    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after_secs: int) -> None:
        super().__init__(message)
        self.retry_after_secs = max(1, retry_after_secs)

    def to_json(self) -> dict[str, Any]:
        # Also in the body: a WebSocket error frame has no headers.
        return super().to_json() | {"retry_after_secs": self.retry_after_secs}


class Unavailable(TickmarkError):
    """A service Tickmark depends on is down; the client may retry."""

    status = 503
    default_code = "unavailable"

    def __init__(self, message: str, *, retry_after_secs: int = 5) -> None:
        super().__init__(message)
        self.retry_after_secs = retry_after_secs

    def to_json(self) -> dict[str, Any]:
        return super().to_json() | {"retry_after_secs": self.retry_after_secs}
