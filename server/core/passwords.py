"""Password hashing with argon2id, off the event loop."""

from __future__ import annotations

import asyncio

import argon2


__all__ = ["hash_password", "verify_password"]

_hasher = argon2.PasswordHasher()

# Verified against when the email is unknown, so that a wrong email costs
# the same time as a wrong password and timing does not reveal accounts.
_DUMMY_HASH = _hasher.hash("tickmark: no such account")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; a None hash (no such account) still costs a check."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and (
                password_hash is not None
            )
        except argon2.exceptions.VerificationError:
            return False
        except argon2.exceptions.InvalidHashError:
            return False

    return await asyncio.to_thread(check)
