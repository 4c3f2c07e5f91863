"""The web client in a real browser: Debian's Chromium, driven by Playwright.

Ana (accountant) and Carl (client) each have their own browser context, so
their own cookies, as two people on two machines would.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Page, expect

from server.mail.sender_mailbox import MailboxSender
from server.store.database import Database
from server.store.transactions import TransactionFields
from server.store.transactions import insert as insert_transaction
from tests.browser.conftest import NewContext, PageWatch, SignIn
from tests.world import PASSWORD, World, post


def tx_page(company: uuid.UUID, txn: uuid.UUID | str) -> str:
    return f"/companies/{company}/transactions/{txn}"


async def live(page: Page) -> None:
    """Wait until the page's socket is open and welcomed."""
    await expect(page.locator("body")).to_have_attribute("data-live", "open")


async def choose_recipients(page: Page, *names: str) -> None:
    await page.click("#recipients-button")
    for box in await page.locator("#recipient-options input").all():
        label = page.locator(f'label[for="{await box.get_attribute("id")}"]')
        text = await label.inner_text()
        await box.set_checked(any(name in text for name in names))
    await page.keyboard.press("Escape")
    await expect(page.locator("#recipients-button")).to_have_text(", ".join(names))


async def test_a_message_goes_live_to_the_recipient_and_reading_clears_every_tab(
    people: World, sign_in: SignIn, watch: PageWatch
) -> None:
    w = people
    bill = tx_page(w.a, w.txa["bill"])
    ana_context = await sign_in(w.ana, "Europe/Paris")
    carl_context = await sign_in(w.carl, "America/Los_Angeles")

    # Carl has Home open in one tab; nothing is waiting.
    carl_home = watch.watch(await carl_context.new_page())
    await carl_home.goto("/")
    await live(carl_home)
    await expect(carl_home.locator("#badge-count")).to_have_text("0")

    # Ana writes to Carl on the bill, pressing Enter to post.
    ana = watch.watch(await ana_context.new_page())
    await ana.goto(bill)
    await live(ana)
    await choose_recipients(ana, "Carl Ibsen")
    await ana.fill("#message-body", "Is this the March bill?")
    await ana.press("#message-body", "Enter")
    await expect(ana.locator("#thread .message-body")).to_have_text(
        ["Is this the March bill?"]
    )
    await expect(ana.locator("#message-body")).to_have_value("")

    # Carl's badge goes to 1 without a reload; a second tab shows 1 too.
    await expect(carl_home.locator("#badge-count")).to_have_text("1")
    carl_tab2 = watch.watch(await carl_context.new_page())
    await carl_tab2.goto("/")
    await live(carl_tab2)
    await expect(carl_tab2.locator("#badge-count")).to_have_text("1")

    # The Conversations button opens the waiting messages.
    await carl_home.click("#conversations")
    await carl_home.wait_for_url("**/messages")
    item = carl_home.locator(".waiting-item")
    await expect(item).to_have_count(1)
    await expect(item.locator(".waiting-label")).to_have_text(
        "Bill A-1001 · Northwind Ledger Ltd"
    )
    await expect(item.locator(".waiting-author")).to_have_text("Ana Moreau")
    await expect(item.locator(".waiting-excerpt")).to_have_text(
        "Is this the March bill?"
    )

    # Opening it opens the transaction at that message, and reads it: the
    # badge is 0 in both tabs, the other one never reloaded.
    await item.click()
    await carl_home.wait_for_url(re.compile(re.escape(bill) + r"\?message="))
    highlighted = carl_home.locator("#thread .message.is-highlighted")
    await expect(highlighted.locator(".message-body")).to_have_text(
        "Is this the March bill?"
    )
    await expect(highlighted.locator(".role")).to_have_text("Accountant")
    await expect(carl_home.locator("#badge-count")).to_have_text("0")
    await expect(carl_tab2.locator("#badge-count")).to_have_text("0")

    # Ana sees Carl viewing, then typing; his reply appears live.
    await live(carl_home)
    await expect(ana.locator("#viewers")).to_have_text("Also here now: Carl Ibsen")
    await expect(carl_home.locator("#recipients-button")).to_have_text("Ana Moreau")
    await carl_home.fill("#message-body", "Yes, the March one.")
    await expect(ana.locator("#typing")).to_have_text("Carl Ibsen is typing…")
    await carl_home.click("#post-button")
    await expect(ana.locator("#thread .message-body")).to_have_text(
        ["Is this the March bill?", "Yes, the March one."]
    )
    await expect(ana.locator("#typing")).to_have_text("")
    reply = ana.locator("#thread .message").last
    await expect(reply.locator(".message-author")).to_have_text("Carl Ibsen")
    await expect(reply.locator(".role")).to_have_text("Client")
    await expect(reply.locator("time")).to_have_attribute("datetime", re.compile("Z$"))
    # Shown in the reader's zone: Ana's is Europe/Paris.
    await expect(reply.locator("time")).to_have_text(re.compile(r"GMT\+[12]$"))

    assert watch.dialogs == []
    assert watch.errors == []


