"""The collaborators every domain operation needs, bundled once."""

from __future__ import annotations

import dataclasses

from server.clock import Clock
from server.core.accounts import AccountPolicy
from server.core.events import Events
from server.core.notifications import NotificationPolicy
from server.store.database import Database


__all__ = ["Services"]


@dataclasses.dataclass(frozen=True, slots=True)
class Services:
    db: Database
    clock: Clock
    events: Events
    policy: AccountPolicy
    # When away recipients are mailed; the defaults when not given.
    notifications: NotificationPolicy = dataclasses.field(
        default_factory=NotificationPolicy
    )
