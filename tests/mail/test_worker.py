"""The email fallback end to end: a real server posts, a real worker process
mails, a real SMTP server (aiosmtpd) receives.

Messages are posted over HTTP to a server whose default delay is 1 s; the
worker processes poll every 0.1 s. Waits are on the database's state
(nothing pending, nothing ready to send), then a few more polls, so an
email that should not come has had every chance to.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from server.core.mail_tokens import unsubscribe_token
from server.store import companies, presence
from server.store.database import Database
from tests.mail.harness import (
    Sink,
    SmtpSink,
    WorkerProcess,
    batch_states,
    outbox_rows,
    settled,
    until,
)
from tests.servers import PUBLIC_URL, RunningServer, make_settings
from tests.timing import secs
from tests.world import Person, World, post


StartWorker = Callable[..., WorkerProcess]

# The headers of a notification, exactly; nothing a user typed adds one.
HEADERS = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
    "x-auto-response-suppress",
    "mime-version",
    "content-type",
}


@pytest.fixture(scope="module")
async def mail_server(db: Database) -> AsyncIterator[str]:
    """A server whose posts are due for email 1 s later."""
    async with RunningServer(make_settings(email_delay_secs=1), db) as url:
        yield url


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    server = SmtpSink(Sink())
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_worker(database_url: str, tmp_path: Path) -> Iterator[StartWorker]:
    """Start worker processes; all are stopped at the end of the test."""
    started: list[WorkerProcess] = []

    def start(smtp_url: str, **env: str) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(started)}.log"
        worker = WorkerProcess(database_url, smtp_url, log_path, **env)
        worker.start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def send(
    world: World,
    base_url: str,
    author: Person,
    txn: uuid.UUID,
    body: str,
    recipients: list[Person],
    company: uuid.UUID | None = None,
) -> str:
    """Post a message; returns its id."""
    async with world.client(author, base_url=base_url) as client:
        response = await post(client, world, company or world.a, txn, body, recipients)
    assert response.status_code == 201, response.text
    message_id: str = response.json()["message"]["id"]
    return message_id


async def set_delay(
    world: World, base_url: str, person: Person, delay_secs: int
) -> None:
    async with world.client(person, base_url=base_url) as client:
        response = await client.put(
            "/api/me/settings", json={"email_delay_secs": delay_secs}
        )
    assert response.status_code == 200, response.text


async def quiet_until_settled(db: Database) -> None:
    """Wait for the worker to finish, then give it a few more polls."""
    await until(lambda: settled(db), within_secs=15)
    await asyncio.sleep(secs(0.5))


def deep_link(world: World, company: uuid.UUID, txn: uuid.UUID, message: str) -> str:
    return f"{PUBLIC_URL}/companies/{company}/transactions/{txn}?message={message}"


async def test_away_recipient_gets_one_email_with_a_deep_link(
    world: World,
    db: Database,
    mail_server: str,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    worker = start_worker(smtp.url)
    txn = world.txa["bill"]

    message_id = await send(
        world, mail_server, world.ana, txn, "Is this the March bill?", [world.carl]
    )
    await quiet_until_settled(db)

    [mail] = smtp.sink.received
    assert mail.rcpt_tos == ["carl.ibsen@example.test"]
    assert (
        mail.message["Subject"] == "New message on Bill A-1001 - Northwind Ledger Ltd"
    )
    assert mail.message["To"] == "Carl Ibsen <carl.ibsen@example.test>"
    link = deep_link(world, world.a, txn, message_id)
    assert f"Open: {link}\n" in mail.part("plain")
    assert f'<a href="{link}"' in mail.part("html")
    token = unsubscribe_token("test-secret", world.carl.id)
    assert mail.message["List-Unsubscribe"] == f"<{PUBLIC_URL}/unsubscribe/{token}>"
    assert "Change your email settings: http://tickmark.test/settings" in mail.part(
        "plain"
    )
    async with db.connection() as conn:
        recorded = await conn.fetchval("SELECT message_id FROM mail_batches")
    assert mail.message_id == recorded
    assert recorded.endswith("@tickmark.test>")
    assert await outbox_rows(db) == [("batched", None)]
    assert await batch_states(db) == ["sent"]
    # SIGTERM stops the worker cleanly.
    assert worker.stop() == 0
    assert "mail worker stopped" in worker.log()


async def test_attentive_recipient_gets_no_email(
    world: World,
    db: Database,
    mail_server: str,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    now = dt.datetime.now(dt.UTC)
    async with db.connection() as conn:
        await presence.upsert(
            conn,
            "test-node",
            [
                presence.PresenceRow(
                    connection_id=uuid.uuid4(),
                    user_id=world.carl.id,
                    connected_at=now,
                    active_until=now + dt.timedelta(seconds=60),
                    viewing=(),
                )
            ],
            now,
        )
    start_worker(smtp.url)

    await send(world, mail_server, world.ana, world.txa["bill"], "Here?", [world.carl])
    await quiet_until_settled(db)

    assert smtp.sink.received == []
    assert await outbox_rows(db) == [("skipped", "attentive")]
    assert await batch_states(db) == []


async def test_message_read_before_the_delay_is_not_mailed(
    world: World,
    db: Database,
    mail_server: str,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    start_worker(smtp.url)
    await set_delay(world, mail_server, world.carl, max(2, round(secs(2))))
    txn = world.txa["bill"]

    await send(world, mail_server, world.ana, txn, "Quick one", [world.carl])
    async with world.client(world.carl, base_url=mail_server) as carl:
        read = await carl.post(world.tx_url(world.a, txn) + "/read", json={"seq": 1})
    assert read.status_code == 200
    await quiet_until_settled(db)

    assert smtp.sink.received == []
    assert await outbox_rows(db) == [("skipped", "read")]


async def test_five_messages_in_one_window_make_one_email(
    world: World,
    db: Database,
    mail_server: str,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    start_worker(smtp.url)
    await set_delay(world, mail_server, world.carl, max(2, round(secs(2))))
    txn = world.txa["bill"]

    ids = [
        await send(world, mail_server, world.ana, txn, f"Point {n}", [world.carl])
        for n in range(1, 6)
    ]
    await quiet_until_settled(db)

    [mail] = smtp.sink.received
    assert mail.message["Subject"] == (
        "5 new messages on Bill A-1001 - Northwind Ledger Ltd"
    )
    text = mail.part("plain")
    links = [line for line in text.splitlines() if line.startswith("Open: ")]
    assert links == [f"Open: {deep_link(world, world.a, txn, i)}" for i in ids]
    assert [line for line in text.splitlines() if line.startswith("Point ")] == [
        f"Point {n}" for n in range(1, 6)
    ]
    assert await outbox_rows(db) == [("batched", None)] * 5


async def test_window_over_two_companies_makes_one_email_each(
    world: World,
    db: Database,
    mail_server: str,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    async with db.connection() as conn:
        await companies.add_member(conn, world.c, world.carl.id, "client")
        txc = await conn.fetchval(
            "INSERT INTO transactions (id, company_id, type, doc_number, txn_date, "
            "amount, currency) VALUES ($1, $2, 'invoice', 'C-7', '2026-03-02', 5, "
            "'USD') RETURNING id",
            uuid.uuid4(),
            world.c,
        )
    start_worker(smtp.url)
    await set_delay(world, mail_server, world.carl, max(2, round(secs(2))))

    await send(world, mail_server, world.ana, world.txa["bill"], "A bill", [world.carl])
    await send(
        world, mail_server, world.ana, world.txa["invoice"], "A inv", [world.carl]
    )
    await send(
        world, mail_server, world.ana, txc, "C inv", [world.carl], company=world.c
    )
    await quiet_until_settled(db)

    subjects = sorted(str(m.message["Subject"]) for m in smtp.sink.received)
    assert subjects == [
        "2 new messages on 2 transactions - Northwind Ledger Ltd",
        "New message on Invoice C-7 - Cobalt Books",
    ]


async def test_smtp_down_then_back_delivers_exactly_once(
    world: World,
    db: Database,
    mail_server: str,
    start_worker: StartWorker,
) -> None:
    # Nothing listens on the port yet: every attempt is refused.
    smtp = SmtpSink(Sink())
    worker = start_worker(smtp.url)

    await send(world, mail_server, world.ana, world.txa["bill"], "Down?", [world.carl])

    async def tried_twice() -> bool:
        async with db.connection() as conn:
            attempts = await conn.fetchval("SELECT attempts FROM mail_batches")
        return attempts is not None and attempts >= 2

    await until(tried_twice, within_secs=15)
    await smtp.start()
    try:
        await quiet_until_settled(db)
        [mail] = smtp.sink.received
        assert mail.rcpt_tos == ["carl.ibsen@example.test"]
        assert await batch_states(db) == ["sent"]
        assert "email put off" in worker.log()
    finally:
        smtp.stop()


async def test_worker_killed_mid_send_resends_under_the_same_message_id(
    world: World,
    db: Database,
    mail_server: str,
    start_worker: StartWorker,
) -> None:
    smtp = SmtpSink(Sink(hold_first=True))
    await smtp.start()
    try:
        first = start_worker(smtp.url)
        await send(
            world,
            mail_server,
            world.ana,
            world.txa["bill"],
            "Both of you",
            [world.carl, world.cora],
        )
        await until(lambda: _is_set(smtp.sink), within_secs=15)
        held = smtp.sink.received[0].message_id

        # Killed while the SMTP server has the mail and has not answered.
        first.kill()
        smtp.sink.release.set()
        start_worker(smtp.url)
        await quiet_until_settled(db)

        counts = Counter(m.message_id for m in smtp.sink.received)
        async with db.connection() as conn:
            recorded = {
                r["message_id"]
                for r in await conn.fetch("SELECT message_id FROM mail_batches")
            }
        assert set(counts) == recorded
        assert len(recorded) == 2
        assert counts[held] == 2
        assert max(counts.values()) <= 2
        assert await batch_states(db) == ["sent", "sent"]
    finally:
        smtp.stop()


async def _is_set(sink: Sink) -> bool:
    return sink.holding.is_set()


async def test_header_and_html_injection_arrive_inert(
    world: World,
    db: Database,
    mail_server: str,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE users SET display_name = $2 WHERE id = $1",
            world.ana.id,
            "Ana\r\nBcc: eve@evil.example.test",
        )
        await conn.execute(
            "UPDATE users SET display_name = $2 WHERE id = $1",
            world.carl.id,
            "=?utf-8?q?Carl=0D=0ABcc:_eve@evil.example.test?=",
        )
        await conn.execute(
            "UPDATE companies SET name = $2 WHERE id = $1",
            world.a,
            "Acme <b>Ltd</b>\nBcc: eve@evil.example.test",
        )
    start_worker(smtp.url)
    body = (
        '<script>alert(1)</script> "><img src=x onerror=alert(1)> '
        '<a href="https://evil.example">Pay here</a> {{7*7}}'
    )

    await send(world, mail_server, world.ana, world.txa["bill"], body, [world.carl])
    await quiet_until_settled(db)

    [mail] = smtp.sink.received
    assert mail.rcpt_tos == ["carl.ibsen@example.test"]
    message = mail.message
    assert {name.lower() for name in message} == HEADERS
    assert [a.addr_spec for a in message["To"].addresses] == ["carl.ibsen@example.test"]
    # The line breaks became spaces and the encoded-word was broken apart.
    assert str(message["From"]) == "Tickmark <tickmark@tickmark.test>"
    assert "= ?utf-8?q?Carl=0D=0ABcc:_eve@evil.example.test? =" in str(message["To"])
    html = mail.part("html")
    assert "<script" not in html
    assert "<img" not in html
    assert "<b>" not in html
    assert 'href="https://evil' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "{{7*7}}" in html
    assert body in mail.part("plain")


async def test_member_removed_before_the_send_gets_nothing(
    world: World,
    db: Database,
    mail_server: str,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    start_worker(smtp.url)
    await set_delay(world, mail_server, world.carl, max(2, round(secs(2))))

    await send(world, mail_server, world.ana, world.txa["bill"], "Hi", [world.carl])
    async with db.connection() as conn:
        assert await companies.remove_member(conn, world.a, world.carl.id)
    await quiet_until_settled(db)

    assert smtp.sink.received == []
    assert await outbox_rows(db) == [("skipped", "not_member")]


async def test_two_workers_send_each_email_once(
    world: World,
    db: Database,
    mail_server: str,
    smtp: SmtpSink,
    start_worker: StartWorker,
) -> None:
    start_worker(smtp.url)
    start_worker(smtp.url)

    await send(
        world, mail_server, world.ana, world.txa["bill"], "1", [world.carl, world.cora]
    )
    await send(world, mail_server, world.ana, world.txa["invoice"], "2", [world.carl])
    await send(world, mail_server, world.carl, world.txa["bill"], "3", [world.ana])
    await send(
        world, mail_server, world.ben, world.txb["bill"], "4", [world.bea], world.b
    )
    await send(
        world, mail_server, world.bea, world.txb["bill"], "5", [world.ben], world.b
    )
    await quiet_until_settled(db)

    received = smtp.sink.received
    assert sorted(r.rcpt_tos[0] for r in received) == [
        "ana.moreau@example.test",
        "bea.kim@example.test",
        "ben.ortiz@example.test",
        "carl.ibsen@example.test",
        "cora.lind@example.test",
    ]
    assert len({r.message_id for r in received}) == 5
    assert await batch_states(db) == ["sent"] * 5
