"""Mail senders against a real SMTP server on loopback, and the mailbox.

The SMTP server is aiosmtpd, started by each test on 127.0.0.1 in a thread
of its own. Servers that misbehave (never answer, answer slowly) are bare
asyncio servers started in the test's loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from server.mail.compose import (
    Notification,
    NotifiedMessage,
    Recipient,
    TransactionGroup,
    compose_notification,
)
from server.mail.sender import (
    MailTimeoutError,
    PermanentMailError,
    TemporaryMailError,
    envelope_of,
    sender_from_url,
)
from server.mail.sender_mailbox import MailboxSender, StoredMail
from server.mail.sender_smtp import Security, SmtpConfig, SmtpSender


# Stretches every timing bound here, for slow or loaded machines.
TIMING = float(os.environ.get("TICKMARK_TEST_TIMING_FACTOR", "1"))

PUBLIC_URL = "https://app.example.test"
FROM = "notifications@app.example.test"
CARL = "carl.ibsen@example.test"
SENT_AT = dt.datetime(2024, 3, 10, 12, 0, tzinfo=dt.UTC)


def compose(
    *,
    message_id: str = "<outbox-1@app.example.test>",
    label: str = "Invoice 1042",
    email: str = CARL,
    sent_at: dt.datetime = SENT_AT,
) -> EmailMessage:
    note = Notification(
        recipient=Recipient(
            display_name="Carl Ibsen",
            email=email,
            time_zone="America/Los_Angeles",
        ),
        company_name="Northwind Ledger Ltd",
        transactions=(
            TransactionGroup(
                label=label,
                link_url=f"{PUBLIC_URL}/c/co-A/tx/tx-A1",
                messages=(
                    NotifiedMessage(
                        author_name="Ana Moreau",
                        author_role="accountant",
                        created_at=dt.datetime(2024, 3, 9, 23, 30, tzinfo=dt.UTC),
                        body="Is this the March lease?",
                    ),
                ),
            ),
        ),
        message_id=message_id,
        from_address=FROM,
        public_url=PUBLIC_URL,
        settings_url=f"{PUBLIC_URL}/settings/email?token=t0k",
    )
    return compose_notification(note, sent_at=sent_at)


def free_port() -> int:
    """A loopback port that nothing listens on, for now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# A real SMTP server


@dataclasses.dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    over_tls: bool


class Sink:
    """An aiosmtpd handler that keeps what it receives.

    ``replies`` maps a recipient to the reply its RCPT gets instead of 250;
    ``data_reply`` is the answer to the end of DATA.
    """

    def __init__(
        self,
        replies: dict[str, str] | None = None,
        data_reply: str = "250 OK",
        require_auth: bool = False,
    ) -> None:
        self.replies = replies or {}
        self.data_reply = data_reply
        # Checked here rather than with aiosmtpd's auth_required, which
        # warns when TLS is not required too, and tests run warnings as
        # errors.
        self.require_auth = require_auth
        self.received: list[Received] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.replies:
            return self.replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                data=envelope.original_content,
                over_tls=session.ssl is not None,
            )
        )
        return self.data_reply

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        ok = (data.login, data.password) == (b"ana@tickmark", b"p@ss:w0rd/#?")
        # handled=False: aiosmtpd sends the 235 or 535 reply itself.
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def start_smtp() -> Iterator[Callable[..., Awaitable[int]]]:
    """Start aiosmtpd servers on loopback; all are stopped at the end."""
    controllers: list[Controller] = []

    async def start(sink: Sink, **options: Any) -> int:
        port = free_port()
        controller = Controller(sink, hostname="127.0.0.1", port=port, **options)
        await asyncio.to_thread(controller.start)
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


# Servers that misbehave


