"""Notification emails: subject, local times, escaping, header safety."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

import pytest

from server.mail.compose import (
    Notification,
    NotifiedMessage,
    Recipient,
    TransactionGroup,
    _verify_headers,
    compose_notification,
    format_local_time,
)


PUBLIC_URL = "https://app.example.test"
TX_A1 = f"{PUBLIC_URL}/c/co-A/tx/tx-A1"
TX_A2 = f"{PUBLIC_URL}/c/co-A/tx/tx-A2"
SETTINGS_URL = f"{PUBLIC_URL}/settings/email?token=s1gn3d"
SENT_AT = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)

CARL = Recipient(
    display_name="Carl Ibsen",
    email="carl.ibsen@example.test",
    time_zone="America/Los_Angeles",
    clock_24h=False,
)
ANA = Recipient(
    display_name="Ana Moreau",
    email="ana.moreau@example.test",
    time_zone="Europe/Paris",
    clock_24h=True,
)
DEV_NULL = Recipient(display_name="Dev Null Test", email="dev.null@example.test")

# The fixed headers every notification carries, in the order it sets them.
HEADER_NAMES = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
    "X-Auto-Response-Suppress",
    "MIME-Version",
    "Content-Type",
]


def at(hour: int, minute: int = 30, day: int = 9) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=dt.UTC)


def message(
    body: str = "Is this the March lease?", **overrides: Any
) -> NotifiedMessage:
    fields: dict[str, Any] = {
        "author_name": "Ana Moreau",
        "author_role": "accountant",
        "created_at": at(23),
        "body": body,
    }
    return NotifiedMessage(**(fields | overrides))


def group(*messages: NotifiedMessage, **overrides: Any) -> TransactionGroup:
    fields: dict[str, Any] = {
        "label": "Invoice 1042",
        "link_url": TX_A1,
        "messages": messages or (message(),),
    }
    return TransactionGroup(**(fields | overrides))


def notification(*groups: TransactionGroup, **overrides: Any) -> Notification:
    fields: dict[str, Any] = {
        "recipient": CARL,
        "company_name": "Northwind Ledger Ltd",
        "transactions": groups or (group(),),
        "message_id": "<outbox-7f3a@app.example.test>",
        "from_address": "notifications@app.example.test",
        "public_url": PUBLIC_URL,
        "settings_url": SETTINGS_URL,
    }
    return Notification(**(fields | overrides))


def round_trip(mail: EmailMessage) -> EmailMessage:
    """The message as a receiving server parses it from the wire."""
    parsed = message_from_bytes(mail.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    # Lines end in CRLF on the wire; a mail program shows plain lines.
    return content.replace("\r\n", "\n")


def html_of(mail: EmailMessage) -> str:
    part = mail.get_body(("html",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


class Markup(HTMLParser):
    """Every tag, attribute and text run of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text += data


def markup(html: str) -> Markup:
    parser = Markup()
    parser.feed(html)
    parser.close()
    return parser


# Subject and headers


def test_compose_subject_names_one_message_and_company() -> None:
    mail = round_trip(compose_notification(notification(), sent_at=SENT_AT))
    assert mail["Subject"] == "New message on Invoice 1042 - Northwind Ledger Ltd"


def test_compose_subject_counts_messages_on_one_transaction() -> None:
    note = notification(group(message(), message(), message()))
    mail = round_trip(compose_notification(note, sent_at=SENT_AT))
    assert mail["Subject"] == "3 new messages on Invoice 1042 - Northwind Ledger Ltd"


def test_compose_subject_counts_messages_and_transactions() -> None:
    note = notification(
        group(message(), message(), message()),
        group(message(), message(), label="Bank fee March", link_url=TX_A2),
    )
    mail = round_trip(compose_notification(note, sent_at=SENT_AT))
    assert mail["Subject"] == "5 new messages on 2 transactions - Northwind Ledger Ltd"


