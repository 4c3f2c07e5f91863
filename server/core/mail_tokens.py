"""Signed tokens that travel in emails: unsubscribe links and reply addresses.

Both are HMAC-SHA256 under SECRET_KEY, each with its own purpose label so
that one kind of token can never pass for the other. They carry no expiry:
an email may be opened months later and its links should still work.
Changing SECRET_KEY voids every token sent before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import uuid


__all__ = [
    "reply_token",
    "transaction_of_reply_token",
    "unsubscribe_token",
    "user_of_unsubscribe_token",
]

_UNSUBSCRIBE = b"tickmark unsubscribe\x00"
_REPLY = b"tickmark reply\x00"

# 128 bits: nobody guesses that, online or off.
_UNSUBSCRIBE_MAC_BYTES = 16
# 96 bits, fewer than the unsubscribe link has, because the reply address
# must fit the 64-octet local part of RFC 5321 section 4.5.3.1.1 in base32;
# a forger must also send from the user's own address.
_REPLY_MAC_BYTES = 12

_UNSUBSCRIBE_SHAPE = re.compile(r"([0-9a-f]{32})\.([A-Za-z0-9_-]{22})")
# Base32 of 28 bytes (transaction id and MAC) without padding, lowercase:
# some mail systems fold the case of local parts, so the token does not
# rely on it.
_REPLY_SHAPE = re.compile(r"[a-z2-7]{45}")


def _mac(secret_key: str, purpose: bytes, *parts: uuid.UUID) -> bytes:
    if not secret_key:
        raise ValueError("secret_key must not be empty")
    data = purpose + b"".join(part.bytes for part in parts)
    return hmac.new(secret_key.encode("utf-8"), data, hashlib.sha256).digest()


def unsubscribe_token(secret_key: str, user_id: uuid.UUID) -> str:
    """The token of the user's one-click unsubscribe link."""
    mac = _mac(secret_key, _UNSUBSCRIBE, user_id)[:_UNSUBSCRIBE_MAC_BYTES]
    return f"{user_id.hex}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def user_of_unsubscribe_token(secret_key: str, token: str) -> uuid.UUID | None:
    """The user an unsubscribe token was made for; None when it is not ours."""
    match = _UNSUBSCRIBE_SHAPE.fullmatch(token)
    if match is None:
        return None
    user_id = uuid.UUID(hex=match.group(1))
    expected = unsubscribe_token(secret_key, user_id)
    # Compared in constant time, so the answer's timing tells nothing.
    if not hmac.compare_digest(expected.encode(), token.encode()):
        return None
    return user_id


def reply_token(secret_key: str, user_id: uuid.UUID, transaction_id: uuid.UUID) -> str:
    """The token of the address where ``user_id`` replies on a transaction.

    The token holds the transaction id and a MAC of the (user, transaction)
    pair. The user is not written in it (there is no room): whoever replies
    names themselves with their From address, and the MAC only checks out
    for the user it was made for.
    """
    mac = _mac(secret_key, _REPLY, user_id, transaction_id)[:_REPLY_MAC_BYTES]
    encoded = base64.b32encode(transaction_id.bytes + mac).decode("ascii")
    return encoded.rstrip("=").lower()


def transaction_of_reply_token(
    secret_key: str, token: str, user_id: uuid.UUID
) -> uuid.UUID | None:
    """The transaction a reply token names, if it was made for ``user_id``.

    Returns:
        The transaction id; None when the token is malformed or was made
        for someone else or with another key.

    """
    lowered = token.lower()
    if not _REPLY_SHAPE.fullmatch(lowered):
        return None
    try:
        raw = base64.b32decode(lowered.upper() + "===")
    except binascii.Error:
        return None
    transaction_id = uuid.UUID(bytes=raw[:16])
    expected = reply_token(secret_key, user_id, transaction_id)
    if not hmac.compare_digest(expected.encode(), lowered.encode()):
        return None
    return transaction_id
