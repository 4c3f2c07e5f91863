"""A Python client for Tickmark: subscribe, resume, post, iterate messages.

.. code-block:: python

    from tickmark_client import Client

    async with Client("https://tickmark.example", token) as client:
        await client.subscribe(f"company:{company_id}", since=saved_position)
        async for delivery in client.messages():
            print(delivery.channel, delivery.position, delivery.message["body"])

See docs/protocol.md for the protocol underneath, and examples/ for a bot.
"""

from tickmark_client.client import (
    AuthenticationError,
    Client,
    ClientError,
    Delivery,
    PostRefused,
)


__all__ = ["AuthenticationError", "Client", "ClientError", "Delivery", "PostRefused"]
