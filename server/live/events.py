"""Committed changes, announced to live connections through the broker."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from server.broker import Broker, News
from server.core.channels import Channel
from server.live.hub import BADGES, REVALIDATE
from server.live.protocol import frame
from server.metrics import Metrics
from server.store.messages import Message
from server.web.views import message_json


__all__ = ["LiveEvents"]


class LiveEvents:
    """Implements :class:`server.core.events.Events` with a broker.

    A message goes to its transaction's channel and its company's channel,
    each frame carrying the message's position in that channel. Badge
    changes go to each affected user's feed as a signal; every process
    holding one of their connections recomputes the counts and sends a
    complete snapshot, so a lost or reordered signal cannot leave a wrong
    number on screen for longer than the next change.
    """

    def __init__(self, broker: Broker, metrics: Metrics | None = None) -> None:
        self.broker = broker
        # Where published messages are counted; None counts nothing.
        self.metrics = metrics

    async def messages_posted(self, messages: Sequence[Message]) -> None:
        news: list[News] = []
        recipients: dict[uuid.UUID, None] = {}
        for message in messages:
            body = message_json(message)
            for channel, position in (
                (Channel.transaction(message.transaction_id), message.seq),
                (Channel.company(message.company_id), message.company_seq),
            ):
                text = frame("message", channel=channel.name, message=body)
                news.append(News(channel.name, position, text.encode()))
            recipients.update(dict.fromkeys(r.id for r in message.recipients))
        # One signal per recipient, however many of the messages name them:
        # each recomputes the whole snapshot.
        news.extend(News(Channel.user(u).name, None, BADGES) for u in recipients)
        if self.metrics is not None:
            self.metrics.messages_published.inc(len(messages))
        # One publish, so one Redis round trip for the lot.
        await self.broker.publish(*news)

    async def read_advanced(
        self,
        user_id: uuid.UUID,
        company_id: uuid.UUID,
        transaction_id: uuid.UUID,
        last_read_seq: int,
    ) -> None:
        channel = Channel.user(user_id).name
        text = frame(
            "read",
            company_id=company_id,
            transaction_id=transaction_id,
            last_read_seq=last_read_seq,
        )
        await self.broker.publish(
            News(channel, None, text.encode()), News(channel, None, BADGES)
        )

    async def access_changed(self, user_id: uuid.UUID) -> None:
        await self.broker.publish(News(Channel.user(user_id).name, None, REVALIDATE))