async def test_a_signed_out_deep_link_lands_on_its_message_after_sign_in(
    people: World, contexts: NewContext, site: str, watch: PageWatch
) -> None:
    w = people
    async with w.client(w.ana) as ana:
        first = await post(ana, w, w.a, w.txa["bill"], "The first one", [w.carl])
        await post(ana, w, w.a, w.txa["bill"], "The second one", [w.carl])
    message_id = first.json()["message"]["id"]
    target = f"{tx_page(w.a, w.txa['bill'])}?message={message_id}"

    context = await contexts()
    page = watch.watch(await context.new_page())
    await page.goto(target + "#m-1")

    # Sent to sign-in with the path and query; the fragment rides along.
    parts = urlsplit(page.url)
    assert parts.path == "/sign-in"
    assert parse_qs(parts.query)["next"] == [target]
    assert parts.fragment == "m-1"

    await page.fill("#email", w.carl.email)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-submit")
    await page.wait_for_url(site + target + "#m-1")
    highlighted = page.locator("#thread .message.is-highlighted")
    await expect(highlighted).to_have_count(1)
    await expect(highlighted).to_have_attribute("id", "m-1")
    await expect(highlighted.locator(".message-body")).to_have_text("The first one")
    assert watch.errors == []


async def test_a_return_path_to_another_site_lands_on_home(
    people: World, contexts: NewContext, site: str
) -> None:
    context = await contexts()
    page = await context.new_page()
    await page.goto("/sign-in?next=" + "%2F%2Fevil.example%2Fx")
    await page.fill("#email", people.carl.email)
    await page.fill("#password", PASSWORD)
    await page.click("#sign-in-submit")
    await page.wait_for_url(site + "/")
    await expect(page.locator("#home-title")).to_have_text("Northwind Ledger Ltd")


async def test_markup_in_user_text_shows_as_text(
    people: World, db: Database, sign_in: SignIn, watch: PageWatch
) -> None:
    w = people
    async with db.transaction() as conn:
        txn = await insert_transaction(
            conn,
            w.a,
            TransactionFields(
                type="bill",
                doc_number="<b>B-1</b>",
                txn_date=dt.date(2026, 3, 20),
                counterparty='"><img src=x onerror=alert(1)>',
                memo="</td></tr><script>alert(1)</script>",
                amount=Decimal("10.00"),
                currency="USD",
            ),
            external_id="xss-1",
        )
    body = "<script>alert(1)</script> <img src=x onerror=alert(1)> {{7*7}} ${7*7}"
    async with w.client(w.ana) as ana:
        answer = await post(ana, w, w.a, txn.id, body, [w.carl])
        assert answer.status_code == 201

    carl = await sign_in(w.carl)
    page = watch.watch(await carl.new_page())
    await page.goto("/messages")
    await expect(page.locator(".waiting-excerpt")).to_have_text(body)
    await expect(page.locator(".waiting-label")).to_have_text(
        "Bill <b>B-1</b> · Northwind Ledger Ltd"
    )
    await page.goto(tx_page(w.a, txn.id))
    await expect(page.locator("#thread .message-body")).to_have_text([body])
    await expect(page.locator("#txn-counterparty")).to_have_text(
        '"><img src=x onerror=alert(1)>'
    )
    await expect(page.locator("#txn-memo")).to_have_text(
        "</td></tr><script>alert(1)</script>"
    )
    await expect(page.locator("#txn-title")).to_have_text("<b>B-1</b>")
    assert await page.locator("#thread img").count() == 0
    assert await page.locator("main img, main script, main b").count() == 0
    await page.wait_for_timeout(200)
    assert watch.dialogs == []
    assert watch.errors == []