def test_compose_sets_exactly_the_notification_headers() -> None:
    mail = round_trip(compose_notification(notification(), sent_at=SENT_AT))

    assert list(mail.keys()) == HEADER_NAMES
    assert mail["From"] == "Tickmark <notifications@app.example.test>"
    assert mail["To"] == "Carl Ibsen <carl.ibsen@example.test>"
    assert mail["Date"] == "Sun, 10 Mar 2024 12:00:00 +0000"
    assert mail["Message-ID"] == "<outbox-7f3a@app.example.test>"
    assert mail["List-Unsubscribe"] == f"<{SETTINGS_URL}>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["X-Auto-Response-Suppress"] == "All"
    assert mail["MIME-Version"] == "1.0"
    assert mail.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in mail.iter_parts()]
    assert parts == ["text/plain", "text/html"]


def test_compose_writes_seven_bit_crlf_lines() -> None:
    note = notification(group(message("Grüße aus Köln 👋 " * 30)))
    raw = compose_notification(note, sent_at=SENT_AT).as_bytes()
    assert raw.isascii()
    lines = raw.split(b"\r\n")
    assert b"\n" not in b"".join(lines)
    # RFC 5322's limit for any line; bodies keep to 78 columns.
    assert max(len(line) for line in lines) <= 998
    bodies = [line for line in lines if not re.match(rb"^[A-Za-z-]+: ", line)]
    assert max(len(line) for line in bodies) <= 78


# Body content


def test_compose_text_part_shows_sender_time_excerpt_and_links() -> None:
    note = notification(
        group(
            message("Is this the March lease?\n\nThanks, Ana"),
            message(
                "Receipt attached.",
                author_name="Carl Ibsen",
                author_role="client",
                created_at=at(6, day=10),
                link_url=f"{TX_A1}#m7",
            ),
        )
    )
    text = text_of(round_trip(compose_notification(note, sent_at=SENT_AT)))
    assert text == (
        "Hello Carl Ibsen,\n"
        "\n"
        "2 new messages on Invoice 1042 in Northwind Ledger Ltd.\n"
        "\n"
        "Invoice 1042\n"
        f"{TX_A1}\n"
        "\n"
        "Ana Moreau (accountant), Sat 9 Mar 3:30 PM PST:\n"
        "Is this the March lease? Thanks, Ana\n"
        f"Open: {TX_A1}\n"
        "\n"
        "Carl Ibsen (client), Sat 9 Mar 10:30 PM PST:\n"
        "Receipt attached.\n"
        f"Open: {TX_A1}#m7\n"
        "\n"
        "--\n"
        "You get this email because messages in Tickmark were waiting for you.\n"
        f"Change your email settings: {SETTINGS_URL}\n"
    )


def test_compose_html_part_shows_sender_time_excerpt_and_links() -> None:
    html = html_of(round_trip(compose_notification(notification(), sent_at=SENT_AT)))
    page = markup(html)
    assert "Ana Moreau (accountant) · Sat 9 Mar 3:30 PM PST" in page.text
    assert "Is this the March lease?" in page.text
    assert "Change your email settings" in page.text
    hrefs = [value for name, value in page.attributes if name == "href"]
    assert hrefs == [TX_A1, TX_A1, SETTINGS_URL]


def test_compose_shows_times_in_los_angeles_across_the_dst_change() -> None:
    # R06: US daylight saving time starts 2024-03-10 at 10:00 UTC.
    note = notification(
        group(
            message("one", created_at=at(23, day=9)),
            message("two", created_at=at(6, day=10)),
            message("three", created_at=at(10, day=10)),
        )
    )
    mail = round_trip(compose_notification(note, sent_at=SENT_AT))
    expected = [
        "Ana Moreau (accountant), Sat 9 Mar 3:30 PM PST:",
        "Ana Moreau (accountant), Sat 9 Mar 10:30 PM PST:",
        "Ana Moreau (accountant), Sun 10 Mar 3:30 AM PDT:",
    ]
    text = text_of(mail)
    assert [line for line in text.splitlines() if line.startswith("Ana")] == expected
    page = markup(html_of(mail))
    for shown in (
        "(accountant) · Sat 9 Mar 3:30 PM PST",
        "(accountant) · Sat 9 Mar 10:30 PM PST",
        "(accountant) · Sun 10 Mar 3:30 AM PDT",
    ):
        assert shown in page.text


