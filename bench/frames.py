"""The frames the generator writes and reads, and the probe in each message.

Every message the generator posts carries a *probe* as its body: the send
time in nanoseconds since the epoch and the ladder step, as JSON text,
``{"t":1764867600123456789,"s":3}``. Tickmark stores the body verbatim and
delivers it inside its ``message`` frame, JSON-escaped; the reference
server relays a frame the generator built in the very same shape. So one
parser reads deliveries from both, and the two carry frames of the same
size.

The parser is a regular expression over the raw bytes rather than
``json.loads``: at tens of thousands of deliveries per second on one core
the generator's own cost per message is what limits the measurement.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, NamedTuple


__all__ = [
    "Delivery",
    "ReferenceFrame",
    "build_post",
    "parse_ack",
    "parse_delivery",
    "probe_body",
]

_MESSAGE_PREFIX = b'{"type":"message"'
# Tickmark writes the frame's keys in this order (server/live/protocol.py
# and server/web/views.py): channel, then the message's id ... seq ... body.
_MESSAGE = re.compile(
    rb'"channel":"([^"]+)","message":\{"id":"([^"]+)".*?,"seq":(\d+),'
    rb'.*?"body":"\{\\"t\\":(\d+),\\"s\\":(\d+)\}"',
    re.DOTALL,
)
_ACK = re.compile(rb'^\{"type":"ack","id":"p(\d+)".*?,"seq":(\d+),', re.DOTALL)


class Delivery(NamedTuple):
    """What the generator needs from one delivered message."""

    channel: bytes
    message_id: bytes
    seq: int
    sent_ns: int
    step: int


def parse_delivery(data: bytes) -> Delivery | None:
    """Read a ``message`` frame; None for any other frame or foreign body."""
    if not data.startswith(_MESSAGE_PREFIX):
        return None
    found = _MESSAGE.search(data)
    if found is None:
        return None
    channel, message_id, seq, sent_ns, step = found.groups()
    return Delivery(channel, message_id, int(seq), int(sent_ns), int(step))


def probe_body(sent_ns: int, step: int) -> str:
    """The body of a posted message: its send time and ladder step."""
    return f'{{"t":{sent_ns},"s":{step}}}'


def build_post(
    number: int,
    transaction_id: str,
    recipients: list[str],
    body: str,
    idempotency_key: str,
) -> bytes:
    """A Tickmark ``post`` frame; its id is ``p<number>``."""
    return json.dumps(
        {
            "type": "post",
            "id": f"p{number}",
            "transaction_id": transaction_id,
            "body": body,
            "recipients": recipients,
            "idempotency_key": idempotency_key,
        },
        separators=(",", ":"),
    ).encode()


def parse_ack(data: bytes) -> tuple[int, int] | None:
    """The post number and the message's seq from an ``ack``; else None."""
    found = _ACK.match(data)
    if found is None:
        return None
    return int(found.group(1)), int(found.group(2))


class ReferenceFrame:
    """Builds frames for the reference server shaped like Tickmark's.

    The fields hold fixed ids of the same length as Tickmark's, so the
    reference writes as many bytes per delivery as Tickmark does.
    """

    def __init__(self) -> None:
        ids = [str(uuid.uuid4()) for _ in range(6)]
        self._company, self._conversation, self._author, self._recipient = ids[:4]

    def build(self, channel: str, seq: int, body: str) -> str:
        message: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "company_id": self._company,
            "transaction_id": channel.removeprefix("transaction:"),
            "conversation_id": self._conversation,
            "seq": seq,
            "company_seq": seq,
            "kind": "message",
            "author": {"id": self._author, "name": "Poster 01", "role": "accountant"},
            "recipients": [{"id": self._recipient, "name": "Away 01"}],
            "body": body,
            "created_at": "2026-12-04T12:00:00.000Z",
        }
        return json.dumps(
            {"type": "message", "channel": channel, "message": message},
            separators=(",", ":"),
            ensure_ascii=False,
        )
