"""Signing in and out, and recognising the holder of a session or token."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import uuid

from server.clock import Clock
from server.core.events import Events
from server.core.passwords import hash_password, verify_password
from server.core.principal import PERSON_SCOPES, Principal, Scope
from server.core.text import check_name
from server.errors import InvalidInput, RateLimited, Unauthenticated
from server.store import credentials, sign_in_failures, users
from server.store.database import Conn, Database


__all__ = [
    "AccountPolicy",
    "IssuedCredential",
    "authenticate",
    "create_user",
    "issue_token",
    "sign_in",
    "sign_out",
]

logger = logging.getLogger(__name__)

# Prefix of every secret we hand out, so secret scanners can spot a leaked
# one and people can tell a Tickmark token from other strings.
_SECRET_PREFIX = "tmk_"  # noqa: S105 (a prefix, not a secret)

# A session's last use is written at most this often, not on every request.
_TOUCH_INTERVAL = dt.timedelta(seconds=60)

_WRONG_CREDENTIALS = "The email or the password is wrong."


@dataclasses.dataclass(frozen=True, slots=True)
class AccountPolicy:
    """The limits sign-in works within; see Settings for their defaults."""

    session_idle_secs: int
    sign_in_token_secs: int
    # Per account from one address.
    failures_per_account: int
    # Per account from every address together.
    failures_per_account_total: int
    failures_per_address: int
    failure_window_secs: int


@dataclasses.dataclass(frozen=True, slots=True)
class IssuedCredential:
    """A credential just made; ``secret`` is shown this once and never kept."""

    principal: Principal
    secret: str
    expires_at: dt.datetime | None


def _hash_secret(secret: str) -> bytes:
    # The secret has 256 random bits, so a fast hash is enough: there is
    # nothing to brute-force, unlike a password.
    return hashlib.sha256(secret.encode()).digest()


def _new_secret() -> str:
    return _SECRET_PREFIX + secrets.token_urlsafe(32)


def normalize_email(email: str) -> str:
    return email.strip().lower()


async def create_user(
    conn: Conn,
    *,
    email: str,
    display_name: str,
    password: str | None,
    kind: str = "person",
    time_zone: str | None = None,
) -> users.User:
    """Add an account, hashing its password.

    Raises:
        InvalidInput: the email is malformed or taken, or the password short.

    """
    email = email.strip()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise InvalidInput(
            "Enter an email address like name@example.com.", field="email"
        )
    if password is not None and len(password) < 8:
        raise InvalidInput("Passwords have at least 8 characters.", field="password")
    if await users.by_email(conn, email) is not None:
        raise InvalidInput("An account with this email already exists.", field="email")
    password_hash = None if password is None else await hash_password(password)
    return await users.insert(
        conn,
        email=email,
        display_name=check_name(display_name, "name", max_chars=100),
        password_hash=password_hash,
        kind=kind,
        time_zone=time_zone,
    )


async def _check_rate(
    conn: Conn, keys: list[tuple[str, int]], now: dt.datetime, window: dt.timedelta
) -> None:
    for key, limit in keys:
        oldest = await sign_in_failures.oldest_in_window(conn, key, now - window, limit)
        if oldest is not None:
            retry_after = (oldest + window - now).total_seconds()
            raise RateLimited(
                "Too many failed sign-ins; wait before trying again.",
                retry_after_secs=int(retry_after) + 1,
            )


async def sign_in(
    db: Database,
    *,
    email: str,
    password: str,
    address: str,
    kind: str,
    policy: AccountPolicy,
    clock: Clock,
) -> IssuedCredential:
    """Check a password and open a session (``kind="session"``) or token.

    A wrong password and an unknown email give the same error, take the same
    time, and count the same towards the limits, so answers reveal nothing
    about which accounts exist.

    Failures are limited three ways: per account from one address (so one
    guesser is stopped soon), per address (so one guesser cannot go through
    many accounts), and per account from everywhere, at a higher bound (so
    a guesser with many addresses is stopped too). The first keeps anyone
    else from locking a person out of their own account by failing on
    purpose; only the last, far higher, can be used that way.

    Raises:
        RateLimited: too many recent failures for this account or address.
        Unauthenticated: the email or the password is wrong.

    """
    now = clock.now()
    window = dt.timedelta(seconds=policy.failure_window_secs)
    account_key = "account:" + normalize_email(email)
    pair_key = account_key + "|" + address
    address_key = "address:" + address
    async with db.connection() as conn:
        await _check_rate(
            conn,
            [
                (pair_key, policy.failures_per_account),
                (address_key, policy.failures_per_address),
                (account_key, policy.failures_per_account_total),
            ],
            now,
            window,
        )
        user = await users.by_email(conn, email.strip())
        hash_ = (
            user.password_hash if user is not None and user.kind == "person" else None
        )
        if not await verify_password(hash_, password) or user is None:
            await sign_in_failures.record(
                conn, [pair_key, address_key, account_key], now
            )
            logger.info("sign-in refused", extra={"address": address})
            raise Unauthenticated(_WRONG_CREDENTIALS)

        await sign_in_failures.clear(conn, pair_key, now + dt.timedelta(seconds=1))
        lifetime = (
            policy.session_idle_secs if kind == "session" else policy.sign_in_token_secs
        )
        issued = await _issue(
            conn,
            user,
            kind=kind,
            scopes=PERSON_SCOPES,
            company_ids=None,
            expires_at=now + dt.timedelta(seconds=lifetime),
            name="sign-in" if kind == "token" else "",
        )
    logger.info("signed in", extra={"user_id": str(user.id), "kind": kind})
    return issued


async def issue_token(
    conn: Conn,
    user: users.User,
    *,
    name: str,
    scopes: frozenset[str],
    company_ids: frozenset[uuid.UUID] | None,
    expires_at: dt.datetime | None,
    parent_id: uuid.UUID | None = None,
) -> IssuedCredential:
    """Make a bearer token for a program acting as ``user``.

    Args:
        parent_id: the token making this one, if a token does; revoking
            it then revokes this one too.

    """
    unknown = scopes - {s.value for s in Scope}
    if unknown or not scopes:
        raise InvalidInput(
            "Scopes are read, post, subscribe and write_transactions.", field="scopes"
        )
    return await _issue(
        conn,
        user,
        kind="token",
        scopes=scopes,
        company_ids=company_ids,
        expires_at=expires_at,
        name=name,
        parent_id=parent_id,
    )


async def _issue(
    conn: Conn,
    user: users.User,
    *,
    kind: str,
    scopes: frozenset[str],
    company_ids: frozenset[uuid.UUID] | None,
    expires_at: dt.datetime | None,
    name: str,
    parent_id: uuid.UUID | None = None,
) -> IssuedCredential:
    secret = _new_secret()
    credential = await credentials.insert(
        conn,
        user_id=user.id,
        kind=kind,
        secret_hash=_hash_secret(secret),
        scopes=scopes,
        company_ids=company_ids,
        expires_at=expires_at,
        name=name,
        parent_id=parent_id,
    )
    principal = _principal(credential, user.display_name, user.kind)
    return IssuedCredential(principal, secret, expires_at)


def _principal(
    credential: credentials.Credential, display_name: str, user_kind: str
) -> Principal:
    return Principal(
        user_id=credential.user_id,
        display_name=display_name,
        user_kind=user_kind,
        credential_id=credential.id,
        credential_kind=credential.kind,
        scopes=credential.scopes,
        company_ids=credential.company_ids,
    )


async def authenticate(
    db: Database, secret: str, *, policy: AccountPolicy, clock: Clock
) -> Principal:
    """Recognise the holder of a session cookie or bearer token.

    Raises:
        Unauthenticated: unknown, revoked or expired.

    """
    if not secret.startswith(_SECRET_PREFIX) or len(secret) > 100:
        raise Unauthenticated("Sign in to continue.")
    now = clock.now()
    async with db.connection() as conn:
        holder = await credentials.holder_by_secret_hash(conn, _hash_secret(secret))
        credential = None if holder is None else holder.credential
        if (
            holder is None
            or credential is None
            or credential.revoked_at is not None
            or (credential.expires_at is not None and credential.expires_at <= now)
        ):
            raise Unauthenticated("Your session has ended; sign in again.")
        if now - credential.last_used_at >= _TOUCH_INTERVAL:
            expires_at = credential.expires_at
            if credential.kind == "session":
                # Sessions end after a spell of disuse, not at a fixed time.
                expires_at = now + dt.timedelta(seconds=policy.session_idle_secs)
            await credentials.touch(conn, credential.id, now, expires_at)
    return _principal(credential, holder.display_name, holder.user_kind)


async def sign_out(
    db: Database, principal: Principal, *, clock: Clock, events: Events
) -> None:
    """End the session or revoke the token the principal is acting through.

    Open connections using it are told at once through ``events``.
    """
    async with db.connection() as conn:
        await credentials.revoke(
            conn, principal.credential_id, principal.user_id, clock.now()
        )
    await events.access_changed(principal.user_id)
    logger.info("signed out", extra={"user_id": str(principal.user_id)})
