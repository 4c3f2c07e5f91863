"""The background work: the email fallback and webhook deliveries.

``tickmark worker`` runs it in a process of its own (the Procfile's
``worker:``), as production should; ``tickmark serve`` runs it inside the
web process too when it uses the embedded database, so that one command
gives a newcomer everything, emails in the local mailbox included.
"""

from __future__ import annotations

import asyncio
import dataclasses

from server.app import notification_policy
from server.clock import Clock
from server.mail.links import MailLinks
from server.mail.sender import sender_from_url
from server.mail.sender_smtp import SmtpSender
from server.mail.worker import MailWorker, WorkerTimings
from server.settings import Settings
from server.store.database import Database
from server.webhooks.dispatcher import WebhookDispatcher


__all__ = ["Worker", "build_worker"]


@dataclasses.dataclass
class Worker:
    mail: MailWorker
    webhooks: WebhookDispatcher
    # Where mail goes, in words, for the log.
    mail_destination: str

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set."""
        try:
            await asyncio.gather(self.mail.run(stop), self.webhooks.run(stop))
        finally:
            await self.webhooks.close()


def build_worker(settings: Settings, db: Database, clock: Clock) -> Worker:
    """Assemble the worker from settings.

    Raises:
        ValueError: SMTP_URL cannot be used.

    """
    sender = sender_from_url(settings.smtp_url, settings.data_dir)
    if isinstance(sender, SmtpSender):
        destination = f"smtp {sender.config.host}:{sender.config.port}"
        budget_secs = sender.config.send_timeout_secs
    else:
        destination = f"the mailbox in {settings.data_dir / 'mailbox'}"
        budget_secs = 60.0
    mail = MailWorker(
        db,
        clock,
        sender,
        notification_policy(settings),
        MailLinks(
            public_url=settings.public_url,
            secret_key=settings.secret_key,
            reply_domain=settings.reply_domain,
        ),
        from_address=settings.mail_from_address,
        timings=WorkerTimings(
            poll_secs=settings.mail_poll_secs,
            retry_base_secs=settings.mail_retry_base_secs,
            retry_max_secs=settings.mail_retry_max_secs,
            send_budget_secs=budget_secs,
        ),
    )
    webhooks = WebhookDispatcher(
        db, clock, allow_private=settings.webhook_allow_private
    )
    return Worker(mail, webhooks, destination)