def test_compose_shows_utc_to_a_recipient_without_a_zone() -> None:
    note = notification(
        group(message(created_at=at(23)), message(created_at=at(10, day=10))),
        recipient=DEV_NULL,
    )
    text = text_of(round_trip(compose_notification(note, sent_at=SENT_AT)))
    assert "Ana Moreau (accountant), Sat 9 Mar 11:30 PM UTC:" in text
    assert "Ana Moreau (accountant), Sun 10 Mar 10:30 AM UTC:" in text


def test_compose_uses_the_24_hour_clock_when_preferred() -> None:
    note = notification(group(message(created_at=at(14))), recipient=ANA)
    text = text_of(round_trip(compose_notification(note, sent_at=SENT_AT)))
    assert "Ana Moreau (accountant), Sat 9 Mar 15:30 CET:" in text


@pytest.mark.parametrize(
    ("zone", "clock_24h", "expected"),
    [
        ("America/Los_Angeles", False, "Sat 9 Mar 3:30 PM PST"),
        ("Europe/Paris", True, "Sun 10 Mar 00:30 CET"),
        ("Europe/Paris", False, "Sun 10 Mar 12:30 AM CET"),
        ("Asia/Kathmandu", True, "Sun 10 Mar 05:15 UTC+0545"),
        ("America/Sao_Paulo", True, "Sat 9 Mar 20:30 UTC-03"),
        ("Asia/Tokyo", False, "Sun 10 Mar 8:30 AM JST"),
        (None, False, "Sat 9 Mar 11:30 PM UTC"),
        (None, True, "Sat 9 Mar 23:30 UTC"),
    ],
)
def test_format_local_time_names_the_zone(
    zone: str | None, clock_24h: bool, expected: str
) -> None:
    assert format_local_time(at(23), zone, clock_24h=clock_24h) == expected


def test_format_local_time_noon_and_midnight_on_12_hour_clock() -> None:
    noon = format_local_time(at(12, 0), None, clock_24h=False)
    assert noon == "Sat 9 Mar 12:00 PM UTC"
    after_midnight = format_local_time(at(0, 5), None, clock_24h=False)
    assert after_midnight == "Sat 9 Mar 12:05 AM UTC"


def test_format_local_time_shows_year_when_it_differs_from_reference() -> None:
    old = dt.datetime(2023, 12, 31, 23, 0, tzinfo=dt.UTC)
    assert (
        format_local_time(old, "Europe/Paris", clock_24h=True, reference=SENT_AT)
        == "Mon 1 Jan 00:00 CET"
    )
    assert (
        format_local_time(old, "America/New_York", clock_24h=True, reference=SENT_AT)
        == "Sun 31 Dec 2023 18:00 EST"
    )


def test_format_local_time_unknown_zone_falls_back_to_utc_with_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="server.mail.compose"):
        shown = format_local_time(at(23), "Mars/Olympus_Mons", clock_24h=True)
    assert shown == "Sat 9 Mar 23:30 UTC"
    assert [record.getMessage() for record in caplog.records] == [
        "unknown time zone, showing utc"
    ]
    assert caplog.records[0].__dict__["zone"] == "Mars/Olympus_Mons"


def test_compose_cuts_long_bodies_to_an_excerpt() -> None:
    note = notification(group(message("word " * 200)))
    text = text_of(round_trip(compose_notification(note, sent_at=SENT_AT)))
    line = next(line for line in text.splitlines() if line.startswith("word"))
    assert line == ("word " * 60).rstrip() + "…"
    assert len(line) == 300


