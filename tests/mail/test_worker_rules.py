"""The worker's timing rules, run in this process on a clock the test sets.

Posts go through core.conversations with the same clock, so minutes and
hours pass in an instant. Mail goes to the on-disk mailbox, to a real
aiosmtpd that refuses it, or to a port where nothing listens.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from server.app import policy_from
from server.core import conversations
from server.core.events import NoEvents
from server.core.notifications import NotificationPolicy
from server.core.principal import PERSON_SCOPES, Principal
from server.core.services import Services
from server.mail.links import MailLinks
from server.mail.sender import MailSender
from server.mail.sender_mailbox import MailboxSender
from server.mail.sender_smtp import SmtpSender
from server.mail.worker import MailWorker, WorkerTimings, retry_delay_secs
from server.settings import Settings
from server.store import presence
from server.store.database import Database
from tests.mail.harness import Sink, SmtpSink, outbox_rows
from tests.servers import PUBLIC_URL, free_port
from tests.world import Person, World


T0 = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
TIMINGS = WorkerTimings(poll_secs=1, retry_base_secs=30, retry_max_secs=1800)
LINKS = MailLinks(public_url=PUBLIC_URL, secret_key="test-secret")


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: dt.datetime) -> None:
        self.now_at = now

    def now(self) -> dt.datetime:
        return self.now_at

    def monotonic(self) -> float:
        return (self.now_at - T0).total_seconds()

    def at(self, secs: float) -> None:
        """Set the time to T0 + ``secs``."""
        self.now_at = T0 + dt.timedelta(seconds=secs)


class Rig:
    """Posting and working on one fake clock."""

    def __init__(self, db: Database, world: World, policy: NotificationPolicy) -> None:
        self.db = db
        self.world = world
        self.clock = FakeClock(T0)
        self.services = Services(
            db, self.clock, NoEvents(), policy_from(Settings()), policy
        )

    async def post(self, author: Person, body: str, recipients: list[Person]) -> None:
        principal = Principal(
            user_id=author.id,
            display_name=author.name,
            user_kind="person",
            credential_id=uuid.uuid4(),
            credential_kind="token",
            scopes=PERSON_SCOPES,
            company_ids=None,
        )
        await conversations.post_message(
            self.services,
            principal,
            self.world.a,
            self.world.txa["bill"],
            body=body,
            recipient_ids=[p.id for p in recipients],
            idempotency_key=str(uuid.uuid4()),
        )

    def worker(self, sender: MailSender, **timings: Any) -> MailWorker:
        return MailWorker(
            self.db,
            self.clock,
            sender,
            self.services.notifications,
            LINKS,
            from_address="tickmark@tickmark.test",
            timings=WorkerTimings(**(dataclass_fields(TIMINGS) | timings)),
        )

    async def batches(self) -> list[dict[str, Any]]:
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                """
                SELECT state, attempts, next_attempt_at, last_error
                FROM mail_batches ORDER BY created_at
                """
            )
        return [dict(r) for r in rows]


def dataclass_fields(timings: WorkerTimings) -> dict[str, Any]:
    return {
        "poll_secs": timings.poll_secs,
        "retry_base_secs": timings.retry_base_secs,
        "retry_max_secs": timings.retry_max_secs,
        "send_budget_secs": timings.send_budget_secs,
    }


@pytest.fixture
def mailbox(tmp_path: Path) -> MailboxSender:
    return MailboxSender(tmp_path / "mailbox")


async def subjects(mailbox: MailboxSender) -> list[str]:
    return sorted(m.subject for m in await mailbox.list_mails())


async def bodies(mailbox: MailboxSender) -> list[str]:
    found = []
    for stored in await mailbox.list_mails():
        mail = await mailbox.read_mail(stored.id)
        assert isinstance(mail, EmailMessage)
        part = mail.get_body(preferencelist=("plain",))
        assert part is not None
        found.append(str(part.get_content()))
    return found


# The hourly cap


async def test_hourly_cap_holds_back_then_sends_everything_waiting_in_one_email(
    db: Database, world: World, mailbox: MailboxSender
) -> None:
    rig = Rig(
        db, world, NotificationPolicy(default_delay_secs=60, max_emails_per_hour=3)
    )
    worker = rig.worker(mailbox)

    # Three windows, three emails.
    for n in range(3):
        rig.clock.at(n * 100)
        await rig.post(world.ana, f"Question {n}", [world.carl])
        rig.clock.at(n * 100 + 60)
        await worker.run_once()
    assert len(await mailbox.list_mails()) == 3

    # The fourth and fifth wait for the first email to be an hour old.
    rig.clock.at(400)
    await rig.post(world.ana, "Question 3", [world.carl])
    rig.clock.at(500)
    await rig.post(world.ana, "Question 4", [world.carl])
    rig.clock.at(600)
    await worker.run_once()
    assert len(await mailbox.list_mails()) == 3
    async with db.connection() as conn:
        due = await conn.fetch(
            "SELECT DISTINCT due_at FROM mail_outbox WHERE state = 'pending'"
        )
    assert [r["due_at"] for r in due] == [T0 + dt.timedelta(seconds=60 + 3600)]

    rig.clock.at(60 + 3600 - 1)
    await worker.run_once()
    assert len(await mailbox.list_mails()) == 3
    rig.clock.at(60 + 3600)
    await worker.run_once()
    assert await subjects(mailbox) == [
        "2 new messages on Bill A-1001 - Northwind Ledger Ltd",
        "New message on Bill A-1001 - Northwind Ledger Ltd",
        "New message on Bill A-1001 - Northwind Ledger Ltd",
        "New message on Bill A-1001 - Northwind Ledger Ltd",
    ]
    assert [r[0] for r in await outbox_rows(db)] == ["batched"] * 5


async def test_a_window_collects_messages_posted_before_it_closes(
    db: Database, world: World, mailbox: MailboxSender
) -> None:
    rig = Rig(db, world, NotificationPolicy(default_delay_secs=120))
    worker = rig.worker(mailbox)

    await rig.post(world.ana, "First", [world.carl])
    rig.clock.at(119)
    await rig.post(world.ana, "Second", [world.carl])
    await worker.run_once()
    assert await mailbox.list_mails() == []

    rig.clock.at(120)
    await worker.run_once()
    [text] = await bodies(mailbox)
    assert "First" in text
    assert "Second" in text


# Presence


async def test_presence_of_a_dead_process_does_not_count(
    db: Database, world: World, mailbox: MailboxSender
) -> None:
    rig = Rig(db, world, NotificationPolicy(default_delay_secs=60))
    # Written by a server process that then died: never refreshed since,
    # though it claims attention for another hour.
    async with db.connection() as conn:
        await presence.upsert(
            conn,
            "dead-node",
            [
                presence.PresenceRow(
                    connection_id=uuid.uuid4(),
                    user_id=world.carl.id,
                    connected_at=T0,
                    active_until=T0 + dt.timedelta(hours=1),
                    viewing=(),
                )
            ],
            T0,
        )

    await rig.post(world.ana, "Still there?", [world.carl])
    rig.clock.at(60 + presence.STALE_AFTER.total_seconds())
    await rig.worker(mailbox).run_once()

    assert len(await mailbox.list_mails()) == 1


async def test_idle_connection_counts_as_away(
    db: Database, world: World, mailbox: MailboxSender
) -> None:
    rig = Rig(db, world, NotificationPolicy(default_delay_secs=60))
    # Open and refreshed, but attentive only until 30 s (a hidden tab).
    rig.clock.at(60)
    async with db.connection() as conn:
        await presence.upsert(
            conn,
            "live-node",
            [
                presence.PresenceRow(
                    connection_id=uuid.uuid4(),
                    user_id=world.carl.id,
                    connected_at=T0,
                    active_until=T0 + dt.timedelta(seconds=30),
                    viewing=(world.txa["bill"],),
                )
            ],
            rig.clock.now(),
        )
    rig.clock.at(0)
    await rig.post(world.ana, "Hello?", [world.carl])
    rig.clock.at(60)
    await rig.worker(mailbox).run_once()

    assert len(await mailbox.list_mails()) == 1


# Retries


def test_retry_delay_doubles_from_the_base_to_the_cap_with_jitter() -> None:
    highest = [retry_delay_secs(n, TIMINGS, rand=lambda: 1.0) for n in range(1, 9)]
    lowest = [retry_delay_secs(n, TIMINGS, rand=lambda: 0.0) for n in range(1, 9)]
    assert highest == [30, 60, 120, 240, 480, 960, 1800, 1800]
    assert lowest == [15, 30, 60, 120, 240, 480, 900, 900]
    assert retry_delay_secs(10_000, TIMINGS, rand=lambda: 1.0) == 1800
    with pytest.raises(ValueError, match="attempts"):
        retry_delay_secs(0, TIMINGS)


async def test_smtp_down_backs_off_then_gives_up_after_a_day(
    db: Database, world: World
) -> None:
    rig = Rig(db, world, NotificationPolicy(default_delay_secs=0))
    # Nothing listens there: every connection is refused.
    down = SmtpSender.from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    worker = rig.worker(down)

    await rig.post(world.ana, "Anyone?", [world.carl])
    await worker.run_once()
    [batch] = await rig.batches()
    assert batch["state"] == "ready"
    assert batch["attempts"] == 1
    wait_secs = (batch["next_attempt_at"] - T0).total_seconds()
    assert 15 <= wait_secs <= 30
    assert "smtp connection failed" in batch["last_error"]

    # Not before its time.
    rig.clock.at(wait_secs - 1)
    await worker.run_once()
    assert (await rig.batches())[0]["attempts"] == 1

    rig.clock.at(wait_secs)
    await worker.run_once()
    [batch] = await rig.batches()
    assert batch["attempts"] == 2
    second_wait = (batch["next_attempt_at"] - rig.clock.now()).total_seconds()
    assert 30 <= second_wait <= 60

    rig.clock.at(25 * 3600)
    await worker.run_once()
    [batch] = await rig.batches()
    assert batch["state"] == "failed"
    assert batch["attempts"] == 3


async def test_message_read_while_smtp_was_down_is_not_sent_later(
    db: Database, world: World, mailbox: MailboxSender
) -> None:
    rig = Rig(db, world, NotificationPolicy(default_delay_secs=0))
    down = SmtpSender.from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    await rig.post(world.ana, "Read me", [world.carl])
    await rig.worker(down).run_once()

    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO read_states (user_id, conversation_id, last_read_seq) "
            "SELECT $1, id, 1 FROM conversations",
            world.carl.id,
        )
    rig.clock.at(3600)
    await rig.worker(mailbox).run_once()

    assert await mailbox.list_mails() == []
    assert [b["state"] for b in await rig.batches()] == ["dropped"]
    assert await outbox_rows(db) == [("skipped", "read")]


class Refusing(Sink):
    """An aiosmtpd handler that refuses every recipient for good."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return "550 5.1.1 No such user"


