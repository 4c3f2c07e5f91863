"""Sending mail to an SMTP server, configured by ``SMTP_URL``.

One connection per mail: connect, (STARTTLS,) (AUTH,) MAIL, RCPT, DATA,
QUIT. There is no pooling, which keeps failures independent and is plenty
for notification volumes; a worker that sends many mails a second would
want to keep a connection open across sends.

Every wait is bounded twice: each connect and each command by
``timeout_secs``, and the whole send by ``send_timeout_secs``, so a server
that answers every command just in time still cannot hold a send for long.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import socket
import ssl
from email.message import EmailMessage
from urllib.parse import parse_qsl, unquote, urlsplit

import aiosmtplib

from server.mail.sender import (
    MailError,
    MailTimeoutError,
    PermanentMailError,
    TemporaryMailError,
    envelope_of,
)


__all__ = ["Security", "SmtpConfig", "SmtpSender"]

logger = logging.getLogger(__name__)

#: Default wait for the connection and for each command's reply. RFC 5321
#: section 4.5.3.2 suggests minutes per command for relays between
#: strangers; our server is our own relay, so ten seconds of silence means
#: trouble, and the outbox retries later anyway.
DEFAULT_TIMEOUT_SECS = 10.0

#: The whole send may take this many single waits: connect, EHLO, STARTTLS,
#: EHLO again, AUTH, MAIL, RCPT, DATA and the message itself.
SEND_TIMEOUT_FACTOR = 6

# RFC 5321 section 4.2.1: 5yz replies are permanent, 4yz transient.
_PERMANENT_CODES = range(500, 600)

# 5yz replies to MAIL that are about the session, not the mail (RFC 4954
# section 6: authentication required, mechanism too weak, encryption
# required). Every mail would get them until the operator fixes SMTP_URL,
# so the mail is kept for later rather than dropped.
_SESSION_CODES = frozenset((530, 534, 538))


class Security(enum.Enum):
    """How the connection to the SMTP server is protected."""

    #: smtp:// - no TLS at all; credentials travel in clear.
    PLAIN = "smtp"
    #: smtp+starttls:// - plain connect, then STARTTLS before anything else
    #: (RFC 3207); refused if the server does not offer it.
    STARTTLS = "smtp+starttls"
    #: smtps:// - TLS from the first byte (RFC 8314 section 3.3).
    TLS = "smtps"


_DEFAULT_PORTS = {Security.PLAIN: 25, Security.STARTTLS: 587, Security.TLS: 465}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SmtpConfig:
    """Where and how to reach the SMTP server."""

    host: str
    port: int
    security: Security
    # Both None for no AUTH.
    username: str | None = None
    password: str | None = dataclasses.field(default=None, repr=False)
    # Bound on the connect and on each command's reply.
    timeout_secs: float = DEFAULT_TIMEOUT_SECS
    # Bound on one whole send, from connect to the reply after DATA.
    send_timeout_secs: float = DEFAULT_TIMEOUT_SECS * SEND_TIMEOUT_FACTOR

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("SMTP_URL needs a host")
        if not 0 < self.port < 65536:
            raise ValueError(f"SMTP port must be 1 to 65535, got {self.port}")
        if (self.username is None) != (self.password is None) or self.username == "":
            raise ValueError("SMTP_URL needs both a user name and a password")
        if not self.timeout_secs > 0 or not self.send_timeout_secs > 0:
            raise ValueError("SMTP timeouts must be positive")

    @classmethod
    def from_url(cls, url: str) -> SmtpConfig:
        """Read ``smtp[s|+starttls]://[user:pass@]host[:port][?timeout=SECS]``.

        The user name and password are percent-decoded, so "@", ":" and "/"
        in them are written %40, %3A and %2F. ``timeout`` bounds each wait
        and ``send_timeout`` the whole send (default: six times
        ``timeout``), both in seconds.

        Raises:
            ValueError: the URL cannot be used. The message shows neither
                the URL nor the password.

        """
        parts = urlsplit(url)
        try:
            security = Security(parts.scheme.lower())
        except ValueError:
            raise ValueError(
                "SMTP_URL must start with smtp://, smtp+starttls:// or smtps://"
            ) from None
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("SMTP_URL takes no path or fragment")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("SMTP_URL has an invalid port") from None

        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        unknown = sorted(set(options) - {"timeout", "send_timeout"})
        if unknown:
            raise ValueError(f"SMTP_URL has unknown options: {', '.join(unknown)}")
        timeout_secs = _seconds(options, "timeout", DEFAULT_TIMEOUT_SECS)
        send_timeout_secs = _seconds(
            options, "send_timeout", timeout_secs * SEND_TIMEOUT_FACTOR
        )

        username, password = parts.username, parts.password
        return cls(
            host=parts.hostname or "",
            port=_DEFAULT_PORTS[security] if port is None else port,
            security=security,
            username=None if username is None else unquote(username),
            password=None if password is None else unquote(password),
            timeout_secs=timeout_secs,
            send_timeout_secs=send_timeout_secs,
        )


class SmtpSender:
    """A :class:`~server.mail.sender.MailSender` that talks SMTP.

    Safe to share between tasks: each send opens its own connection.
    """

    def __init__(
        self,
        config: SmtpConfig,
        *,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        """Prepare to send through the server in ``config``; no I/O yet.

        Args:
            config: the server and its timeouts.
            tls_context: certificates to trust; None uses the system's.
            local_hostname: the name given in EHLO; None uses this
                machine's host name.

        """
        self._config = config
        # None lets aiosmtplib build a verifying context from the system
        # trust store.
        self._tls_context = tls_context
        # Looked up now, since aiosmtplib would otherwise call getfqdn(),
        # a DNS query that blocks the event loop, at the first EHLO.
        self._local_hostname = local_hostname or socket.gethostname()

    @classmethod
    def from_url(
        cls, url: str, *, tls_context: ssl.SSLContext | None = None
    ) -> SmtpSender:
        """Build a sender from ``SMTP_URL``; see :meth:`SmtpConfig.from_url`."""
        return cls(SmtpConfig.from_url(url), tls_context=tls_context)

    @property
    def config(self) -> SmtpConfig:
        """The server and timeouts this sender uses."""
        return self._config

    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to its one To address.

        Raises:
            MailTimeoutError: a step or the whole send ran out of time.
            TemporaryMailError: refused or lost connection, TLS failure,
                a 4xx reply, or a failed greeting, EHLO or AUTH.
            PermanentMailError: a 5xx reply to MAIL, RCPT or DATA, or a
                message without exactly one sender and recipient.

        """
        sender, recipient = envelope_of(message)
        # CRLF line ends, as SMTP wants them (RFC 5321 section 2.3.8).
        raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        config = self._config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            local_hostname=self._local_hostname,
            timeout=config.timeout_secs,
            use_tls=config.security is Security.TLS,
            # False, not None: aiosmtplib's None means "upgrade when the
            # server offers it", which would make smtp:// mean two things.
            start_tls=config.security is Security.STARTTLS,
            tls_context=self._tls_context,
        )
        accepted = False
        try:
            async with asyncio.timeout(config.send_timeout_secs):
                await client.connect()
                await client.sendmail(sender, [recipient], raw)
            accepted = True
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as exc:
            raise _mail_error(exc) from exc
        finally:
            if not accepted:
                # After a failure or a cancellation the session is in an
                # unknown state: drop the connection rather than QUIT on it.
                client.close()
        await _quit(client)
        logger.debug(
            "mail sent",
            extra={"message_id": message["Message-ID"], "smtp_host": config.host},
        )