@pytest.fixture
async def start_tcp() -> AsyncIterator[
    Callable[[Callable[..., Awaitable[None]]], Awaitable[int]]
]:
    """Start bare asyncio servers on loopback; all are closed at the end."""
    servers: list[asyncio.Server] = []

    async def start(handler: Callable[..., Awaitable[None]]) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port: int = server.sockets[0].getsockname()[1]
        return port

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def tarpit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and never say a word, until the client hangs up."""
    await reader.read()
    writer.close()


async def slow_smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An SMTP server that takes 0.4 s over every reply."""
    delay_secs = 0.4 * TIMING

    async def reply(line: bytes) -> None:
        await asyncio.sleep(delay_secs)
        writer.write(line)
        await writer.drain()

    try:
        await reply(b"220 slow ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA":
                await reply(b"354 go ahead\r\n")
                while (await reader.readline()) not in (b".\r\n", b""):
                    pass
                await reply(b"250 OK\r\n")
            elif verb == b"QUIT":
                await reply(b"221 bye\r\n")
                break
            else:
                await reply(b"250 OK\r\n")
    except ConnectionError:
        pass
    finally:
        writer.close()


# SMTP: delivery


async def test_smtp_send_delivers_the_exact_message(
    start_smtp: Callable[..., Awaitable[int]],
) -> None:
    sink = Sink()
    port = await start_smtp(sink)
    message = compose()

    await SmtpSender.from_url(f"smtp://127.0.0.1:{port}").send(message)

    [received] = sink.received
    assert received.mail_from == FROM
    assert received.rcpt_tos == [CARL]
    assert received.data == message.as_bytes()
    parsed = message_from_bytes(received.data, policy=policy.default)
    assert parsed["Subject"] == "New message on Invoice 1042 - Northwind Ledger Ltd"
    assert parsed["From"] == f"Tickmark <{FROM}>"
    assert parsed["To"] == f"Carl Ibsen <{CARL}>"
    assert parsed["Message-ID"] == "<outbox-1@app.example.test>"
    assert parsed["Date"] == "Sun, 10 Mar 2024 12:00:00 +0000"
    assert parsed["List-Unsubscribe"] == f"<{PUBLIC_URL}/settings/email?token=t0k>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed.get_all("Bcc") is None
    assert not received.over_tls


async def test_smtp_send_with_injected_label_reaches_only_the_recipient(
    start_smtp: Callable[..., Awaitable[int]],
) -> None:
    sink = Sink()
    port = await start_smtp(sink)
    for label in (
        "X=?UTF-8?Q?=0A?=Bcc: evil@example.test",
        "X\r\nBcc: evil@example.test",
    ):
        await SmtpSender.from_url(f"smtp://127.0.0.1:{port}").send(compose(label=label))

    assert [r.rcpt_tos for r in sink.received] == [[CARL], [CARL]]
    for received in sink.received:
        parsed = message_from_bytes(received.data, policy=policy.default)
        assert parsed.get_all("Bcc") is None
        assert len(parsed.get_all("Subject") or []) == 1


async def test_smtp_send_authenticates_with_decoded_url_credentials(
    start_smtp: Callable[..., Awaitable[int]],
) -> None:
    sink = Sink(require_auth=True)
    port = await start_smtp(
        sink, authenticator=sink.authenticate, auth_require_tls=False
    )
    user, password = quote("ana@tickmark", safe=""), quote("p@ss:w0rd/#?", safe="")
    assert (user, password) == ("ana%40tickmark", "p%40ss%3Aw0rd%2F%23%3F")
    url = f"smtp://{user}:{password}@127.0.0.1:{port}"

    await SmtpSender.from_url(url).send(compose())

    assert sink.logins == [(b"ana@tickmark", b"p@ss:w0rd/#?")]
    assert [r.rcpt_tos for r in sink.received] == [[CARL]]


async def test_smtp_send_wrong_password_is_temporary(
    start_smtp: Callable[..., Awaitable[int]],
) -> None:
    sink = Sink(require_auth=True)
    port = await start_smtp(
        sink, authenticator=sink.authenticate, auth_require_tls=False
    )
    sender = SmtpSender.from_url(f"smtp://ana%40tickmark:wrong@127.0.0.1:{port}")

    with pytest.raises(TemporaryMailError) as caught:
        await sender.send(compose())
    assert caught.value.smtp_code == 535
    assert sink.received == []


async def test_smtp_send_without_required_auth_is_temporary(
    start_smtp: Callable[..., Awaitable[int]],
) -> None:
    sink = Sink(require_auth=True)
    port = await start_smtp(
        sink, authenticator=sink.authenticate, auth_require_tls=False
    )

    with pytest.raises(TemporaryMailError) as caught:
        await SmtpSender.from_url(f"smtp://127.0.0.1:{port}").send(compose())
    assert type(caught.value) is TemporaryMailError
    assert caught.value.smtp_code == 530
    assert sink.received == []


async def test_smtp_send_over_starttls(
    start_smtp: Callable[..., Awaitable[int]],
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    sink = Sink()
    port = await start_smtp(sink, tls_context=server_tls, require_starttls=True)
    sender = SmtpSender.from_url(
        f"smtp+starttls://127.0.0.1:{port}", tls_context=client_tls
    )

    await sender.send(compose())

    [received] = sink.received
    assert received.over_tls
    assert received.rcpt_tos == [CARL]


async def test_smtp_send_over_implicit_tls(
    start_smtp: Callable[..., Awaitable[int]],
    server_tls: ssl.SSLContext,
    client_tls: ssl.SSLContext,
) -> None:
    sink = Sink()
    port = await start_smtp(sink, ssl_context=server_tls)
    sender = SmtpSender.from_url(f"smtps://127.0.0.1:{port}", tls_context=client_tls)

    await sender.send(compose())

    [received] = sink.received
    assert received.rcpt_tos == [CARL]


async def test_smtp_send_refuses_an_untrusted_certificate(
    start_smtp: Callable[..., Awaitable[int]], server_tls: ssl.SSLContext
) -> None:
    sink = Sink()
    port = await start_smtp(sink, ssl_context=server_tls)

    # No tls_context: the system's trust store, which does not know ours.
    with pytest.raises(TemporaryMailError, match="smtp connection failed"):
        await SmtpSender.from_url(f"smtps://127.0.0.1:{port}").send(compose())
    assert sink.received == []


async def test_smtp_send_starttls_to_a_server_without_it_is_temporary(
    start_smtp: Callable[..., Awaitable[int]], client_tls: ssl.SSLContext
) -> None:
    sink = Sink()
    port = await start_smtp(sink)
    sender = SmtpSender.from_url(
        f"smtp+starttls://127.0.0.1:{port}", tls_context=client_tls
    )

    with pytest.raises(TemporaryMailError, match="smtp connection failed"):
        await sender.send(compose())
    assert sink.received == []


# SMTP: refusals


async def test_smtp_send_550_on_recipient_is_permanent(
    start_smtp: Callable[..., Awaitable[int]],
) -> None:
    sink = Sink(replies={CARL: "550 5.1.1 No such user"})
    port = await start_smtp(sink)

    with pytest.raises(PermanentMailError) as caught:
        await SmtpSender.from_url(f"smtp://127.0.0.1:{port}").send(compose())
    assert caught.value.smtp_code == 550
    assert str(caught.value) == "recipient refused: 5.1.1 No such user"
    assert sink.received == []


async def test_smtp_send_450_on_recipient_is_temporary(
    start_smtp: Callable[..., Awaitable[int]],
) -> None:
    sink = Sink(replies={CARL: "450 4.2.1 Mailbox busy, try later"})
    port = await start_smtp(sink)

    with pytest.raises(TemporaryMailError) as caught:
        await SmtpSender.from_url(f"smtp://127.0.0.1:{port}").send(compose())
    assert type(caught.value) is TemporaryMailError
    assert caught.value.smtp_code == 450


@pytest.mark.parametrize(
    ("reply", "error", "code"),
    [
        ("554 5.7.1 Message rejected", PermanentMailError, 554),
        ("451 4.3.0 Local error, try later", TemporaryMailError, 451),
    ],
)
async def test_smtp_send_reply_to_data_decides_retry(
    start_smtp: Callable[..., Awaitable[int]],
    reply: str,
    error: type[Exception],
    code: int,
) -> None:
    port = await start_smtp(Sink(data_reply=reply))

    with pytest.raises(error) as caught:
        await SmtpSender.from_url(f"smtp://127.0.0.1:{port}").send(compose())
    assert type(caught.value) is error
    assert getattr(caught.value, "smtp_code", None) == code


# SMTP: time limits


async def test_smtp_send_refused_connection_is_temporary_and_fast() -> None:
    port = free_port()
    sender = SmtpSender.from_url(f"smtp://127.0.0.1:{port}?timeout={2 * TIMING}")

    started = time.monotonic()
    with pytest.raises(TemporaryMailError, match="smtp connection failed") as caught:
        await sender.send(compose())
    elapsed_secs = time.monotonic() - started

    assert type(caught.value) is TemporaryMailError
    assert caught.value.smtp_code is None
    assert elapsed_secs < 1.0 * TIMING


async def test_smtp_send_to_a_silent_server_times_out(
    start_tcp: Callable[[Callable[..., Awaitable[None]]], Awaitable[int]],
) -> None:
    port = await start_tcp(tarpit)
    timeout_secs = 1.0 * TIMING
    sender = SmtpSender.from_url(f"smtp://127.0.0.1:{port}?timeout={timeout_secs}")

    started = time.monotonic()
    with pytest.raises(MailTimeoutError) as caught:
        await sender.send(compose())
    elapsed_secs = time.monotonic() - started

    assert str(caught.value) == "the smtp server did not answer in time"
    assert timeout_secs * 0.9 <= elapsed_secs < timeout_secs + 1.0 * TIMING


async def test_smtp_send_to_a_slow_server_stops_at_the_send_budget(
    start_tcp: Callable[[Callable[..., Awaitable[None]]], Awaitable[int]],
) -> None:
    # Each reply comes in 0.4 s, well within the 1 s per wait, but the six
    # replies of a send take 2.4 s, over the 1.5 s the whole send may take.
    port = await start_tcp(slow_smtp)
    timeout_secs, send_timeout_secs = 1.0 * TIMING, 1.5 * TIMING
    sender = SmtpSender.from_url(
        f"smtp://127.0.0.1:{port}"
        f"?timeout={timeout_secs}&send_timeout={send_timeout_secs}"
    )

    started = time.monotonic()
    with pytest.raises(MailTimeoutError):
        await sender.send(compose())
    elapsed_secs = time.monotonic() - started

    assert send_timeout_secs * 0.9 <= elapsed_secs < send_timeout_secs + 0.5 * TIMING


async def test_smtp_send_to_a_slow_server_within_budget_succeeds(
    start_tcp: Callable[[Callable[..., Awaitable[None]]], Awaitable[int]],
) -> None:
    port = await start_tcp(slow_smtp)
    sender = SmtpSender.from_url(f"smtp://127.0.0.1:{port}?timeout={1.0 * TIMING}")

    await sender.send(compose())


# SMTP: what is sent where


async def test_smtp_send_refuses_a_message_with_bcc_before_connecting() -> None:
    message = compose()
    message["Bcc"] = "evil@example.test"
    # Nothing listens there: a connection attempt would fail differently.
    sender = SmtpSender.from_url(f"smtp://127.0.0.1:{free_port()}")

    with pytest.raises(PermanentMailError, match="the message has a Bcc header"):
        await sender.send(message)


@pytest.mark.parametrize(
    ("header", "value", "error"),
    [
        ("Cc", "evil@example.test", "the message has a Cc header"),
        ("Resent-To", "evil@example.test", "the message has a Resent-To header"),
    ],
)
def test_envelope_of_refuses_extra_recipients(
    header: str, value: str, error: str
) -> None:
    message = compose()
    message[header] = value
    with pytest.raises(PermanentMailError, match=error):
        envelope_of(message)


def test_envelope_of_refuses_two_addresses_in_one_to_header() -> None:
    message = compose()
    message.replace_header("To", f"{CARL}, evil@example.test")
    with pytest.raises(PermanentMailError, match="exactly one To address, has 2"):
        envelope_of(message)


def test_envelope_of_refuses_a_message_without_from() -> None:
    message = compose()
    del message["From"]
    with pytest.raises(PermanentMailError, match="exactly one From address, has 0"):
        envelope_of(message)


def test_envelope_of_gives_sender_and_recipient() -> None:
    assert envelope_of(compose()) == (FROM, CARL)


# SMTP_URL


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://127.0.0.1:2525",
            SmtpConfig(host="127.0.0.1", port=2525, security=Security.PLAIN),
        ),
        (
            "smtp://mail.example.test",
            SmtpConfig(host="mail.example.test", port=25, security=Security.PLAIN),
        ),
        (
            "smtp+starttls://ana:s3cret@mail.example.test:587",
            SmtpConfig(
                host="mail.example.test",
                port=587,
                security=Security.STARTTLS,
                username="ana",
                password="s3cret",
            ),
        ),
        (
            "smtp+starttls://ana:s3cret@mail.example.test",
            SmtpConfig(
                host="mail.example.test",
                port=587,
                security=Security.STARTTLS,
                username="ana",
                password="s3cret",
            ),
        ),
        (
            "smtps://ana%40example.test:p%40ss%3A%2F%25@mail.example.test",
            SmtpConfig(
                host="mail.example.test",
                port=465,
                security=Security.TLS,
                username="ana@example.test",
                password="p@ss:/%",
            ),
        ),
        (
            "SMTPS://[::1]:1465?timeout=2.5",
            SmtpConfig(
                host="::1",
                port=1465,
                security=Security.TLS,
                timeout_secs=2.5,
                send_timeout_secs=15.0,
            ),
        ),
        (
            "smtp://h.example.test/?timeout=10&send_timeout=30",
            SmtpConfig(
                host="h.example.test",
                port=25,
                security=Security.PLAIN,
                timeout_secs=10.0,
                send_timeout_secs=30.0,
            ),
        ),
    ],
)
def test_smtp_config_reads_the_url(url: str, expected: SmtpConfig) -> None:
    assert SmtpConfig.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://ana:s3cret@mail.example.test", "must start with smtp://"),
        ("mail.example.test:25", "must start with smtp://"),
        ("smtp://ana:s3cret@", "needs a host"),
        ("smtp://ana:s3cret@mail.example.test:99999", "invalid port"),
        ("smtp://ana:s3cret@mail.example.test:0", "port must be 1 to 65535"),
        ("smtp://ana@mail.example.test", "both a user name and a password"),
        ("smtp://:s3cret@mail.example.test", "both a user name and a password"),
        ("smtp://ana:s3cret@mail.example.test/inbox", "no path"),
        ("smtp://ana:s3cret@mail.example.test?timeout=soon", "a number of seconds"),
        ("smtp://ana:s3cret@mail.example.test?timeout=0", "above 0"),
        ("smtp://ana:s3cret@mail.example.test?timeout=-1", "above 0"),
        ("smtp://ana:s3cret@mail.example.test?timeout=nan", "above 0"),
        ("smtp://ana:s3cret@mail.example.test?send_timeout=9999", "at most 3600"),
        ("smtp://ana:s3cret@mail.example.test?verify=no", "unknown options: verify"),
    ],
)
def test_smtp_config_refuses_bad_urls_without_showing_the_password(
    url: str, error: str
) -> None:
    with pytest.raises(ValueError, match=error) as caught:
        SmtpConfig.from_url(url)
    assert "s3cret" not in str(caught.value)


