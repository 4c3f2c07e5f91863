"""Sends queued webhook deliveries, retrying with backoff until they land."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random

import httpx

from server.clock import Clock
from server.codec import dumps
from server.store import messages
from server.store import webhooks as store
from server.store.database import Database
from server.web.views import message_json
from server.webhooks.signing import SIGNATURE_HEADER, sign
from server.webhooks.targets import TargetRefused, resolve


__all__ = ["MAX_ATTEMPTS", "WebhookDispatcher", "retry_delay_secs"]

logger = logging.getLogger(__name__)

#: Attempts before a delivery is given up: with the delays below, about a
#: day of trying, long enough to outlast a receiver's bad night.
MAX_ATTEMPTS = 16
# Backoff: 5 s after the first failure, doubling, at most an hour.
_RETRY_BASE_SECS = 5.0
_RETRY_MAX_SECS = 3600.0
# A claimed delivery is retried after this if its dispatcher died.
_LEASE = dt.timedelta(seconds=120)
_USER_AGENT = "Tickmark-Webhooks/1"


def retry_delay_secs(attempts: int) -> float:
    """The wait after the given number of failed attempts, with jitter."""
    delay: float = min(_RETRY_BASE_SECS * 2.0 ** (attempts - 1), _RETRY_MAX_SECS)
    # Jitter keeps a recovering receiver from being hit by every retry at once.
    return delay * random.uniform(0.8, 1.2)


class WebhookDispatcher:
    """Claims due deliveries and POSTs them, several processes at once if need be.

    Args:
        db: the database.
        clock: the time source.
        allow_private: send to private and loopback addresses too (for
            receivers inside the operator's network, and for tests).
        timeout_secs: limit on one delivery, connecting included.
        poll_secs: how often to look for due deliveries when idle.
        batch_size: deliveries claimed and sent at once.

    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        allow_private: bool,
        timeout_secs: float = 10.0,
        poll_secs: float = 1.0,
        batch_size: int = 20,
    ) -> None:
        if timeout_secs <= 0 or poll_secs <= 0 or batch_size < 1:
            raise ValueError("timeout_secs, poll_secs and batch_size must be positive")
        self.db = db
        self.clock = clock
        self.allow_private = allow_private
        self.timeout_secs = timeout_secs
        self.poll_secs = poll_secs
        self.batch_size = batch_size
        # Redirects are not followed: a receiver could otherwise send us on
        # to an address the checks would have refused.
        self._http = httpx.AsyncClient(
            timeout=timeout_secs,
            follow_redirects=False,
            headers={"User-Agent": _USER_AGENT},
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def run(self, stop: asyncio.Event) -> None:
        """Send deliveries until ``stop`` is set; errors are logged, not fatal."""
        while not stop.is_set():
            try:
                sent = await self.run_once()
            except Exception:
                logger.exception("webhook dispatch failed; will retry")
                sent = 0
            if sent == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_secs)

    async def run_once(self) -> int:
        """Claim and send one batch; returns how many were claimed."""
        async with self.db.transaction() as conn:
            claimed = await store.claim_due(
                conn, self.clock.now(), _LEASE, self.batch_size
            )
        await asyncio.gather(*(self._send(c) for c in claimed))
        return len(claimed)

    async def _send(self, claimed: store.Claimed) -> None:
        delivery, webhook = claimed.delivery, claimed.webhook
        async with self.db.connection() as conn:
            message = await messages.by_id(conn, delivery.message_id)
        if message is None:
            return  # gone with its company; the row went with it
        body = dumps(
            {
                "event": "message.created",
                "delivery_id": delivery.id,
                "webhook_id": webhook.id,
                "company_id": webhook.company_id,
                "message": message_json(message),
            }
        )
        timestamp = int(self.clock.now().timestamp())
        status: int | None = None
        try:
            target = await resolve(webhook.url, allow_private=self.allow_private)
            response = await self._http.post(
                target.url,
                content=body,
                headers={
                    "Host": _host_header(webhook.url, target.host),
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: sign(webhook.secret, timestamp, body),
                    "Tickmark-Delivery": str(delivery.id),
                    "Tickmark-Event": "message.created",
                },
                extensions={"sni_hostname": target.host},
            )
            status = response.status_code
            if 200 <= status < 300:
                async with self.db.connection() as conn:
                    await store.mark_delivered(
                        conn, delivery.id, status, self.clock.now()
                    )
                return
            error = f"HTTP {status}"
            permanent = status == 410  # Gone: the receiver says stop
        except TargetRefused as exc:
            error, permanent = str(exc), False
        except httpx.HTTPError as exc:
            error, permanent = f"{type(exc).__name__}: {exc}", False
        await self._failed(delivery, status, error, permanent=permanent)

    async def _failed(
        self,
        delivery: store.Delivery,
        status: int | None,
        error: str,
        *,
        permanent: bool,
    ) -> None:
        async with self.db.connection() as conn:
            if permanent or delivery.attempts >= MAX_ATTEMPTS:
                await store.mark_failed(conn, delivery.id, status, error)
                logger.warning(
                    "webhook delivery failed for good",
                    extra={"delivery_id": str(delivery.id), "error": error},
                )
                return
            at = self.clock.now() + dt.timedelta(
                seconds=retry_delay_secs(delivery.attempts)
            )
            await store.schedule_retry(conn, delivery.id, at, status, error)
        logger.info(
            "webhook delivery will be retried",
            extra={"delivery_id": str(delivery.id), "error": error},
        )


def _host_header(url: str, host: str) -> str:
    port = httpx.URL(url).port
    return host if port is None else f"{host}:{port}"
