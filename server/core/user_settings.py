"""A person's own settings: email on or off, its delay, time zone, clock.

Anyone signed in may read and change their own settings, and only their
own; the one-click unsubscribe link of an email turns email off with no
sign-in at all, since it carries a token signed for that one person.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
import zoneinfo
from typing import Any

from server.core.mail_tokens import user_of_unsubscribe_token
from server.core.notifications import MAX_DELAY_SECS
from server.core.principal import Principal
from server.errors import InvalidInput, NotFound
from server.store import user_settings
from server.store.database import Database
from server.store.user_settings import UserSettings


__all__ = [
    "UserSettings",
    "change_settings",
    "check_time_zone",
    "my_settings",
    "unsubscribe",
]

logger = logging.getLogger(__name__)

_FIELDS = frozenset(f.name for f in dataclasses.fields(UserSettings))


# Files the zone folder may hold that are not zones a person lives in:
# Debian links "localtime" to the machine's own zone, and "Factory" is the
# tz database's placeholder for "zone not set".
_NOT_ZONES = frozenset(("localtime", "Factory"))


@functools.cache
def _known_zones() -> frozenset[str]:
    # Read once: the list comes from the tz database on disk (or the
    # tzdata package), which does not change while we run.
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def check_time_zone(name: str | None) -> str | None:
    """Return ``name`` if it is an IANA zone this machine knows, or None.

    Only names from the tz database's list are taken: ``zoneinfo`` alone
    would also load files such as "localtime" or "posixrules", which are
    not zones a person chooses, and it reads the name as a path.

    Raises:
        InvalidInput: field ``time_zone``, for any other name.

    """
    if name is None:
        return None
    if name not in _known_zones():
        raise InvalidInput(
            "Use an IANA time zone name such as Europe/Paris.", field="time_zone"
        )
    return name


def _check_delay(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_DELAY_SECS:
        raise InvalidInput(
            f"email_delay_secs is between 0 and {MAX_DELAY_SECS}.",
            field="email_delay_secs",
        )
    return value


async def my_settings(db: Database, principal: Principal) -> UserSettings:
    """The caller's settings.

    Raises:
        NotFound: the account is gone (a credential outliving it).

    """
    async with db.connection() as conn:
        found = await user_settings.get(conn, principal.user_id)
    if found is None:
        raise NotFound()
    return found


async def change_settings(
    db: Database, principal: Principal, changes: dict[str, Any]
) -> UserSettings:
    """Change some of the caller's settings; the others keep their value.

    Args:
        changes: setting name -> new value. ``email_delay_secs`` and
            ``time_zone`` may be None: the server's delay, and UTC.

    Raises:
        InvalidInput: an unknown setting, or a value out of bounds, naming
            the field.
        NotFound: the account is gone.

    """
    unknown = sorted(set(changes) - _FIELDS)
    if unknown:
        raise InvalidInput("This field is not known.", field=unknown[0])
    if "time_zone" in changes:
        check_time_zone(changes["time_zone"])
    if "email_delay_secs" in changes:
        _check_delay(changes["email_delay_secs"])
    for name in ("email_notifications", "clock_24h"):
        if name in changes and not isinstance(changes[name], bool):
            raise InvalidInput("This field is true or false.", field=name)

    # Read and written under the row's lock, so two tabs changing two
    # different settings at once both keep their change.
    async with db.transaction() as conn:
        current = await user_settings.get(conn, principal.user_id, for_update=True)
        if current is None:
            raise NotFound()
        updated = await user_settings.update(
            conn, principal.user_id, dataclasses.replace(current, **changes)
        )
    assert updated is not None
    return updated


async def unsubscribe(db: Database, secret_key: str, token: str) -> uuid.UUID:
    """Turn email off for the person an unsubscribe token was made for.

    Doing it again changes nothing and succeeds again.

    Returns:
        The person's user id.

    Raises:
        NotFound: the token is not one of ours, or its account is gone.

    """
    user_id = user_of_unsubscribe_token(secret_key, token)
    if user_id is None:
        raise NotFound()
    async with db.connection() as conn:
        if not await user_settings.turn_email_off(conn, user_id):
            raise NotFound()
    logger.info("email turned off by unsubscribe link", extra={"user_id": str(user_id)})
    return user_id