@pytest.fixture
async def refusing_smtp() -> AsyncIterator[SmtpSink]:
    server = SmtpSink(Refusing())
    await server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_permanent_refusal_marks_the_email_failed(
    db: Database,
    world: World,
    refusing_smtp: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig(db, world, NotificationPolicy(default_delay_secs=0))
    await rig.post(world.ana, "Bounce", [world.carl])

    await rig.worker(SmtpSender.from_url(refusing_smtp.url)).run_once()

    [batch] = await rig.batches()
    assert batch["state"] == "failed"
    assert batch["attempts"] == 1
    assert batch["last_error"] == "recipient refused: 5.1.1 No such user"
    assert "email refused" in [r.getMessage() for r in caplog.records]


class CrashingFor:
    """A sender with a bug that shows for one recipient only."""

    def __init__(self, address: str, then: MailSender) -> None:
        self.address = address
        self.then = then

    async def send(self, message: EmailMessage) -> None:
        if self.address in str(message["To"]):
            raise RuntimeError("sender bug")
        await self.then.send(message)


async def test_a_crash_on_one_email_is_logged_and_the_others_still_go(
    db: Database,
    world: World,
    mailbox: MailboxSender,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rig = Rig(db, world, NotificationPolicy(default_delay_secs=0))
    await rig.post(world.ana, "For both", [world.carl, world.cora])

    await rig.worker(CrashingFor(world.carl.email, mailbox)).run_once()

    assert [m.to for m in await mailbox.list_mails()] == [
        "Cora Lind <cora.lind@example.test>"
    ]
    states = sorted((b["state"], b["attempts"]) for b in await rig.batches())
    assert states == [("ready", 1), ("sent", 1)]
    crash = [r for r in caplog.records if r.getMessage() == "email send crashed"]
    assert len(crash) == 1
    assert crash[0].exc_info is not None
    assert "internal error: RuntimeError" in [
        b["last_error"] for b in await rig.batches()
    ]
