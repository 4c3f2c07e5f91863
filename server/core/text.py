"""Rules for the text people type: message bodies and keys."""

from __future__ import annotations

import re
import unicodedata

from server.errors import InvalidInput


__all__ = ["MAX_BODY_BYTES", "check_body", "check_idempotency_key"]

#: Largest message body, counted in UTF-8 bytes (about 16,000 Latin letters
#: or 5,400 CJK characters). Counted in bytes, not characters, because that
#: is what every layer below us measures: a body at the limit, even escaped
#: as JSON, still fits in one WebSocket frame.
MAX_BODY_BYTES = 16 * 1024

# C0 controls other than tab, line feed and carriage return, and DEL.
# PostgreSQL cannot store NUL at all; the others have no place in a message.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_KEY = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


# Spaces and line separators, controls, and format characters (zero-width
# spaces and joiners, direction marks): nothing that shows by itself.
_INVISIBLE = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf"})


def _visible(char: str) -> bool:
    return unicodedata.category(char) not in _INVISIBLE


def check_body(body: str, field: str = "body") -> str:
    """Return the body if it may be stored as a message.

    Raises:
        InvalidInput: empty, too long, or holding characters that are not
            text (controls, unpaired surrogates).

    """
    if not any(_visible(c) for c in body):
        # Spaces, zero-width and direction marks alone say nothing.
        raise InvalidInput("The message is empty.", field=field)
    try:
        size = len(body.encode("utf-8"))
    except UnicodeEncodeError:
        # Only an unpaired surrogate (sent as "\ud800" in JSON) gets here.
        raise InvalidInput(
            "The message holds an invalid character (an unpaired surrogate).",
            field=field,
        ) from None
    if size > MAX_BODY_BYTES:
        raise InvalidInput(
            f"The message is {size} bytes long; the limit is {MAX_BODY_BYTES} "
            "bytes of UTF-8.",
            field=field,
        )
    if _CONTROL.search(body):
        raise InvalidInput("The message holds control characters.", field=field)
    return body


def check_idempotency_key(key: str) -> str:
    """Return the key if it has the documented shape.

    Raises:
        InvalidInput: not 1 to 128 letters, digits or ``. _ : -``.

    """
    if not _KEY.fullmatch(key):
        raise InvalidInput(
            "Idempotency keys are 1 to 128 letters, digits or . _ : - "
            "(a UUID is a good choice).",
            field="idempotency_key",
        )
    return key


def check_name(value: str, field: str, max_chars: int = 200) -> str:
    """Return a trimmed one-line name (company, person, counterparty)."""
    value = value.strip()
    if not value:
        raise InvalidInput("This must not be empty.", field=field)
    if len(value) > max_chars:
        raise InvalidInput(f"At most {max_chars} characters.", field=field)
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in value):
        raise InvalidInput("Names are one line of text.", field=field)
    return value