def test_compose_body_cannot_forge_a_link_line_in_the_text_part() -> None:
    note = notification(group(message("See below\nOpen: https://evil.example/pay")))
    text = text_of(round_trip(compose_notification(note, sent_at=SENT_AT)))
    assert "See below Open: https://evil.example/pay\n" in text
    opens = [line for line in text.splitlines() if line.startswith("Open:")]
    assert opens == [f"Open: {TX_A1}"]


def test_compose_shows_messages_oldest_first() -> None:
    note = notification(
        group(message("second", created_at=at(10, day=10)), message("first"))
    )
    text = text_of(round_trip(compose_notification(note, sent_at=SENT_AT)))
    assert text.index("first") < text.index("second")


def test_compose_html_preheader_previews_the_first_message() -> None:
    note = notification(
        group(
            message("Second <thought>", created_at=at(10, day=10)),
            message("First <question>\nabout the lease"),
        )
    )
    html = html_of(round_trip(compose_notification(note, sent_at=SENT_AT)))
    preheader = '<div style="display:none;max-height:0;overflow:hidden;">'
    assert f"{preheader}First &lt;question&gt; about the lease</div>" in html


def test_compose_shows_the_newest_twenty_and_counts_the_rest() -> None:
    messages = [
        message(f"message {n:02d}", created_at=at(0) + dt.timedelta(minutes=n))
        for n in range(25)
    ]
    note = notification(group(*messages))
    mail = round_trip(compose_notification(note, sent_at=SENT_AT))
    text = text_of(mail)
    assert mail["Subject"] == "25 new messages on Invoice 1042 - Northwind Ledger Ltd"
    assert "(5 earlier messages are not shown here.)" in text
    assert "message 04" not in text
    assert "message 05" in text
    assert "message 24" in text
    assert "5 earlier messages are not shown here." in markup(html_of(mail)).text


# Escaping (R28)

HOSTILE = (
    "<img src=x onerror=alert(1)>",
    '<a href="https://evil.example">Pay here</a>',
    '"><script>alert(1)</script>',
    "{{7*7}}",
    "${7*7}",
    "{% raw %}x{% endraw %}",
)


def hostile_notification() -> Notification:
    return notification(
        group(
            *(message(body) for body in HOSTILE),
            label="Invoice </td></tr> memo",
        ),
        group(
            message("ok", author_name='"><script>alert(2)</script>'),
            label="<b>Bank fee</b>",
            link_url=TX_A2,
        ),
        company_name="Acme <b>Ltd</b>",
        recipient=dataclasses.replace(CARL, display_name="<i>Carl</i>"),
    )


def test_compose_html_escapes_all_user_text() -> None:
    mail = compose_notification(hostile_notification(), sent_at=SENT_AT)
    html = html_of(round_trip(mail))
    page = markup(html)

    allowed = {"html", "head", "meta", "title", "body", "div", "table", "tr", "td"}
    allowed |= {"p", "h2", "a", "strong", "span"}
    assert set(page.tags) <= allowed
    names = {name for name, _ in page.attributes}
    assert names <= {
        "lang",
        "charset",
        "name",
        "content",
        "style",
        "role",
        "width",
        "cellspacing",
        "cellpadding",
        "href",
        "dir",
    }
    # What was typed arrives as text, not as markup, and is not evaluated.
    for body in HOSTILE:
        assert body in page.text
    assert "49" not in page.text
    assert "Acme <b>Ltd</b>" in page.text
    assert "Invoice </td></tr> memo" in page.text
    assert '"><script>alert(2)</script> (accountant)' in page.text
    assert "Hello <i>Carl</i>," in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_compose_html_links_only_to_the_public_origin() -> None:
    mail = compose_notification(hostile_notification(), sent_at=SENT_AT)
    html = html_of(round_trip(mail))
    page = markup(html)
    links = [
        value
        for name, value in page.attributes
        if name in ("href", "src", "action", "background", "srcset")
    ]
    assert links == [TX_A1, *[TX_A1] * len(HOSTILE), TX_A2, TX_A2, SETTINGS_URL]
    assert all(link is not None and link.startswith(f"{PUBLIC_URL}/") for link in links)


