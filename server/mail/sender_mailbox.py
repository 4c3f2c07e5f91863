"""Keeping mail on disk, for running Tickmark on one machine with no SMTP.

Each mail becomes one ``.eml`` file (RFC 5322 text with CRLF line ends,
which mail programs open directly) in the mailbox folder. The file name is
a hash of the Message-ID, so sending the same message again replaces the
file instead of adding a second one, and a name read from a URL can only
ever point inside the folder.

Writes are atomic: a reader sees the old file or the new one, never half of
one. The folder keeps at most ``max_mails`` files and deletes the oldest
beyond that, so a long-running demo cannot fill the disk.

:meth:`MailboxSender.list_mails` and :meth:`MailboxSender.read_mail` serve
a "local mailbox" page. The mails hold people's names and messages: the
folder and its files are readable by the server's user only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import os
import re
import tempfile
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path

from server.mail.sender import PermanentMailError, TemporaryMailError, envelope_of


__all__ = ["DEFAULT_MAX_MAILS", "MailboxSender", "StoredMail"]

logger = logging.getLogger(__name__)

#: Mails kept before the oldest are deleted: a few days of a busy demo, and
#: a folder small enough to list on every page view.
DEFAULT_MAX_MAILS = 1000

# Mail ids: the first 32 hex digits (128 bits) of the Message-ID's SHA-256.
_MAIL_ID = re.compile(r"[0-9a-f]{32}")
_SUFFIX = ".eml"


@dataclasses.dataclass(frozen=True, slots=True)
class StoredMail:
    """One mail in the mailbox, as a list shows it."""

    # Stable for a Message-ID; what read_mail() takes.
    id: str
    # The To header, decoded: "Carl Ibsen <carl.ibsen@example.test>".
    to: str
    subject: str
    # The Date header; None when missing or unreadable.
    date: dt.datetime | None


class MailboxSender:
    """A :class:`~server.mail.sender.MailSender` that writes ``.eml`` files."""

    def __init__(self, directory: Path, *, max_mails: int = DEFAULT_MAX_MAILS) -> None:
        """Keep mail in ``directory``, made on the first send.

        Raises:
            ValueError: ``max_mails`` is less than 1.

        """
        if max_mails < 1:
            raise ValueError(f"max_mails must be at least 1, got {max_mails}")
        self._directory = directory
        self._max_mails = max_mails

    @property
    def directory(self) -> Path:
        """The mailbox folder."""
        return self._directory

    @staticmethod
    def mail_id(message_id: str) -> str:
        """The id, and file name stem, of the mail with ``message_id``."""
        return hashlib.sha256(message_id.strip().encode("utf-8")).hexdigest()[:32]

    async def send(self, message: EmailMessage) -> None:
        """Store ``message``, replacing any earlier mail with its Message-ID.

        Raises:
            PermanentMailError: no Message-ID, or not exactly one sender and
                one recipient.
            TemporaryMailError: the file could not be written (disk full,
                permissions).

        """
        envelope_of(message)
        message_id = message["Message-ID"]
        if not message_id or not str(message_id).strip():
            raise PermanentMailError("the message has no Message-ID")
        mail_id = self.mail_id(str(message_id))
        raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
        try:
            await asyncio.to_thread(self._store, mail_id, raw)
        except OSError as exc:
            raise TemporaryMailError(f"cannot write to the mailbox: {exc}") from exc
        logger.debug("mail stored", extra={"mail_id": mail_id})

    async def list_mails(self, limit: int = 100) -> list[StoredMail]:
        """The newest ``limit`` mails, newest first.

        A mail sent again counts as new. An empty or missing folder gives
        an empty list.
        """
        return await asyncio.to_thread(self._list, limit)

    async def read_mail(self, mail_id: str) -> EmailMessage | None:
        """The whole mail with ``mail_id``, or None if there is none.

        ``mail_id`` may come straight from a URL: anything that is not the
        shape of an id gives None without touching the disk.
        """
        if not _MAIL_ID.fullmatch(mail_id):
            return None
        return await asyncio.to_thread(self._read, mail_id)

    # Blocking file work, run in a thread

    def _store(self, mail_id: str, raw: bytes) -> None:
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Write beside the target and rename over it (atomic on POSIX); the
        # leading dot keeps the half-written file out of listings.
        fd, temp = tempfile.mkstemp(dir=self._directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(raw)
                file.flush()
                os.fsync(file.fileno())
            # File times tick in jiffies on Linux; set one from the precise
            # clock so two mails sent in a row list in the order sent.
            now_ns = time.time_ns()
            os.utime(temp, ns=(now_ns, now_ns))
            os.replace(temp, self._directory / f"{mail_id}{_SUFFIX}")
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self._prune()

    def _prune(self) -> None:
        stored = self._stored()
        for _, path in stored[self._max_mails :]:
            # Another process may have pruned it first.
            path.unlink(missing_ok=True)

    def _stored(self) -> list[tuple[int, Path]]:
        """Every mail file with its time, newest first."""
        found = []
        try:
            with os.scandir(self._directory) as scan:
                entries = list(scan)
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith(".") or not entry.name.endswith(_SUFFIX):
                continue
            try:
                found.append((entry.stat().st_mtime_ns, Path(entry.path)))
            except FileNotFoundError:
                continue
        found.sort(key=lambda item: (item[0], item[1].name), reverse=True)
        return found

    def _list(self, limit: int) -> list[StoredMail]:
        mails = []
        parser = BytesHeaderParser(policy=policy.default)
        for _, path in self._stored()[: max(limit, 0)]:
            try:
                headers = parser.parsebytes(path.read_bytes())
            except FileNotFoundError:
                continue
            mails.append(
                StoredMail(
                    id=path.stem,
                    to=str(headers["To"] or ""),
                    subject=str(headers["Subject"] or ""),
                    date=_date(headers),
                )
            )
        return mails

    def _read(self, mail_id: str) -> EmailMessage | None:
        try:
            raw = (self._directory / f"{mail_id}{_SUFFIX}").read_bytes()
        except FileNotFoundError:
            return None
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        return message


def _date(headers: EmailMessage) -> dt.datetime | None:
    try:
        header = headers["Date"]
    except (TypeError, ValueError):
        # The email package parses headers when they are read, and raises
        # on a date it cannot make sense of.
        return None
    value = getattr(header, "datetime", None)
    return value if isinstance(value, dt.datetime) else None