def test_smtp_config_repr_hides_the_password() -> None:
    config = SmtpConfig.from_url("smtps://ana:s3cret@mail.example.test")
    assert "s3cret" not in repr(config)
    assert config.password == "s3cret"


def test_sender_from_url_picks_smtp_when_a_url_is_set(tmp_path: Path) -> None:
    sender = sender_from_url("smtps://ana:s3cret@mail.example.test", tmp_path)
    assert isinstance(sender, SmtpSender)
    assert sender.config.security is Security.TLS


@pytest.mark.parametrize("url", [None, ""])
def test_sender_from_url_picks_the_mailbox_without_a_url(
    url: str | None, tmp_path: Path
) -> None:
    sender = sender_from_url(url, tmp_path)
    assert isinstance(sender, MailboxSender)
    assert sender.directory == tmp_path / "mailbox"


# Mailbox


def files_in(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden temporary files included."""
    return sorted(path.name for path in folder.iterdir())


async def test_mailbox_stores_the_message_as_an_eml_file(tmp_path: Path) -> None:
    mailbox = MailboxSender(tmp_path / "mailbox")
    message = compose()

    await mailbox.send(message)

    mail_id = MailboxSender.mail_id("<outbox-1@app.example.test>")
    assert files_in(tmp_path / "mailbox") == [f"{mail_id}.eml"]
    path = tmp_path / "mailbox" / f"{mail_id}.eml"
    assert path.read_bytes() == message.as_bytes()
    assert path.read_bytes().count(b"\r\n") == path.read_bytes().count(b"\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "mailbox").stat().st_mode) & 0o077 == 0


async def test_mailbox_resend_of_the_same_message_overwrites(tmp_path: Path) -> None:
    mailbox = MailboxSender(tmp_path)
    await mailbox.send(compose(label="Invoice 1042"))
    await mailbox.send(compose(label="Invoice 1042 (corrected)"))

    mails = await mailbox.list_mails()
    assert [mail.subject for mail in mails] == [
        "New message on Invoice 1042 (corrected) - Northwind Ledger Ltd"
    ]
    assert len(files_in(tmp_path)) == 1


async def test_mailbox_lists_newest_first(tmp_path: Path) -> None:
    mailbox = MailboxSender(tmp_path)
    for n in (1, 2, 3):
        await mailbox.send(
            compose(
                message_id=f"<outbox-{n}@app.example.test>",
                label=f"Invoice 104{n}",
                sent_at=SENT_AT + dt.timedelta(minutes=n),
            )
        )

    mails = await mailbox.list_mails()

    assert mails == [
        StoredMail(
            id=MailboxSender.mail_id(f"<outbox-{n}@app.example.test>"),
            to=f"Carl Ibsen <{CARL}>",
            subject=f"New message on Invoice 104{n} - Northwind Ledger Ltd",
            date=SENT_AT + dt.timedelta(minutes=n),
        )
        for n in (3, 2, 1)
    ]
    assert [mail.subject[15:27] for mail in await mailbox.list_mails(limit=2)] == [
        "Invoice 1043",
        "Invoice 1042",
    ]


async def test_mailbox_reads_a_mail_back(tmp_path: Path) -> None:
    mailbox = MailboxSender(tmp_path)
    await mailbox.send(compose())
    [listed] = await mailbox.list_mails()

    mail = await mailbox.read_mail(listed.id)

    assert mail is not None
    assert mail["Subject"] == "New message on Invoice 1042 - Northwind Ledger Ltd"
    text = mail.get_body(("plain",))
    assert text is not None
    assert "Is this the March lease?" in text.get_content()


@pytest.mark.parametrize(
    "mail_id",
    [
        "0" * 32,
        "../../etc/passwd",
        "..",
        "",
        "A" * 32,
        MailboxSender.mail_id("<outbox-1@app.example.test>") + ".eml",
    ],
)
async def test_mailbox_read_of_an_unknown_id_gives_none(
    tmp_path: Path, mail_id: str
) -> None:
    mailbox = MailboxSender(tmp_path)
    await mailbox.send(compose())
    assert await mailbox.read_mail(mail_id) is None


async def test_mailbox_keeps_only_the_newest_mails(tmp_path: Path) -> None:
    mailbox = MailboxSender(tmp_path, max_mails=2)
    for n in (1, 2, 3):
        await mailbox.send(compose(message_id=f"<outbox-{n}@app.example.test>"))

    mails = await mailbox.list_mails()
    assert [mail.id for mail in mails] == [
        MailboxSender.mail_id("<outbox-3@app.example.test>"),
        MailboxSender.mail_id("<outbox-2@app.example.test>"),
    ]
    assert len(files_in(tmp_path)) == 2


async def test_mailbox_that_does_not_exist_yet_lists_nothing(tmp_path: Path) -> None:
    mailbox = MailboxSender(tmp_path / "mailbox")
    assert await mailbox.list_mails() == []
    assert await mailbox.read_mail("0" * 32) is None


async def test_mailbox_refuses_a_message_without_message_id(tmp_path: Path) -> None:
    mailbox = MailboxSender(tmp_path)
    message = compose()
    del message["Message-ID"]

    with pytest.raises(PermanentMailError, match="no Message-ID"):
        await mailbox.send(message)
    assert files_in(tmp_path) == []


async def test_mailbox_refuses_a_message_with_bcc(tmp_path: Path) -> None:
    mailbox = MailboxSender(tmp_path)
    message = compose()
    message["Bcc"] = "evil@example.test"

    with pytest.raises(PermanentMailError, match="Bcc"):
        await mailbox.send(message)
    assert files_in(tmp_path) == []


async def test_mailbox_write_failure_is_temporary(tmp_path: Path) -> None:
    # A file where the folder should be: mkdir fails as a full disk would.
    (tmp_path / "mailbox").write_text("not a folder")
    mailbox = MailboxSender(tmp_path / "mailbox")

    with pytest.raises(TemporaryMailError, match="cannot write to the mailbox"):
        await mailbox.send(compose())


def test_mailbox_refuses_a_limit_below_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_mails must be at least 1, got 0"):
        MailboxSender(tmp_path, max_mails=0)