def test_compose_text_part_shows_user_text_literally() -> None:
    mail = round_trip(compose_notification(hostile_notification(), sent_at=SENT_AT))
    text = text_of(mail)
    for body in HOSTILE:
        assert f"\n{body}\n" in text
    assert "Hello <i>Carl</i>,\n" in text
    assert "\nInvoice </td></tr> memo\n" in text
    assert '"><script>alert(2)</script> (accountant)' in text
    assert "7 new messages on 2 transactions in Acme <b>Ltd</b>.\n" in text
    assert mail["Subject"] == "7 new messages on 2 transactions - Acme <b>Ltd</b>"


# Header injection (S28, CVE-2024-6923)

INJECTIONS = [
    "X=?UTF-8?Q?=0A?=Bcc: evil@example.test",
    "X\r\nBcc: evil@example.test",
    "X\nBcc: evil@example.test",
    "X\rBcc: evil@example.test",
    "X\n",
    "X\x00Bcc: evil@example.test",
    "X\u2028Bcc: evil@example.test",
    "X\x85Bcc: evil@example.test",
    'Boss, "Carl" <evil@example.test>, evil2@example.test',
    "=?UTF-8?B?DQpCY2M6IGV2aWxAZXhhbXBsZS50ZXN0?=",
    "Invoice " + "é" * 2000,
    "Invoice " + "x" * 2000,
]


def assert_one_recipient(raw: bytes) -> EmailMessage:
    mail = message_from_bytes(raw, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    assert list(mail.keys()) == HEADER_NAMES
    assert mail.get_all("Bcc") is None
    assert mail.get_all("Cc") is None
    assert len(mail.get_all("Subject") or []) == 1
    assert [a.addr_spec for a in mail["To"].addresses] == ["carl.ibsen@example.test"]
    assert [a.addr_spec for a in mail["From"].addresses] == [
        "notifications@app.example.test"
    ]
    for name in HEADER_NAMES:
        assert "\n" not in str(mail[name])
        assert "\r" not in str(mail[name])
    return mail


@pytest.mark.parametrize("payload", INJECTIONS)
def test_compose_user_text_never_adds_headers_or_recipients(payload: str) -> None:
    note = notification(
        group(message(author_name=payload), label=payload),
        company_name=payload,
        recipient=dataclasses.replace(CARL, display_name=payload),
        from_name=payload,
    )
    raw = compose_notification(note, sent_at=SENT_AT).as_bytes()
    assert_one_recipient(raw)


def test_compose_breaks_up_encoded_words_in_the_subject() -> None:
    note = notification(group(label="X=?UTF-8?Q?=0A?=Bcc: evil@example.test"))
    mail = assert_one_recipient(compose_notification(note, sent_at=SENT_AT).as_bytes())
    assert mail["Subject"] == (
        "New message on X= ?UTF-8?Q? =0A? =Bcc: evil@example.test"
        " - Northwind Ledger Ltd"
    )


def test_compose_turns_line_breaks_in_names_into_spaces() -> None:
    note = notification(
        company_name="Northwind\r\nBcc: evil@example.test",
        recipient=dataclasses.replace(CARL, display_name="Carl\nIbsen"),
    )
    mail = assert_one_recipient(compose_notification(note, sent_at=SENT_AT).as_bytes())
    assert mail["Subject"] == (
        "New message on Invoice 1042 - Northwind Bcc: evil@example.test"
    )
    assert mail["To"] == "Carl Ibsen <carl.ibsen@example.test>"


def test_compose_quotes_specials_in_display_names() -> None:
    name = 'Ibsen, Carl "The Client" <boss@evil.example>'
    note = notification(recipient=dataclasses.replace(CARL, display_name=name))
    mail = assert_one_recipient(compose_notification(note, sent_at=SENT_AT).as_bytes())
    assert mail["To"].addresses[0].display_name == name


def test_compose_caps_long_labels_in_the_subject() -> None:
    note = notification(group(label="Invoice " + "x" * 2000))
    mail = assert_one_recipient(compose_notification(note, sent_at=SENT_AT).as_bytes())
    assert mail["Subject"] == (
        "New message on Invoice " + "x" * 111 + "… - Northwind Ledger Ltd"
    )


def test_verify_headers_refuses_a_message_with_an_extra_header() -> None:
    mail = compose_notification(notification(), sent_at=SENT_AT)
    mail["Bcc"] = "evil@example.test"
    with pytest.raises(ValueError, match="does not parse back"):
        _verify_headers(mail, "carl.ibsen@example.test", mail["Subject"])


def test_verify_headers_refuses_a_message_with_another_recipient() -> None:
    mail = compose_notification(notification(), sent_at=SENT_AT)
    with pytest.raises(ValueError, match="does not parse back"):
        _verify_headers(mail, "ana.moreau@example.test", mail["Subject"])


# Bad input from the caller


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/c/co-A",
        "https://app.example.test.evil.example/c/co-A",
        "https://app.example.test@evil.example/c/co-A",
        "http://app.example.test/c/co-A",
        "https://app.example.test",
        "https://app.example.test/c/M\u00fcller",
        'https://app.example.test/c/"><script>',
        "https://app.example.test/c/a b",
        "javascript:alert(1)",
    ],
)
def test_notification_refuses_links_off_the_public_origin(link: str) -> None:
    with pytest.raises(ValueError, match="link_url must be a printable ASCII URL"):
        notification(group(link_url=link))
    with pytest.raises(ValueError, match="link_url must be a printable ASCII URL"):
        notification(group(message(link_url=link)))
    with pytest.raises(ValueError, match="settings_url must be a printable ASCII"):
        notification(settings_url=link)


