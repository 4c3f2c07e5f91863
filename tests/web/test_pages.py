"""The browser pages over plain HTTP: redirects, return paths, headers, mailbox."""

from __future__ import annotations

import contextlib
import html
import re
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from server.mail.sender_mailbox import MailboxSender
from server.store.database import Database
from tests.servers import PUBLIC_URL, RunningServer, make_settings
from tests.world import PASSWORD, Person, World


@contextlib.asynccontextmanager
async def _browser(
    base_url: str, person: Person | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client that keeps cookies, signed in as ``person`` when given."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        if person is not None:
            answer = await client.post(
                "/api/auth/sign-in",
                json={"email": person.email, "password": PASSWORD},
                headers={"Origin": PUBLIC_URL},
            )
            assert answer.status_code == 200
        yield client


def _next_of(location: str) -> str:
    parts = urlsplit(location)
    assert parts.path == "/sign-in"
    return parse_qs(parts.query)["next"][0]


def _data_next(page: str) -> str:
    found = re.search(r'data-next="([^"]*)"', page)
    assert found is not None
    return html.unescape(found.group(1))


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/messages",
        "/settings",
        "/mailbox",
        "/companies/x/transactions/y?message=m7&tab=messages&highlight=m7",
        "/companies/M%C3%BCller%20%26%20S%C3%B6hne/transactions/ab?q=%3D1&r=%2F",
        "/?" + "q=" + "a" * 2048,
    ],
)
async def test_signed_out_pages_redirect_to_sign_in_with_their_path_and_query(
    world: World, path: str
) -> None:
    async with _browser(world.base_url) as browser:
        answer = await browser.get(path)
    assert answer.status_code == 303
    assert _next_of(answer.headers["location"]) == path


async def test_an_ended_session_redirects_like_none(world: World) -> None:
    async with _browser(world.base_url) as browser:
        browser.cookies.set("tickmark_session", "not-a-session")
        answer = await browser.get("/messages")
    assert answer.status_code == 303
    assert _next_of(answer.headers["location"]) == "/messages"


@pytest.mark.parametrize(
    "value",
    [
        "https://evil.example/x",
        "//evil.example",
        "/\\evil.example",
        "\\/evil.example",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "/%252F%252Fevil.example",
        "https:evil.example",
        "javascript:alert(1)",
        " //evil.example",
        "/\t/evil.example",
        "https://tickmark.test.evil.example",
        "https://tickmark.test@evil.example",
        "",
    ],
)
async def test_sign_in_page_refuses_return_paths_that_leave_the_site(
    world: World, value: str
) -> None:
    async with _browser(world.base_url) as browser:
        answer = await browser.get("/sign-in", params={"next": value})
    assert answer.status_code == 200
    assert _data_next(answer.text) == "/"


@pytest.mark.parametrize(
    "value",
    [
        "/companies/x/transactions/y?message=m7",
        "/?tab=messages&highlight=m7",
        "/companies/M%C3%BCller%20%26%20S%C3%B6hne/transactions/a%2Fb?q=%3D",
        '/search?q="><script>alert(1)</script>',
    ],
)
async def test_sign_in_page_keeps_return_paths_on_the_site_as_escaped_data(
    world: World, value: str
) -> None:
    async with _browser(world.base_url) as browser:
        answer = await browser.get("/sign-in", params={"next": value})
    assert _data_next(answer.text) == value
    assert "<script>alert(1)" not in answer.text


async def test_pages_carry_a_strict_content_security_policy(world: World) -> None:
    async with _browser(world.base_url, world.carl) as browser:
        answer = await browser.get("/")
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "connect-src 'self' ws://tickmark.test" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    # No inline script at all: every script is a file from /static.
    assert re.findall(r"<script[^>]*>", answer.text) == [
        '<script type="module" src="/static/app/home.js">'
    ]


async def test_the_signed_in_name_is_escaped_in_the_page(
    world: World, db: Database
) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE users SET display_name = $1 WHERE id = $2",
            "<img src=x onerror=alert(1)>",
            world.carl.id,
        )
    async with _browser(world.base_url, world.carl) as browser:
        answer = await browser.get("/")
    assert "<img src=x" not in answer.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in answer.text


async def test_a_transaction_not_mine_answers_404_with_the_no_access_page(
    world: World,
) -> None:
    async with _browser(world.base_url, world.carl) as browser:
        mine = await browser.get(
            f"/companies/{world.a}/transactions/{world.txa['bill']}"
        )
        theirs = await browser.get(
            f"/companies/{world.b}/transactions/{world.txb['bill']}"
        )
        mixed = await browser.get(
            f"/companies/{world.a}/transactions/{world.txb['bill']}"
        )
        upper = await browser.get(
            f"/companies/{str(world.a).upper()}/transactions/{world.txa['bill']}"
        )
    assert mine.status_code == 200
    for answer in (theirs, mixed, upper):
        assert answer.status_code == 404
        assert "You don&#39;t have access to this transaction" in answer.text
        assert str(world.b) not in answer.text


