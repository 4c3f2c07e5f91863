"""Replies by email: our SMTP endpoint, on loopback, posting into threads.

The reply server runs in the test's event loop on the test database; mail
is sent to it with aiosmtplib, as an MTA would relay it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from server.app import policy_from
from server.clock import SystemClock
from server.core.events import NoEvents
from server.core.mail_tokens import reply_token
from server.core.notifications import NotificationPolicy
from server.core.services import Services
from server.mail.links import MailLinks
from server.mail.reply_server import ReplyHandler, start_reply_server
from server.mail.reply_text import reply_body, strip_quoted
from server.mail.sender_mailbox import MailboxSender
from server.mail.worker import MailWorker, WorkerTimings
from server.settings import Settings
from server.store.database import Database
from tests.servers import PUBLIC_URL
from tests.world import Person, World, post


DOMAIN = "reply.tickmark.test"


@pytest.fixture
async def reply_port(db: Database) -> AsyncIterator[int]:
    services = Services(db, SystemClock(), NoEvents(), policy_from(Settings()))
    handler = ReplyHandler(services, secret_key="test-secret", reply_domain=DOMAIN)
    server = await start_reply_server(handler, "127.0.0.1", 0)
    try:
        port: int = server.sockets[0].getsockname()[1]
        yield port
    finally:
        server.close()
        await server.wait_closed()


def reply_mail(
    sender: Person,
    to: str,
    body: str,
    *,
    message_id: str | None = None,
    **headers: str,
) -> EmailMessage:
    mail = EmailMessage(policy=policy.SMTP)
    mail["From"] = f"{sender.name} <{sender.email}>"
    mail["To"] = to
    mail["Subject"] = "Re: New message on Bill A-1001 - Northwind Ledger Ltd"
    mail["Message-ID"] = message_id or f"<{uuid.uuid4()}@mail.example.test>"
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    return mail


def address_for(person: Person, txn: uuid.UUID) -> str:
    return f"reply+{reply_token('test-secret', person.id, txn)}@{DOMAIN}"


async def thread(world: World, txn: uuid.UUID) -> list[dict[str, Any]]:
    async with world.client(world.ana) as ana:
        response = await ana.get(world.tx_url(world.a, txn) + "/messages")
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def ana_asks_carl(world: World) -> uuid.UUID:
    txn = world.txa["bill"]
    async with world.client(world.ana) as ana:
        response = await post(ana, world, world.a, txn, "March lease?", [world.carl])
    assert response.status_code == 201
    return txn


GMAIL_REPLY = """Yes, that's the March lease.
Summit added parking.

