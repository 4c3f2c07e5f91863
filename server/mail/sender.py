"""Where finished emails go: one interface, an SMTP and a mailbox variant.

A :class:`MailSender` takes one ``EmailMessage`` at a time and either
returns, meaning the mail was handed over, or raises a :class:`MailError`
that tells the caller whether trying again later can help.

Guarantees every variant keeps:

- ``send`` returns only once the mail is accepted: the SMTP server answered
  250 to the end of DATA, or the file is in place on disk.
- At least once, not exactly once. A send that fails with
  :class:`TemporaryMailError` may still have been delivered, for example
  when the connection drops after the server took the message but before
  its answer arrived. Resend with the same Message-ID, so that the mailbox
  variant overwrites and mail programs can tell it is the same mail.
- No retries inside ``send``: the outbox worker owns retries and backoff.
- The envelope comes only from the message's own From and To headers, which
  the composer set: exactly one To address, and no Cc or Bcc header. A
  message with anything else is refused, never partly sent.

Variants: :mod:`server.mail.sender_smtp` (``SMTP_URL`` set) and
:mod:`server.mail.sender_mailbox` (no ``SMTP_URL``: files on disk, for one
machine). :func:`sender_from_url` picks one.

.. code-block:: text

    MailError                   smtp_code: the server's reply code, or None
    ├── TemporaryMailError      keep the mail and try again later
    │   └── MailTimeoutError    a wait or the whole send ran out of time
    └── PermanentMailError      this mail will never go: drop it and say so

"""

from __future__ import annotations

from email.headerregistry import Address, AddressHeader
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol


__all__ = [
    "MailError",
    "MailSender",
    "MailTimeoutError",
    "PermanentMailError",
    "TemporaryMailError",
    "envelope_of",
    "sender_from_url",
]


class MailError(Exception):
    """A mail could not be handed over."""

    def __init__(self, message: str, *, smtp_code: int | None = None) -> None:
        super().__init__(message)
        # The SMTP reply code that caused this, or None when there was no
        # reply (refused connection, timeout, disk error, bad message).
        self.smtp_code = smtp_code


class TemporaryMailError(MailError):
    """Trying the same mail again later may work.

    Raised for a refused or dropped connection, a TLS failure, any 4xx
    reply, and for replies that concern the session rather than this mail
    (greeting, EHLO, STARTTLS, AUTH, "authentication required"), since a
    wrong password or a server in maintenance fails every mail alike and
    the mail itself is fine.
    """


class MailTimeoutError(TemporaryMailError):
    """A step, or the send as a whole, took longer than its budget."""


class PermanentMailError(MailError):
    """This mail will never be accepted as it is.

    Raised for a 5xx reply to MAIL, RCPT or DATA (RFC 5321 section 4.2.1:
    do not repeat the same command), except the ones that ask for
    authentication or encryption first, and for a message whose headers do
    not give exactly one sender and one recipient.
    """


class MailSender(Protocol):
    """Hands finished emails over for delivery."""

    async def send(self, message: EmailMessage) -> None:
        """Hand ``message`` over, once.

        Args:
            message: a complete message with From, To and Message-ID, and
                no Cc or Bcc, such as compose_notification() builds.

        Raises:
            TemporaryMailError: try again later; the mail may have gone.
            PermanentMailError: the mail will never go as it is.

        """
        ...


def envelope_of(message: EmailMessage) -> tuple[str, str]:
    """Return the envelope sender and the one recipient of ``message``.

    Both come from headers the composer set; nothing else in the message
    can add a recipient.

    Raises:
        PermanentMailError: From or To do not hold exactly one address, or
            a Cc, Bcc or Resent- header is present.

    """
    for name in message:
        lowered = name.lower()
        if lowered in ("cc", "bcc") or lowered.startswith("resent-"):
            raise PermanentMailError(f"the message has a {name} header")
    return _one_address(message, "From"), _one_address(message, "To")


def sender_from_url(smtp_url: str | None, data_dir: Path) -> MailSender:
    """Return the sender that ``SMTP_URL`` asks for.

    Args:
        smtp_url: ``smtp://host:port`` (plain), ``smtp+starttls://user:pass@
            host:587`` or ``smtps://user:pass@host:465`` (implicit TLS), with
            percent-encoded credentials and optional ``?timeout=SECS`` (each
            wait) and ``send_timeout=SECS`` (the whole send). None or empty
            keeps mail on disk under ``data_dir``.
        data_dir: Tickmark's data folder; the mailbox is ``mailbox/`` in it.

    Raises:
        ValueError: the URL cannot be used; the message never includes the
            password.

    """
    # Imported here because both variants import this module for its errors.
    from server.mail.sender_mailbox import MailboxSender
    from server.mail.sender_smtp import SmtpSender

    if not smtp_url:
        return MailboxSender(data_dir / "mailbox")
    return SmtpSender.from_url(smtp_url)


def _one_address(message: EmailMessage, name: str) -> str:
    addresses: list[Address] = []
    for header in message.get_all(name) or []:
        # Only the parsed headers of a modern policy say which addresses
        # they hold; a bare string would need email.utils.getaddresses(),
        # which misreads some crafted values on this Python (CVE-2023-27043).
        if not isinstance(header, AddressHeader):
            raise PermanentMailError(
                f"the {name} header was not parsed; build the message with "
                "email.policy.default or SMTP"
            )
        addresses.extend(header.addresses)
    if len(addresses) != 1 or not addresses[0].addr_spec:
        raise PermanentMailError(
            f"the message needs exactly one {name} address, has {len(addresses)}"
        )
    return addresses[0].addr_spec
