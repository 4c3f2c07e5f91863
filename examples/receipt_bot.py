"""A bot for accounting firms: answers "I'll send the receipt" with how to.

When a client's message on a transaction mentions a receipt, an invoice
copy or an attachment, the bot replies once in that conversation with the
firm's upload instructions, addressed to the client. It follows every
company its token reaches, and keeps its place in a small state file, so a
restart (hours or days later) neither misses messages nor answers twice.

Run it with a token made for a bot (see the README's "Bots" section)::

    TICKMARK_URL=http://127.0.0.1:8000 TICKMARK_TOKEN=tmk_... \\
        python examples/receipt_bot.py --state receipt-bot.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import httpx

from tickmark_client import Client


logger = logging.getLogger("receipt_bot")

# Words that mean "there is a document to send us", in the forms clients
# write them; matched as whole words, in any case.
MENTIONS = re.compile(
    r"\b(receipts?|invoice copy|copy of the invoice|attach(ed|ment|ments)?|"
    r"scan(ned)?|photo of)\b",
    re.IGNORECASE,
)

INSTRUCTIONS = (
    "Thanks! To send us the receipt, upload it in your client portal under "
    "Documents > Receipts, named after this transaction, or photograph it with "
    "the mobile app's Scan button. Files attached to emails do not reach this "
    "thread. We will match it to the transaction and confirm here."
)


class State:
    """Positions per channel and conversations already answered, on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data: dict[str, Any] = {}
        if path.exists():
            data = json.loads(path.read_text())
        self.positions: dict[str, int] = data.get("positions", {})
        self.answered: set[str] = set(data.get("answered", []))

    def save(self, positions: dict[str, int]) -> None:
        self.positions = dict(positions)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(
            json.dumps({"positions": self.positions, "answered": sorted(self.answered)})
        )
        temporary.replace(self.path)


def wants_instructions(message: dict[str, Any]) -> bool:
    author = message.get("author") or {}
    return author.get("role") == "client" and bool(MENTIONS.search(message["body"]))


async def run(url: str, token: str, state: State) -> None:
    """Follow every company the token reaches and answer, forever."""
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}
    ) as http:
        companies = (await http.get("/api/companies")).json()["companies"]
    async with Client(url, token, positions=state.positions) as client:
        for company in companies:
            channel = f"company:{company['id']}"
            # A new company is followed from its start: nothing is missed.
            await client.subscribe(channel, since=state.positions.get(channel, 0))
        async for delivery in client.messages():
            message = delivery.message
            conversation = message["conversation_id"]
            if wants_instructions(message) and conversation not in state.answered:
                await client.post(
                    message["transaction_id"],
                    INSTRUCTIONS,
                    [message["author"]["id"]],
                    # Derived from the message, so a retry after a crash is
                    # recognised by the server and stored once.
                    idempotency_key=f"receipt-bot-{message['id']}",
                )
                state.answered.add(conversation)
                logger.info("answered", extra={"conversation_id": conversation})
            state.save(client.positions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state", type=Path, default=Path("receipt-bot.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(
        run(
            os.environ.get("TICKMARK_URL", "http://127.0.0.1:8000"),
            os.environ["TICKMARK_TOKEN"],
            State(args.state),
        )
    )


if __name__ == "__main__":
    main()
