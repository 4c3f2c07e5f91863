"""pydantic's validation errors, as the errors our clients see."""

from __future__ import annotations

import pydantic

from server.errors import BadRequest, InvalidInput, TickmarkError


__all__ = ["refusal"]


def refusal(
    exc: pydantic.ValidationError,
    *,
    what: str,
    skip_loc: int = 0,
    whole: str = "body",
) -> TickmarkError:
    """The error to answer for the first thing pydantic found wrong.

    Args:
        exc: pydantic's error.
        what: what was being read, for the message ("The request body").
        skip_loc: leading parts of the error's location that are not field
            names (the tag a discriminated union picked, say).
        whole: the field to name when the input as a whole is at fault.

    Returns:
        ``BadRequest`` (code ``malformed_json``) when the input is not JSON,
        else ``InvalidInput`` naming the field as a dotted path.

    """
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return BadRequest(f"{what} is not valid JSON.", code="malformed_json")
    field = ".".join(str(part) for part in first["loc"][skip_loc:]) or whole
    if first["type"] == "missing":
        message = "This field is required."
    elif first["type"] == "extra_forbidden":
        message = "This field is not known."
    else:
        message = first["msg"] + "."
    return InvalidInput(message, field=field)
