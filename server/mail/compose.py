"""One notification email: new messages on a company's transactions.

The outbox worker gathers, for one recipient and one company, the messages
they have not read yet, grouped by transaction, and hands them here as a
:class:`Notification`. :func:`compose_notification` turns that into an
``EmailMessage`` with a plain-text and an HTML part, ready for a
:class:`~server.mail.sender.MailSender`.

Everything a person typed (names, company names, transaction labels,
message bodies) is untrusted here:

- In headers it is reduced to one line of text: controls and line
  separators become spaces, and "=?" and "?=" become "= ?" and "? =" so
  no RFC 2047 encoded-word can be smuggled in. The second rule is what stops
  CVE-2024-6923 on the Python we run (3.11.7), where a decoded "=0A"
  inside an encoded-word is written back out as a real line break when the
  header is folded. As a last guard the finished message is
  parsed back and must show exactly the headers we set.
- In the HTML part Jinja escapes it (autoescape is on for ``.html``
  templates); it is data, never template source, so "{{7*7}}" stays text.
- In the plain-text part it is shown literally, with each field on one
  line so a body cannot forge a link line of its own.

Links in the email are only the ones the caller gives (deep links and the
settings URL), and each must be on the public URL's origin. URLs inside
message bodies are shown as plain text, never as links; some mail programs
make them clickable on their own, which we cannot prevent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import logging
import re
import unicodedata
import zoneinfo
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import urlsplit

import jinja2

from server.core.excerpt import excerpt


__all__ = [
    "EXCERPT_MAX_CHARS",
    "MAX_MESSAGES_SHOWN_PER_TRANSACTION",
    "Notification",
    "NotifiedMessage",
    "Recipient",
    "TransactionGroup",
    "compose_notification",
    "format_local_time",
]

# SMTP's policy (CRLF line ends), with lines folded only past RFC 5322's
# limit of 998 characters: with the default of 78, a long URL with no
# space to fold at (the List-Unsubscribe link) is turned into encoded
# words, which mail programs do not decode in that header.
_POLICY = policy.SMTP.clone(max_line_length=998)

logger = logging.getLogger(__name__)

#: Length of each message's preview in the email, in code points. Long
#: enough for the usual question about a bill, short enough that a digest of
#: thirty messages still reads as a list.
EXCERPT_MAX_CHARS = 300

#: Messages shown per transaction; older ones are counted, not shown. The
#: subject still counts all of them. Bounds the size of a digest after a
#: burst (thirty one-letter messages make thirty lines, not three hundred).
MAX_MESSAGES_SHOWN_PER_TRANSACTION = 20

# Lengths of one-line fields, in code points. Headers stay well under the
# 998-octet line limit of RFC 5322 section 2.1.1 before folding.
_NAME_MAX_CHARS = 100
_LABEL_MAX_CHARS = 120
_PREHEADER_MAX_CHARS = 120

# Controls, unpaired surrogates, and line and paragraph separators: the
# email package and mail programs may read any of them as a line break.
_NOT_ONE_LINE = frozenset(("Cc", "Cs", "Zl", "Zp"))

# A conservative ASCII address: something, one "@", something, with none of
# the characters that would end or split an address in a header, and no "?"
# so that no "=?" can open an encoded-word in it.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=^_`{|}~-]+@[A-Za-z0-9.-]+")

# The Message-ID shape of RFC 5322 section 3.6.4, in printable ASCII.
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+@[!-;=?-~]+>")

# Printable ASCII with nothing that ends a URL in a header or an attribute.
_LINK = re.compile(r"[!#-;=?-~]+")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)

# The headers every notification carries, each exactly once, checked on
# the serialized message (lowercase, since header names are not
# case-sensitive).
_EXPECTED_HEADERS = frozenset(
    (
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
    )
)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("server.mail", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


# Inputs


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Recipient:
    """The person the email goes to."""

    display_name: str
    # Plain ASCII address, the only one the email is sent to.
    email: str
    # IANA zone such as "America/Los_Angeles"; None shows times in UTC.
    time_zone: str | None = None
    # True for "15:30", False for "3:30 PM".
    clock_24h: bool = False

    def __post_init__(self) -> None:
        _check_address(self.email, "email")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NotifiedMessage:
    """One message the recipient has not read."""

    author_name: str
    # "accountant", "client" or "bot", shown beside the name.
    author_role: str
    # When it was posted; must be timezone-aware.
    created_at: dt.datetime
    body: str
    # Deep link to this message; None links to the transaction instead.
    link_url: str | None = None

    def __post_init__(self) -> None:
        if self.created_at.utcoffset() is None:
            raise ValueError("created_at must be timezone-aware")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TransactionGroup:
    """The unread messages of one transaction."""

    # What people call the transaction, such as "Invoice 1042".
    label: str
    # Deep link to the transaction's conversation.
    link_url: str
    messages: tuple[NotifiedMessage, ...]

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("a transaction group needs at least one message")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """Everything one notification email says, for one recipient.

    Links (deep links, ``settings_url`` and ``unsubscribe_url``) must be
    absolute URLs on the
    origin of ``public_url``, in printable ASCII (percent-encode the rest).
    """

    recipient: Recipient
    company_name: str
    transactions: tuple[TransactionGroup, ...]
    # Stable across retries of the same outbox entry, such as
    # "<outbox-id@host>", so a resend is recognisably the same mail.
    message_id: str
    # Our sending address, plain ASCII.
    from_address: str
    # The Tickmark server as users reach it; every link must be on it.
    public_url: str
    # Where the recipient changes their email settings, linked from the
    # body.
    settings_url: str
    # Sent as List-Unsubscribe with One-Click (RFC 8058), so it must accept
    # a POST of "List-Unsubscribe=One-Click" and act on it with no other
    # input, which means it carries its own signed token. None sends
    # settings_url instead, which must then do the same.
    unsubscribe_url: str | None = None
    # Where replies go (Reply-To), plain ASCII; None sets no Reply-To.
    reply_to: str | None = None
    # Name shown with from_address.
    from_name: str = "Tickmark"

    def __post_init__(self) -> None:
        if not self.transactions:
            raise ValueError("a notification needs at least one transaction")
        _check_address(self.from_address, "from_address")
        if not _MESSAGE_ID.fullmatch(self.message_id):
            raise ValueError(
                f"message_id must look like <id@host>, got {self.message_id!r}"
            )
        origin = _origin(self.public_url)
        _check_link(self.settings_url, origin, "settings_url")
        if self.unsubscribe_url is not None:
            _check_link(self.unsubscribe_url, origin, "unsubscribe_url")
        if self.reply_to is not None:
            _check_address(self.reply_to, "reply_to")
        for group in self.transactions:
            _check_link(group.link_url, origin, "link_url")
            for message in group.messages:
                if message.link_url is not None:
                    _check_link(message.link_url, origin, "link_url")


# Composing


def compose_notification(
    notification: Notification, *, sent_at: dt.datetime
) -> EmailMessage:
    """Build the email for ``notification``.

    The result is multipart/alternative, text then HTML, with From, To,
    Subject, Date, Message-ID, List-Unsubscribe(-Post), Auto-Submitted and
    X-Auto-Response-Suppress set, and Reply-To when the notification has
    one. Its policy writes CRLF line endings and
    7-bit content (quoted-printable bodies, RFC 2047 headers), so it can go
    to any SMTP server and be stored as an .eml file unchanged.

    Args:
        notification: what to say and to whom.
        sent_at: the Date header, timezone-aware; times in the body that
            fall in another year than this one show their year.

    Returns:
        The message. It has exactly one recipient, in To.

    Raises:
        ValueError: ``sent_at`` is naive, or the finished message does not
            parse back to the headers we set (which would be our bug).

    """
    if sent_at.utcoffset() is None:
        raise ValueError("sent_at must be timezone-aware")
    recipient = notification.recipient
    zone = _zone(recipient.time_zone)
    company = _one_line(notification.company_name, _NAME_MAX_CHARS)
    subject = _subject(notification)

    # What the templates see: one-line names, previews and local times.
    groups = [
        _group_context(group, zone, recipient.clock_24h, sent_at)
        for group in notification.transactions
    ]
    # The preview mail programs show beside the subject: the first message
    # the body shows.
    first = min(notification.transactions[0].messages, key=lambda m: m.created_at)
    context: dict[str, Any] = {
        "subject": subject,
        "heading": _heading(notification, company),
        "preheader": excerpt(first.body, _PREHEADER_MAX_CHARS),
        "recipient_name": _one_line(recipient.display_name, _NAME_MAX_CHARS),
        "company": company,
        "groups": groups,
        "settings_url": notification.settings_url,
    }
    text = _templates.get_template("notification.txt").render(context)
    html = _templates.get_template("notification.html").render(context)

    message = EmailMessage(policy=_POLICY)
    message["From"] = Address(
        display_name=_header_text(notification.from_name, _NAME_MAX_CHARS),
        addr_spec=notification.from_address,
    )
    message["To"] = Address(
        display_name=_header_text(recipient.display_name, _NAME_MAX_CHARS),
        addr_spec=recipient.email,
    )
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(sent_at.astimezone(dt.UTC))
    message["Message-ID"] = notification.message_id
    if notification.reply_to is not None:
        message["Reply-To"] = Address(addr_spec=notification.reply_to)
    # RFC 2369 section 3.2 and RFC 8058 section 3.1.
    unsubscribe_url = notification.unsubscribe_url or notification.settings_url
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # RFC 3834 section 5: no vacation replies to a machine's mail.
    message["Auto-Submitted"] = "auto-generated"
    # The same request in Exchange's own words.
    message["X-Auto-Response-Suppress"] = "All"
    message["MIME-Version"] = "1.0"

    # Parts made by hand, since add_alternative() leaves a MIME-Version
    # header in the HTML part; it belongs on the message only (RFC 2045
    # section 4).
    message.make_alternative()
    for content, subtype in ((text, "plain"), (html, "html")):
        # Parts keep the 78-column lines of quoted-printable bodies.
        part = EmailMessage(policy=policy.SMTP)
        part.set_content(content, subtype=subtype, cte="quoted-printable")
        del part["MIME-Version"]
        message.attach(part)

    expected = _EXPECTED_HEADERS
    if notification.reply_to is not None:
        expected = expected | {"reply-to"}
    _verify_headers(message, recipient.email, subject, expected)
    return message


def format_local_time(
    at: dt.datetime,
    time_zone: str | None,
    *,
    clock_24h: bool,
    reference: dt.datetime | None = None,
) -> str:
    """Show ``at`` in a reader's zone, with the zone's abbreviation.

    "Sat 9 Mar 3:30 PM PST" on a 12-hour clock, "Sat 9 Mar 15:30 CET" on a
    24-hour one. An email has no script to convert times, so the zone is
    always named: "UTC" for a reader with no zone, and "UTC-03" where the
    zone has no letters of its own. An unknown zone falls back to UTC, which
    is still correct and labelled.

    Args:
        at: the instant, timezone-aware.
        time_zone: IANA zone name, or None for UTC.
        clock_24h: the reader's clock preference.
        reference: the year is shown when ``at`` falls in another year
            than this instant does, both in the reader's zone.

    """
    return _local_time(at, _zone(time_zone), clock_24h, reference)


# Private helpers


def _local_time(
    at: dt.datetime,
    zone: dt.tzinfo,
    clock_24h: bool,
    reference: dt.datetime | None,
) -> str:
    local = at.astimezone(zone)
    date = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}"
    if reference is not None and reference.astimezone(zone).year != local.year:
        date += f" {local.year}"
    if clock_24h:
        clock = f"{local.hour:02d}:{local.minute:02d}"
    else:
        hour = local.hour % 12 or 12
        clock = f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    abbreviation = local.tzname() or "UTC"
    if abbreviation[0] in "+-":
        abbreviation = "UTC" + abbreviation
    return f"{date} {clock} {abbreviation}"


def _zone(name: str | None) -> dt.tzinfo:
    if name is None:
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        # A profile with a zone this machine does not know still gets
        # correct times, labelled UTC, rather than no email.
        logger.warning("unknown time zone, showing utc", extra={"zone": name})
        return dt.UTC


def _subject(notification: Notification) -> str:
    company = _header_text(notification.company_name, _NAME_MAX_CHARS)
    groups = notification.transactions
    count = sum(len(group.messages) for group in groups)
    if len(groups) > 1:
        return f"{count} new messages on {len(groups)} transactions - {company}"
    label = _header_text(groups[0].label, _LABEL_MAX_CHARS)
    if count == 1:
        return f"New message on {label} - {company}"
    return f"{count} new messages on {label} - {company}"


def _heading(notification: Notification, company: str) -> str:
    groups = notification.transactions
    count = sum(len(group.messages) for group in groups)
    messages = "1 new message" if count == 1 else f"{count} new messages"
    if len(groups) > 1:
        return f"{messages} on {len(groups)} transactions in {company}"
    label = _one_line(groups[0].label, _LABEL_MAX_CHARS)
    return f"{messages} on {label} in {company}"


def _group_context(
    group: TransactionGroup,
    zone: dt.tzinfo,
    clock_24h: bool,
    sent_at: dt.datetime,
) -> dict[str, Any]:
    ordered = sorted(group.messages, key=lambda message: message.created_at)
    shown = ordered[-MAX_MESSAGES_SHOWN_PER_TRANSACTION:]
    return {
        "label": _one_line(group.label, _LABEL_MAX_CHARS),
        "link_url": group.link_url,
        "hidden_count": len(ordered) - len(shown),
        "messages": [
            {
                "author": _one_line(message.author_name, _NAME_MAX_CHARS),
                "role": _one_line(message.author_role, _NAME_MAX_CHARS),
                "time": _local_time(message.created_at, zone, clock_24h, sent_at),
                "excerpt": excerpt(message.body, EXCERPT_MAX_CHARS),
                "link_url": message.link_url or group.link_url,
            }
            for message in shown
        ],
    }


def _one_line(value: str, max_chars: int) -> str:
    """``value`` as one line of at most ``max_chars``, cut if needed."""
    spaced = "".join(
        " " if unicodedata.category(char) in _NOT_ONE_LINE else char for char in value
    )
    return excerpt(spaced, max_chars)


def _header_text(value: str, max_chars: int) -> str:
    """``value`` made safe for a header: one line, no encoded-words.

    Python's email package decodes "=?charset?q?...?=" in header text it is
    given, and on releases without the fix for CVE-2024-6923 (3.11.7 among
    them) may write a decoded line break back out raw when folding. Breaking every "=?"
    apart means no encoded-word ever starts in text we did not write.
    """
    spaced = "".join(
        " " if unicodedata.category(char) in _NOT_ONE_LINE else char for char in value
    )
    # One pass each is enough: a space inserted between two characters
    # never makes a new pair. The closing "?=" is broken too, since the
    # email package folds text holding a lone one in odd ways.
    unencoded = spaced.replace("=?", "= ?").replace("?=", "? =")
    return excerpt(unencoded, max_chars)


def _verify_headers(
    message: EmailMessage,
    to: str,
    subject: str,
    expected: frozenset[str] = _EXPECTED_HEADERS,
) -> None:
    """Check that ``message`` parses back to exactly the headers we set.

    The sanitizing above should make this impossible to fail; it is here
    because a mistake in it, or a new bug in the email package, would
    otherwise send a user's text as extra headers or recipients.
    """
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(message.as_bytes())
    names = [name.lower() for name in parsed]
    to_header = parsed["To"]
    recipients = [] if to_header is None else [a.addr_spec for a in to_header.addresses]
    if (
        len(names) != len(set(names))
        or set(names) != expected
        or recipients != [to]
        or str(parsed["Subject"]).split() != subject.split()
    ):
        logger.error("composed mail does not parse back", extra={"headers": names})
        raise ValueError("the composed message does not parse back to its headers")


def _check_address(value: str, name: str) -> None:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{name} must be a plain ASCII email address, got {value!r}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"public_url must be an http(s) URL, got {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _check_link(url: str, origin: str, name: str) -> None:
    # The "/" after the origin matters: without it "https://app.test.evil"
    # and "https://app.test@evil" would pass as being on "https://app.test".
    if not url.startswith(origin + "/") or not _LINK.fullmatch(url):
        raise ValueError(
            f"{name} must be a printable ASCII URL under {origin}/, got {url!r}"
        )
