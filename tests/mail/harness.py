"""What the email fallback tests run: an SMTP sink and worker processes.

The sink is aiosmtpd on loopback, in a thread of its own; it keeps every
mail it takes and can hold its answer to DATA so that a test can kill a
worker while it waits. Workers are real ``python -m server worker``
processes on the test database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from server.store.database import Database
from tests.servers import PUBLIC_URL, free_port
from tests.timing import secs


REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None
        content: str = body.get_content()
        return content.replace("\r\n", "\n")


class Sink:
    """An aiosmtpd handler that keeps every mail.

    With ``hold_first``, the answer to the first DATA waits until
    ``release`` is set (or ``hold_secs`` pass); ``holding`` is set once
    that mail has arrived.
    """

    def __init__(self, *, hold_first: bool = False, hold_secs: float = 30.0) -> None:
        self.hold_first = hold_first
        self.hold_secs = hold_secs
        self.holding = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._received: list[Received] = []

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self._received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=envelope.original_content,
                )
            )
            hold = self.hold_first and not self.holding.is_set()
            if hold:
                self.holding.set()
        if hold:
            # The test sets release from its own thread.
            await asyncio.to_thread(self.release.wait, self.hold_secs)
        return "250 OK"


class SmtpSink:
    """A running aiosmtpd on a loopback port; start and stop it at will."""

    def __init__(self, sink: Sink, port: int | None = None) -> None:
        self.sink = sink
        self.port = port if port is not None else free_port()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        # Short waits, so a test that kills a worker need not wait long.
        return f"smtp://127.0.0.1:{self.port}?timeout={secs(10):g}"

    async def start(self) -> None:
        controller = Controller(self.sink, hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(controller.start)
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class WorkerProcess:
    """``python -m server worker`` on the test database.

    Its log goes to a file, read back by :meth:`log`.
    """

    def __init__(
        self, database_url: str, smtp_url: str, log_path: Path, **env: str
    ) -> None:
        self.log_path = log_path
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TICKMARK_", "SMTP_", "MAIL_", "EMAIL_", "REPLY_"))
        } | {
            "DATABASE_URL": database_url,
            "SMTP_URL": smtp_url,
            "PUBLIC_URL": PUBLIC_URL,
            "SECRET_KEY": "test-secret",
            "TICKMARK_DATA_DIR": str(log_path.parent / "data"),
            "EMAIL_DELAY_SECS": "1",
            "MAIL_POLL_SECS": "0.1",
            "MAIL_RETRY_BASE_SECS": "0.2",
            "MAIL_RETRY_MAX_SECS": "1",
            "LOG_LEVEL": "DEBUG",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "server", "worker"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=log,
            )

    def kill(self) -> None:
        """SIGKILL: no chance to finish or clean up."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)
        self.process = None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not stop in time."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(secs(10))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def until(
    check: Callable[[], Awaitable[bool]], *, within_secs: float, step_secs: float = 0.05
) -> None:
    """Wait until ``await check()`` is true; fail after ``within_secs`` (scaled)."""
    deadline = time.monotonic() + secs(within_secs)
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {secs(within_secs):.1f} s")
        await asyncio.sleep(step_secs)


async def outbox_rows(db: Database) -> list[tuple[str, str | None]]:
    """(state, skip_reason) of every outbox row, in a stable order."""
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT state, skip_reason FROM mail_outbox ORDER BY due_at, message_id"
        )
    return [(r["state"], r["skip_reason"]) for r in rows]


async def batch_states(db: Database) -> list[str]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT state FROM mail_batches ORDER BY created_at")
    return [r["state"] for r in rows]


async def settled(db: Database) -> bool:
    """Nothing pending and no email waiting to be sent."""
    async with db.connection() as conn:
        busy = await conn.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM mail_outbox WHERE state = 'pending')
                OR EXISTS (SELECT 1 FROM mail_batches WHERE state = 'ready')
            """
        )
    return not busy
