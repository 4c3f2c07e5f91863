"""Commands between the orchestrator and its worker processes.

Each command and each answer is one JSON object, sent as a 4-byte
big-endian length and the UTF-8 text. Workers read commands on standard
input and answer on standard output, one answer per command, in order.
Arrays of numbers (latencies) travel as base64 of their machine bytes,
which keeps a step's 300,000 samples to about 2 MB.
"""

from __future__ import annotations

import array
import asyncio
import base64
import json
from typing import Any


__all__ = ["pack_array", "read_message", "unpack_array", "write_message"]

Message = dict[str, Any]


async def read_message(reader: asyncio.StreamReader) -> Message:
    """Read one message.

    Raises:
        asyncio.IncompleteReadError: the other side closed the pipe.

    """
    head = await reader.readexactly(4)
    body = await reader.readexactly(int.from_bytes(head, "big"))
    message: Message = json.loads(body)
    return message


def encode_message(message: Message) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return len(body).to_bytes(4, "big") + body


async def write_message(writer: asyncio.StreamWriter, message: Message) -> None:
    """Write one message and wait until the pipe took it."""
    writer.write(encode_message(message))
    await writer.drain()


def pack_array(values: array.array[int]) -> str:
    """Encode an array of integers (typecode ``q``) for a message."""
    return base64.b64encode(values.tobytes()).decode()


def unpack_array(text: str) -> array.array[int]:
    """Decode what :func:`pack_array` made."""
    values = array.array("q")
    values.frombytes(base64.b64decode(text))
    return values