On Mon, 9 Mar 2026 at 15:30, Tickmark <tickmark@tickmark.test>
wrote:
> Hello Carl Ibsen,
> 1 new message on Bill A-1001 in Northwind Ledger Ltd.
"""


async def test_reply_is_posted_as_the_sender_to_the_author(
    world: World, reply_port: int
) -> None:
    txn = await ana_asks_carl(world)

    await aiosmtplib.send(
        reply_mail(world.carl, address_for(world.carl, txn), GMAIL_REPLY),
        hostname="127.0.0.1",
        port=reply_port,
    )

    messages = await thread(world, txn)
    assert len(messages) == 2
    reply = messages[1]
    assert reply["body"] == "Yes, that's the March lease.\nSummit added parking."
    assert reply["author"]["id"] == str(world.carl.id)
    assert reply["author"]["role"] == "client"
    assert [r["id"] for r in reply["recipients"]] == [str(world.ana.id)]


async def test_the_same_mail_delivered_twice_posts_once(
    world: World, reply_port: int
) -> None:
    txn = await ana_asks_carl(world)
    mail = reply_mail(
        world.carl,
        address_for(world.carl, txn),
        "Once only",
        message_id="<twice@mail.example.test>",
    )

    for _ in range(2):
        await aiosmtplib.send(mail, hostname="127.0.0.1", port=reply_port)

    assert [m["body"] for m in await thread(world, txn)] == [
        "March lease?",
        "Once only",
    ]


async def test_reply_from_another_sender_is_refused(
    world: World, reply_port: int
) -> None:
    txn = await ana_asks_carl(world)

    # Cora answers a mail Carl forwarded her: Carl's address, Cora's From.
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await aiosmtplib.send(
            reply_mail(world.cora, address_for(world.carl, txn), "Me too"),
            hostname="127.0.0.1",
            port=reply_port,
        )

    assert refused.value.code == 550
    assert "does not take replies from you" in refused.value.message
    assert len(await thread(world, txn)) == 1


@pytest.mark.parametrize(
    "to",
    [
        f"reply+{'a' * 45}@{DOMAIN}",
        f"reply+nottoken@{DOMAIN}",
        "reply@" + DOMAIN,
        "carl.ibsen@example.test",
        f"reply+{'b' * 45}@elsewhere.example.test",
    ],
)
async def test_addresses_that_are_not_reply_addresses_are_refused(
    world: World, reply_port: int, to: str
) -> None:
    txn = await ana_asks_carl(world)
    mail = reply_mail(world.carl, to, "Hello")

    with pytest.raises((aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPDataError)):
        await aiosmtplib.send(mail, hostname="127.0.0.1", port=reply_port)

    assert len(await thread(world, txn)) == 1


async def test_automatic_replies_are_taken_and_dropped(
    world: World, reply_port: int
) -> None:
    txn = await ana_asks_carl(world)

    await aiosmtplib.send(
        reply_mail(
            world.carl,
            address_for(world.carl, txn),
            "I am out of the office until Monday.",
            Auto_Submitted="auto-replied",
        ),
        hostname="127.0.0.1",
        port=reply_port,
    )

    assert len(await thread(world, txn)) == 1


async def test_a_reply_with_only_quoted_text_bounces(
    world: World, reply_port: int
) -> None:
    txn = await ana_asks_carl(world)

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await aiosmtplib.send(
            reply_mail(world.carl, address_for(world.carl, txn), "> March lease?\n"),
            hostname="127.0.0.1",
            port=reply_port,
        )

    assert refused.value.code == 550
    assert "no text of its own" in refused.value.message


async def test_a_member_removed_since_cannot_reply(
    world: World, db: Database, reply_port: int
) -> None:
    txn = await ana_asks_carl(world)
    async with db.connection() as conn:
        await conn.execute(
            "DELETE FROM memberships WHERE company_id = $1 AND user_id = $2",
            world.a,
            world.carl.id,
        )

    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await aiosmtplib.send(
            reply_mail(world.carl, address_for(world.carl, txn), "Still me"),
            hostname="127.0.0.1",
            port=reply_port,
        )

    assert refused.value.code == 550
    assert len(await thread(world, txn)) == 1


async def test_notification_reply_to_leads_back_into_the_thread(
    world: World, db: Database, reply_port: int, tmp_path: Path
) -> None:
    txn = await ana_asks_carl(world)
    mailbox = MailboxSender(tmp_path / "mailbox")
    services = Services(
        db,
        SystemClock(),
        NoEvents(),
        policy_from(Settings()),
        NotificationPolicy(default_delay_secs=0),
    )
    async with db.connection() as conn:
        await conn.execute("UPDATE mail_outbox SET due_at = now()")
    worker = MailWorker(
        db,
        services.clock,
        mailbox,
        services.notifications,
        MailLinks(public_url=PUBLIC_URL, secret_key="test-secret", reply_domain=DOMAIN),
        from_address="tickmark@tickmark.test",
        timings=WorkerTimings(),
    )
    await worker.run_once()
    [stored] = await mailbox.list_mails()
    notification = await mailbox.read_mail(stored.id)
    assert notification is not None
    reply_to = str(notification["Reply-To"])
    assert reply_to == address_for(world.carl, txn)

    answer = reply_mail(world.carl, reply_to, "Answered from my phone")
    answer["In-Reply-To"] = str(notification["Message-ID"])
    await aiosmtplib.send(answer, hostname="127.0.0.1", port=reply_port)

    assert [m["body"] for m in await thread(world, txn)][-1] == "Answered from my phone"


# What is kept of a reply


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        (GMAIL_REPLY, "Yes, that's the March lease.\nSummit added parking."),
        (
            "Paid on the 3rd.\r\n\r\nOn 9 Mar 2026, at 15:30, Ana <a@x.test> wrote:"
            "\r\n\r\n> Is it paid?\r\n",
            "Paid on the 3rd.",
        ),
        (
            "See attached.\n\n-----Original Message-----\nFrom: Tickmark\nIs it?",
            "See attached.",
        ),
        (
            "Thanks\n\n________________________________\nFrom: Tickmark <t@x.test>\n"
            "Sent: Monday, March 9, 2026 3:30 PM\nSubject: New message",
            "Thanks",
        ),
        (
            "Done.\n\nFrom: Tickmark <t@x.test>\nDate: Monday 9 March\n\nOld text",
            "Done.",
        ),
        ("Short answer\n-- \nCarl Ibsen\nNorthwind", "Short answer"),
        (
            "> Is the lease $6,500?\nNo, $6,200.\n> And parking?\nYes.",
            "No, $6,200.\nYes.",
        ),
        (
            "Oui, c'est payé.\n\nLe lun. 9 mars 2026 à 15:30, Ana a écrit :\n> Payé ?",
            "Oui, c'est payé.",
        ),
        (
            "Ja.\n\nAm Mo., 9. März 2026 um 15:30 Uhr schrieb Ana <a@x.test>:\n> ?",
            "Ja.",
        ),
        ("Form\x0cfeed\x00and nul", "Form feed and nul"),
        ("\n\n\nLots\n\n\n\nof space\n\n", "Lots\n\nof space"),
        ("> only quoted", ""),
    ],
)
def test_strip_quoted_keeps_only_the_reply(text: str, kept: str) -> None:
    assert strip_quoted(text) == kept


def test_reply_body_reads_html_when_there_is_no_text_part() -> None:
    mail = EmailMessage(policy=policy.default)
    mail.set_content(
        "<html><head><style>p{color:red}</style></head><body>"
        "<div>Yes&nbsp;<b>paid</b>.</div><div>Carl</div>"
        "<blockquote>Is it paid?</blockquote><script>alert(1)</script>"
        "</body></html>",
        subtype="html",
    )
    assert reply_body(mail) == "Yes paid.\n\nCarl"


def test_reply_body_prefers_the_text_part() -> None:
    mail = EmailMessage(policy=policy.default)
    mail.set_content("Plain words")
    mail.add_alternative("<p>HTML words</p>", subtype="html")
    assert reply_body(mail) == "Plain words"


def test_reply_body_of_an_unreadable_charset_is_empty() -> None:
    raw = (
        b"From: a@x.test\r\nContent-Type: text/plain; charset=x-unknown-42\r\n"
        b"\r\nbody\r\n"
    )
    mail = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(mail, EmailMessage)
    assert reply_body(mail) == ""