async def _quit(client: aiosmtplib.SMTP) -> None:
    """Say goodbye politely; the mail is already accepted either way."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        # The server took the mail; an unanswered QUIT changes nothing, and
        # reporting it as a failure would make the worker send it again.
        logger.debug("smtp quit failed", exc_info=True)
    finally:
        client.close()


def _mail_error(
    exc: aiosmtplib.SMTPException | OSError | TimeoutError | ValueError,
) -> MailError:
    """Sort a failed send into temporary or permanent."""
    # Replies about this mail: MAIL, RCPT and DATA.
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusal = exc.recipients[0]
        return _by_code(refusal.code, f"recipient refused: {refusal.message}")
    if isinstance(exc, aiosmtplib.SMTPSenderRefused | aiosmtplib.SMTPDataError):
        return _by_code(exc.code, f"mail refused: {exc.message}")

    # Time ran out: per command (aiosmtplib) or for the whole send (ours).
    if isinstance(exc, TimeoutError):
        return MailTimeoutError("the smtp server did not answer in time")

    # Replies about the session: greeting, EHLO, STARTTLS, AUTH.
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return TemporaryMailError(
            f"smtp session failed: {exc.code} {exc.message}", smtp_code=exc.code
        )
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        return TemporaryMailError(f"smtp connection failed: {exc}")

    # aiosmtplib raises ValueError for an address it cannot put in a command.
    return PermanentMailError(f"the message cannot be sent: {exc}")


def _by_code(code: int, text: str) -> MailError:
    if code in _PERMANENT_CODES and code not in _SESSION_CODES:
        return PermanentMailError(text, smtp_code=code)
    return TemporaryMailError(text, smtp_code=code)


def _seconds(options: dict[str, str], name: str, default: float) -> float:
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"SMTP_URL {name} must be a number of seconds") from None
    if not 0 < value <= 3600:
        raise ValueError(f"SMTP_URL {name} must be above 0 and at most 3600 seconds")
    return value
