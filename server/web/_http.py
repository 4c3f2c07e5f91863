"""Reading JSON requests and writing JSON answers, with the limits applied."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from server.codec import dumps
from server.core.services import Services
from server.errors import (
    InvalidInput,
    PayloadTooLarge,
    RateLimited,
    TickmarkError,
    Unavailable,
    UnsupportedMediaType,
)
from server.settings import Settings
from server.validation import refusal


__all__ = [
    "JSON",
    "bool_param",
    "error_response",
    "int_param",
    "read_model",
    "services_of",
    "settings_of",
]

Model = TypeVar("Model", bound=pydantic.BaseModel)


class JSON(JSONResponse):
    """A JSON response that knows our ids, times and amounts."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_response(exc: TickmarkError) -> Response:
    headers = {}
    if isinstance(exc, RateLimited | Unavailable):
        headers["Retry-After"] = str(exc.retry_after_secs)
    return JSON({"error": exc.to_json()}, status_code=exc.status, headers=headers)


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(
            f"The request body is over the limit of {max_bytes} bytes."
        )
    # The declared length may be absent (chunked) or false: count as we go.
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(
                f"The request body is over the limit of {max_bytes} bytes."
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def read_model(request: Request, model: type[Model], *, max_bytes: int) -> Model:
    """Read the request body as JSON into ``model``.

    Raises:
        PayloadTooLarge: the body is over ``max_bytes``.
        UnsupportedMediaType: the body is not declared as JSON.
        BadRequest: code ``malformed_json`` when it does not parse.
        InvalidInput: naming the first field that is missing or wrong.

    """
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UnsupportedMediaType("Send the request body as application/json.")
    raw = await _read_body(request, max_bytes)
    if not raw.strip():
        raise InvalidInput("The request body is empty.", field="body")
    try:
        return model.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        raise refusal(exc, what="The request body") from None


def services_of(conn: HTTPConnection) -> Services:
    """The domain's collaborators, set up by the app's lifespan."""
    services: Services = conn.app.state.services
    return services


def settings_of(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def int_param(
    request: Request, name: str, default: int | None, *, minimum: int, maximum: int
) -> int | None:
    """An integer query parameter within bounds, or the default."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() and not (raw.startswith("-") and raw[1:].isdigit()):
        raise InvalidInput(f"{name} must be a whole number.", field=name)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidInput(f"{name} is between {minimum} and {maximum}.", field=name)
    return value


def bool_param(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise InvalidInput(f"{name} is true or false.", field=name)