@pytest.mark.parametrize(
    "address",
    [
        "carl.ibsen@example.test\r\nBcc: evil@example.test",
        "carl.ibsen@example.test, evil@example.test",
        "Carl <carl.ibsen@example.test>",
        "carl=?utf-8?q?=0A?=@example.test",
        "carl",
        "",
    ],
)
def test_recipient_refuses_anything_but_one_plain_address(address: str) -> None:
    with pytest.raises(ValueError, match="email must be a plain ASCII email address"):
        Recipient(display_name="Carl", email=address)


def test_notification_refuses_a_malformed_message_id() -> None:
    with pytest.raises(ValueError, match="message_id must look like <id@host>"):
        notification(message_id="<a@b>\r\nBcc: evil@example.test")


def test_notification_refuses_no_transactions() -> None:
    with pytest.raises(ValueError, match="at least one transaction"):
        notification(transactions=())


def test_transaction_group_refuses_no_messages() -> None:
    with pytest.raises(ValueError, match="at least one message"):
        TransactionGroup(label="Invoice 1042", link_url=TX_A1, messages=())


def test_message_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="created_at must be timezone-aware"):
        message(created_at=dt.datetime(2024, 3, 9, 23, 30))


def test_compose_refuses_a_naive_sent_at() -> None:
    with pytest.raises(ValueError, match="sent_at must be timezone-aware"):
        compose_notification(notification(), sent_at=dt.datetime(2024, 3, 10))


def test_a_long_unsubscribe_link_is_sent_as_written_not_encoded() -> None:
    """Mail programs read List-Unsubscribe raw; encoded words break it."""
    link = f"{PUBLIC_URL}/unsubscribe/" + "a1b2c3d4" * 12
    note = notification(unsubscribe_url=link)
    raw = compose_notification(note, sent_at=SENT_AT).as_bytes()
    assert f"\r\nList-Unsubscribe: <{link}>\r\n".encode() in raw
    assert b"=?utf-8?q?=3Chttp" not in raw
