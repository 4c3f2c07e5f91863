"""The signature on every webhook delivery, and how receivers check it.

Each delivery carries ``Tickmark-Signature: t=<unix seconds>,v1=<hex>``,
where the hex is HMAC-SHA256, keyed with the webhook's secret, over the
bytes ``<t>.<body>``. A receiver recomputes it over the raw body it got,
compares in constant time, and refuses a timestamp more than five minutes
away from its own clock (a replayed old delivery).
"""

from __future__ import annotations

import hashlib
import hmac


__all__ = ["SIGNATURE_HEADER", "TOLERANCE_SECS", "sign", "verify"]

SIGNATURE_HEADER = "Tickmark-Signature"
#: How far a receiver should accept a signature's time from its own.
TOLERANCE_SECS = 300


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for a body sent at ``timestamp`` (Unix seconds)."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: int) -> bool:
    """Check a signature header as a receiver should."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > TOLERANCE_SECS:
        return False
    expected = _digest(secret, timestamp, body)
    return hmac.compare_digest(expected, fields.get("v1", ""))