async def test_static_files_are_served_with_their_types(world: World) -> None:
    async with _browser(world.base_url) as browser:
        script = await browser.get("/static/tickmark-client.js")
        style = await browser.get("/static/tickmark.css")
        missing = await browser.get("/static/nothing.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "text/css" in style.headers["content-type"]
    assert missing.status_code == 404


@pytest.fixture
async def mailbox_site(db: Database, tmp_path: Path) -> AsyncIterator[str]:
    settings = make_settings(data_dir=tmp_path)
    async with RunningServer(settings, db) as url:
        yield url


def _mail(subject: str, html_part: str | None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Tickmark <tickmark@tickmark.test>"
    mail["To"] = "Carl Ibsen <carl.ibsen@example.test>"
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{uuid.uuid4()}@tickmark.test>"
    mail.set_content("Open it: http://tickmark.test/companies/x/transactions/y\n")
    if html_part is not None:
        mail.add_alternative(html_part, subtype="html")
    return mail


async def test_the_local_mailbox_lists_and_shows_mails_with_the_html_sandboxed(
    world: World, mailbox_site: str, tmp_path: Path
) -> None:
    link = f"{PUBLIC_URL}/companies/{world.a}/transactions/{world.txa['bill']}"
    mailbox = MailboxSender(tmp_path / "mailbox")
    await mailbox.send(
        _mail(
            "About <b>Bill</b> 1",
            f'<html><head><title>t</title></head><body><a href="{link}">Open</a>'
            '<a href="https://evil.example/">Pay</a><script>alert(1)</script>'
            "</body></html>",
        )
    )
    await mailbox.send(_mail("Plain only", None))
    mail_id = (await mailbox.list_mails())[1].id

    async with _browser(mailbox_site, world.carl) as browser:
        listing = await browser.get("/mailbox")
        page = await browser.get(f"/mailbox/{mail_id}")
        part = await browser.get(f"/mailbox/{mail_id}/html")
        missing = await browser.get("/mailbox/" + "0" * 32)
        bad = await browser.get("/mailbox/..%2F..%2Fsecret_key")
    async with _browser(mailbox_site) as stranger:
        part_signed_out = await stranger.get(f"/mailbox/{mail_id}/html")

    assert listing.status_code == 200
    assert "local development mailbox" in listing.text
    assert "About &lt;b&gt;Bill&lt;/b&gt; 1" in listing.text
    assert listing.text.index("Plain only") < listing.text.index("About &lt;b&gt;")

    assert page.status_code == 200
    assert f'src="/mailbox/{mail_id}/html"' in page.text
    assert re.search(
        r'<iframe[^>]*sandbox="allow-top-navigation-by-user-activation"', page.text
    )
    # Only links to this server are offered outside the frame.
    assert f'<a href="{link}">' in page.text
    assert "evil.example" not in page.text

    assert part.status_code == 200
    policy = part.headers["content-security-policy"]
    assert policy.startswith("sandbox allow-top-navigation-by-user-activation;")
    assert "default-src 'none'" in policy
    assert "script-src" not in policy
    assert "frame-ancestors 'self'" in policy
    assert '<head><base target="_top">' in part.text

    assert missing.status_code == 404
    assert bad.status_code == 404
    assert part_signed_out.status_code == 404


async def test_the_mailbox_is_not_there_when_mail_goes_over_smtp(
    world: World, db: Database, tmp_path: Path
) -> None:
    settings = make_settings(data_dir=tmp_path, smtp_url="smtp://127.0.0.1:9")
    async with (
        RunningServer(settings, db) as url,
        _browser(url, world.carl) as browser,
    ):
        listing = await browser.get("/mailbox")
        home = await browser.get("/")
    assert listing.status_code == 404
    assert 'href="/mailbox"' not in home.text


async def test_sign_in_page_escapes_its_return_path_once(world: World) -> None:
    value = "/companies/x/transactions/y?message=m7&a=1"
    async with _browser(world.base_url) as browser:
        answer = await browser.get("/sign-in?next=" + quote(value, safe=""))
    assert 'data-next="/companies/x/transactions/y?message=m7&amp;a=1"' in answer.text


async def test_each_person_sees_only_their_own_mail_in_the_mailbox(
    world: World, mailbox_site: str, tmp_path: Path
) -> None:
    mailbox = MailboxSender(tmp_path / "mailbox")
    for_carl = _mail("For Carl", "<p>Carl's</p>")
    for_ben = _mail("For Ben", "<p>Ben's secret</p>")
    for_ben.replace_header("To", "Ben Ortiz <BEN.ORTIZ@example.test>")
    await mailbox.send(for_carl)
    await mailbox.send(for_ben)
    ids = {m.subject: m.id for m in await mailbox.list_mails()}

    async with _browser(mailbox_site, world.carl) as carl:
        carls_list = await carl.get("/mailbox")
        bens_page = await carl.get(f"/mailbox/{ids['For Ben']}")
        bens_part = await carl.get(f"/mailbox/{ids['For Ben']}/html")
    async with _browser(mailbox_site, world.ben) as ben:
        bens_list = await ben.get("/mailbox")
        own_page = await ben.get(f"/mailbox/{ids['For Ben']}")

    assert "For Carl" in carls_list.text
    assert "For Ben" not in carls_list.text
    assert bens_page.status_code == 404
    assert bens_part.status_code == 404
    assert "For Ben" in bens_list.text
    assert "For Carl" not in bens_list.text
    assert own_page.status_code == 200
