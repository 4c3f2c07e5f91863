"""Our SMTP endpoint for replies by email (``tickmark reply-server``).

It is meant to sit behind the MTA that receives mail for REPLY_DOMAIN,
which relays ``reply+<token>@REPLY_DOMAIN`` here; it takes no other
address. A reply is refused at RCPT when the address is not a reply
address, and at the end of DATA (so the sender's MTA bounces it back to
them with the reason) when it cannot be posted. Automatic replies
(RFC 3834 Auto-Submitted, vacation responders) are taken and dropped, so
that they neither post nor bounce back and forth.

Every reply is posted through :func:`server.core.email_replies.post_reply`
with an idempotency key made from its Message-ID, so an MTA that delivers
it twice makes one post.

Known limitation: there is no rate limit here; the MTA in front of this
server is where a flood of replies is slowed down.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from email import policy
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.smtp import SMTP

from server.core import email_replies
from server.core.services import Services
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, Unavailable
from server.mail.reply_text import reply_body


__all__ = ["MAX_REPLY_BYTES", "ReplyHandler", "start_reply_server"]

logger = logging.getLogger(__name__)

#: Largest reply taken, in bytes. Only the text is kept, but phones attach
#: signature images and quote whole threads; 10 MiB takes those and still
#: bounds what one connection can make us parse.
MAX_REPLY_BYTES = 10 * 1024 * 1024

# RFC 3834 section 5 and the headers common responders set instead.
_AUTOMATIC_PRECEDENCE = frozenset(("bulk", "junk", "list", "auto_reply"))
_AUTOMATIC_HEADERS = ("x-autoreply", "x-autorespond")

_LOCAL_PART = re.compile(r"reply\+([A-Za-z0-9]+)", re.IGNORECASE)

# SMTP replies. 5xx ends the attempt; 4xx asks the MTA to try again later
# (RFC 5321 section 4.2.1).
_OK = "250 2.0.0 OK"
_NO_SUCH_ADDRESS = "550 5.1.1 No such reply address"
_ONE_ADDRESS = "452 4.5.3 One reply address per message"
_REFUSED = "550 5.7.1 This address does not take replies from you"
_GONE = "550 5.1.1 This conversation is no longer open to you"
_EMPTY = "550 5.6.0 The reply has no text of its own"
_LATER = "451 4.3.0 Try again later"


class ReplyHandler:
    """An aiosmtpd handler that posts replies into conversations.

    Args:
        services: what posting needs (database, clock, live events).
        secret_key: checks the reply tokens.
        reply_domain: the only domain taken in RCPT.

    """

    def __init__(
        self, services: Services, *, secret_key: str, reply_domain: str
    ) -> None:
        self._services = services
        self._secret_key = secret_key
        self._domain = reply_domain.lower()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if _token_of(address, self._domain) is None:
            return _NO_SUCH_ADDRESS
        if envelope.rcpt_tos:
            return _ONE_ADDRESS
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        token = _token_of(envelope.rcpt_tos[0], self._domain)
        assert token is not None, "checked at RCPT"

        if _is_automatic(message):
            logger.info("automatic reply dropped")
            return _OK
        sender = _one_sender(message)
        if sender is None:
            return _REFUSED
        body = reply_body(message)
        if not body:
            return _EMPTY
        message_id = str(message.get("Message-ID", "")).strip()
        source_id = message_id or "sha256:" + hashlib.sha256(raw).hexdigest()

        try:
            await email_replies.post_reply(
                self._services,
                secret_key=self._secret_key,
                sender=sender,
                token=token,
                body=body,
                source_id=source_id,
            )
        except Forbidden:
            return _REFUSED
        except NotFound:
            return _GONE
        except Conflict:
            # The same Message-ID with another text: the first one stands.
            return _OK
        except InvalidInput as exc:
            return f"550 5.6.0 {_one_line(exc.message)}"
        except Unavailable:
            return _LATER
        except Exception:
            logger.exception("reply by email crashed")
            return _LATER
        return _OK


async def start_reply_server(
    handler: ReplyHandler, host: str, port: int
) -> asyncio.Server:
    """Listen for SMTP on ``host:port``, in the running event loop.

    Not aiosmtpd's Controller: it runs its own loop in a thread, and the
    handler must use the database pool of this one.
    """

    def protocol() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=MAX_REPLY_BYTES,
            enable_SMTPUTF8=True,
            # The name in our greeting, rather than the machine's.
            hostname="tickmark-reply",
        )

    loop = asyncio.get_running_loop()
    return await loop.create_server(protocol, host=host, port=port)


def _token_of(address: str, domain: str) -> str | None:
    local, at, address_domain = address.rpartition("@")
    if not at or address_domain.lower() != domain:
        return None
    match = _LOCAL_PART.fullmatch(local)
    return None if match is None else match.group(1)


def _is_automatic(message: EmailMessage) -> bool:
    submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    if submitted != "no":
        return True
    precedence = str(message.get("Precedence", "")).strip().lower()
    if precedence in _AUTOMATIC_PRECEDENCE:
        return True
    return any(name in message for name in _AUTOMATIC_HEADERS)


def _one_sender(message: EmailMessage) -> str | None:
    """The From address, when there is exactly one."""
    try:
        header = message["From"]
    except (TypeError, ValueError):
        return None
    if not isinstance(header, AddressHeader) or len(header.addresses) != 1:
        return None
    address = header.addresses[0].addr_spec
    return address or None


def _one_line(text: str) -> str:
    """Text safe in an SMTP reply line: printable ASCII, one line."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:200]