async def test_a_transaction_that_takes_no_conversation_says_so(
    people: World, sign_in: SignIn, watch: PageWatch
) -> None:
    carl = await sign_in(people.carl)
    page = watch.watch(await carl.new_page())
    await page.goto(tx_page(people.a, people.txa["sales_receipt"]))
    await expect(page.locator("#txn-type")).to_have_text("Sales receipt")
    notice = page.locator("#no-conversation")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text("Only posting transactions take conversations")
    await expect(page.locator("#composer")).to_be_hidden()
    assert watch.errors == []


async def test_another_companys_transaction_shows_the_no_access_page(
    people: World, sign_in: SignIn
) -> None:
    w = people
    carl = await sign_in(w.carl)
    page = await carl.new_page()
    for path in (
        tx_page(w.b, w.txb["bill"]),  # company B: not Carl's
        tx_page(w.a, w.txb["bill"]),  # his company, B's transaction
        tx_page(w.a, uuid.uuid4()),  # no such transaction
        tx_page(w.a, "not-an-id"),
    ):
        answer = await page.goto(path)
        assert answer is not None
        assert answer.status == 404
        assert page.url.endswith(path)  # not sent home
        await expect(page.locator("#no-access-message")).to_have_text(
            "You don't have access to this transaction, or it does not exist."
        )
        content = await page.content()
        assert "Bluefin" not in content
        assert "B-1001" not in content


async def test_the_local_mailbox_shows_a_mail_whose_link_opens_the_message(
    people: World, site: str, site_dir: Path, sign_in: SignIn, watch: PageWatch
) -> None:
    w = people
    async with w.client(w.ana) as ana:
        posted = await post(ana, w, w.a, w.txa["bill"], "Mailed to Carl", [w.carl])
    message_id = posted.json()["message"]["id"]
    link = f"{site}{tx_page(w.a, w.txa['bill'])}?message={message_id}"
    mail = EmailMessage()
    mail["From"] = "Tickmark <tickmark@example.test>"
    mail["To"] = "Carl Ibsen <carl.ibsen@example.test>"
    mail["Subject"] = "A message about Bill A-1001 <in> Northwind"
    mail["Message-ID"] = f"<{uuid.uuid4()}@example.test>"
    mail.set_content(f"Ana Moreau wrote: Mailed to Carl\n{link}\n")
    mail.add_alternative(
        '<html><head></head><body style="color:#123456">'
        f'<p>Ana Moreau wrote</p><a id="open" href="{link}">Open</a>'
        "<script>alert(1)</script></body></html>",
        subtype="html",
    )
    await MailboxSender(site_dir / "mailbox").send(mail)

    carl = await sign_in(w.carl)
    page = watch.watch(await carl.new_page())
    await page.goto("/mailbox")
    await expect(page.locator(".notice").first).to_contain_text(
        "local development mailbox"
    )
    await page.click("text=A message about Bill A-1001 <in> Northwind")
    await expect(page.locator(".mail-text")).to_contain_text("Mailed to Carl")
    await expect(page.locator(".mail-links a")).to_have_text([link])

    # The HTML part renders in its sandbox, scripts off, and its link opens
    # the transaction in the whole window.
    frame = page.frame_locator("iframe.mail-frame")
    await expect(frame.locator("p")).to_have_text("Ana Moreau wrote")
    await frame.locator("#open").click()
    await page.wait_for_url(link)
    await expect(
        page.locator("#thread .message.is-highlighted .message-body")
    ).to_have_text("Mailed to Carl")
    assert watch.dialogs == []
    assert watch.errors == []
