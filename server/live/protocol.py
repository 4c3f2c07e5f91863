"""The frames of the /ws protocol and its close codes.

``docs/protocol.md`` is the reference for clients; this module is where the
server reads and writes those frames.
"""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Any, Literal

import pydantic

from server.codec import dumps_text
from server.errors import InvalidInput, TickmarkError
from server.validation import refusal


__all__ = [
    "ClientFrame",
    "CloseCode",
    "error_frame",
    "frame",
    "parse_client_frame",
]


class CloseCode(enum.IntEnum):
    """Why the server closed a connection, and what the client should do."""

    # Reconnect with backoff and resume (server restart or shutdown).
    GOING_AWAY = 1001
    # Our bug; reconnect with backoff.
    INTERNAL_ERROR = 1011
    # Reconnect, then resume; the server was redeployed.
    SERVICE_RESTART = 1012
    # Overloaded; reconnect after a longer backoff.
    TRY_AGAIN_LATER = 1013
    # The session or token expired: get a new one, then reconnect.
    SESSION_EXPIRED = 4001
    # The client did not read fast enough; reconnect and resume.
    SLOW_CONSUMER = 4008
    # Too many connections for this user; do not reconnect at once.
    TOO_MANY_CONNECTIONS = 4013
    # Too many frames; reconnect after a backoff.
    RATE_LIMITED = 4029
    # Not signed in, signed out, or the token was revoked: do not
    # reconnect with these credentials.
    UNAUTHENTICATED = 4401
    # No auth frame in time after connecting; reconnect and authenticate.
    AUTH_TIMEOUT = 4408


_Id = Annotated[str, pydantic.StringConstraints(max_length=64)]
_Strict = pydantic.ConfigDict(extra="forbid", strict=True)


class AuthFrame(pydantic.BaseModel):
    model_config = _Strict
    type: Literal["auth"]
    token: Annotated[str, pydantic.StringConstraints(max_length=200)]


class SubscribeFrame(pydantic.BaseModel):
    model_config = _Strict
    type: Literal["subscribe"]
    id: _Id | None = None
    channel: Annotated[str, pydantic.StringConstraints(max_length=100)]
    since: Annotated[int, pydantic.Field(ge=0, le=2**62)] | None = None


class UnsubscribeFrame(pydantic.BaseModel):
    model_config = _Strict
    type: Literal["unsubscribe"]
    id: _Id | None = None
    channel: Annotated[str, pydantic.StringConstraints(max_length=100)]


class PostFrame(pydantic.BaseModel):
    model_config = _Strict
    type: Literal["post"]
    id: _Id
    transaction_id: uuid.UUID
    body: Annotated[str, pydantic.StringConstraints(max_length=100_000)]
    recipients: Annotated[list[uuid.UUID], pydantic.Field(max_length=1000)]
    idempotency_key: Annotated[str, pydantic.StringConstraints(max_length=1000)]


class ReadFrame(pydantic.BaseModel):
    model_config = _Strict
    type: Literal["read"]
    id: _Id | None = None
    transaction_id: uuid.UUID
    seq: Annotated[int, pydantic.Field(ge=0, le=2**62)]


class TypingFrame(pydantic.BaseModel):
    model_config = _Strict
    type: Literal["typing"]
    transaction_id: uuid.UUID


class PresenceFrame(pydantic.BaseModel):
    model_config = _Strict
    type: Literal["presence"]
    state: Literal["active", "idle", "background"]


class PingFrame(pydantic.BaseModel):
    model_config = _Strict
    type: Literal["ping"]
    id: _Id | None = None


ClientFrame = Annotated[
    AuthFrame
    | SubscribeFrame
    | UnsubscribeFrame
    | PostFrame
    | ReadFrame
    | TypingFrame
    | PresenceFrame
    | PingFrame,
    pydantic.Field(discriminator="type"),
]

_client_frame: pydantic.TypeAdapter[ClientFrame] = pydantic.TypeAdapter(ClientFrame)


def parse_client_frame(text: str) -> ClientFrame:
    """Read one frame a client sent.

    Raises:
        BadRequest: code ``malformed_json`` when the text is not JSON.
        InvalidInput: an unknown type, or a field missing or wrong.

    """
    try:
        return _client_frame.validate_json(text)
    except pydantic.ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            raise InvalidInput(
                "Unknown frame type; see docs/protocol.md.", field="type"
            ) from None
        # The first part of an error's location is the frame type the
        # union picked, not a field.
        raise refusal(exc, what="The frame", skip_loc=1, whole="type") from None


def frame(kind: str, **fields: Any) -> str:
    """Encode a server frame."""
    return dumps_text({"type": kind, **fields})


def error_frame(
    error: TickmarkError, *, request_id: str | None = None, channel: str | None = None
) -> str:
    body: dict[str, Any] = {"id": request_id, **error.to_json()}
    if channel is not None:
        body["channel"] = channel
    return frame("error", **body)
