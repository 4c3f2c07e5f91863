"""The collaborators every domain operation needs, bundled once."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from server.clock import Clock
from server.core.accounts import AccountPolicy
from server.core.events import Events
from server.core.notifications import NotificationPolicy
from server.store.database import Database


if TYPE_CHECKING:
    from server.core.conversations import PostQueue


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
    # Stores posts that arrive together in one database transaction; with
    # none, each post is stored in its own.
    posting: PostQueue | None = None
