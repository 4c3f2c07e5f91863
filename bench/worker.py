"""A generator process: many client connections on one event loop.

The orchestrator starts several of these (``python -m bench.worker``),
pinned to the generator's core, and drives them with the commands of
:mod:`bench.control`. A worker holds subscriber connections, or the
poster connections that publish (see :mod:`bench.publisher`), never
both, so that the publisher's timing is not held up by deliveries.

Every command is bounded: connections are opened with a cap on those in
flight and a timeout each, and every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import random
import resource
import sys
import time
from collections import defaultdict
from typing import Any

from bench.control import Message, pack_array, read_message, write_message
from bench.frames import parse_delivery
from bench.publisher import Publisher
from bench.streams import Arrival, Stream, Tally
from bench.wsclient import HandshakeError, WsClient, open_ws


__all__ = ["main"]

logger = logging.getLogger("bench.worker")

# Error codes that refuse a subscription for now, not for good.
_RETRYABLE = frozenset({"unavailable", "rate_limited"})
# Retries of refused subscriptions per connection attempt.
_MAX_SUBSCRIBE_RETRIES = 10


class Client:
    """One subscriber connection and the channels it follows.

    Args:
        client_id: the orchestrator's number for it.
        token: the bearer token (Tickmark); None for the reference.
        channels: the channels to subscribe to.
        tally: where its deliveries are counted.

    """

    __slots__ = (
        "_answers",
        "_recovery",
        "_resume",
        "_retries",
        "_tickmark",
        "channels",
        "client_id",
        "ready",
        "recovered_at_secs",
        "streams",
        "tally",
        "token",
        "ws",
    )

    def __init__(
        self, client_id: int, token: str | None, channels: list[str], tally: Tally
    ) -> None:
        self.client_id = client_id
        self.token = token
        self.channels = channels
        self.tally = tally
        # By channel name (bytes, as it appears in frames); kept across
        # reconnections so that a resume starts where the last one ended.
        self.streams: dict[bytes, Stream] = {}
        self.ws: WsClient | None = None
        # Answers still awaited before the connection counts as ready: the
        # welcome (Tickmark) and one per subscription.
        self._answers = 0
        self.ready: asyncio.Future[None] | None = None
        # While recovering after a reconnection: channel -> the head
        # position that must be reached; None when not recovering.
        self._recovery: dict[bytes, int] | None = None
        self.recovered_at_secs = 0.0
        # How the last connect subscribes: Tickmark's frames or the
        # reference's, from the start or resuming; and the refusals retried.
        self._tickmark = True
        self._resume = False
        self._retries = 0

    # --- frames from the server ---------------------------------------------------

    def on_message(self, data: bytes) -> None:
        delivery = parse_delivery(data)
        if delivery is None:
            self._on_other(data)
            return
        tally = self.tally
        stream = self.streams.get(delivery.channel)
        if stream is None:
            tally.unexpected += 1
            return
        arrival = stream.arrive(delivery.seq)
        if arrival is Arrival.NEW or arrival is Arrival.REORDERED:
            tally.latency_us[delivery.step].append(
                (time.time_ns() - delivery.sent_ns) // 1000
            )
            tally.delivered[delivery.step] += 1
            if arrival is Arrival.REORDERED:
                tally.reordered[delivery.step] += 1
        elif arrival is Arrival.DUPLICATE:
            tally.duplicates[delivery.step] += 1
        else:
            tally.unexpected += 1
        if self._recovery is not None:
            self._check_recovered(delivery.channel)

    def _on_other(self, data: bytes) -> None:
        if data.startswith(b"ok "):
            # The reference's answer to a subscription.
            self._subscribed(data[3:], 0)
            return
        try:
            frame: dict[str, Any] = json.loads(data)
            kind = str(frame.get("type"))
        except ValueError:
            kind = "unparsed"
            frame = {}
        self.tally.frames[kind] += 1
        self.tally.frame_bytes[kind] += len(data)
        if kind == "welcome":
            self._answered()
        elif kind == "subscribed":
            self._subscribed(frame["channel"].encode(), int(frame["last_seq"]))
        elif kind == "error":
            code = str(frame.get("code"))
            self.tally.errors[code] += 1
            request_id = str(frame.get("id") or "")
            if not request_id.startswith("s"):
                return
            if code in _RETRYABLE and self._retries < _MAX_SUBSCRIBE_RETRIES:
                # As docs/protocol.md asks of clients: a subscription refused
                # for load is tried again after the delay the error names.
                self._retries += 1
                self.tally.errors["subscribe_retried"] += 1
                delay_secs = float(frame.get("retry_after_secs") or 1)
                asyncio.get_running_loop().call_later(
                    delay_secs, self._subscribe, int(request_id[1:])
                )
            else:
                self._answered()

    def _subscribed(self, channel: bytes, head: int) -> None:
        stream = self.streams.get(channel)
        if stream is None:
            self.streams[channel] = Stream(head)
        elif self._recovery is not None:
            self._recovery[channel] = head
        self._answered()
        if self._recovery is not None:
            self._check_recovered(channel)

    def _answered(self) -> None:
        self._answers -= 1
        if self._answers == 0 and self.ready is not None and not self.ready.done():
            self.ready.set_result(None)

    def _check_recovered(self, channel: bytes) -> None:
        recovery = self._recovery
        assert recovery is not None
        head = recovery.get(channel)
        if head is not None and self.streams[channel].position >= head:
            del recovery[channel]
        if not recovery and self._answers <= 0:
            # Every channel answered and reached its head: recovered.
            self._recovery = None
            self.recovered_at_secs = time.monotonic()

    # --- connecting -----------------------------------------------------------------

    def _subscribe(self, number: int) -> None:
        """Send the subscription to channel ``number`` (again, after a refusal)."""
        ws = self.ws
        if ws is None or ws.closed.done():
            return
        channel = self.channels[number]
        if not self._tickmark:
            ws.send_text(b"sub " + channel.encode())
            return
        frame: dict[str, Any] = {"type": "subscribe", "id": f"s{number}"}
        frame["channel"] = channel
        stream = self.streams.get(channel.encode())
        if self._resume and stream is not None:
            frame["since"] = stream.position
        ws.send_text(json.dumps(frame).encode())

    async def connect(
        self, target: dict[str, Any], source_host: str, *, resume: bool
    ) -> tuple[float, float]:
        """Connect and subscribe; returns (upgrade secs, ready secs).

        Args:
            resume: subscribe from each channel's last contiguous position
                (``since``) and track recovery up to the head it reports.

        """
        started = time.monotonic()
        tickmark = target["kind"] == "tickmark"
        loop = asyncio.get_running_loop()
        self.ready = loop.create_future()
        self._answers = len(self.channels) + (1 if tickmark else 0)
        if resume:
            self._recovery = {}
            self.recovered_at_secs = 0.0
        headers = {"Authorization": f"Bearer {self.token}"} if tickmark else {}
        self.ws = await open_ws(
            target["host"],
            target["port"],
            target["path"],
            self.on_message,
            headers=headers,
            source_host=source_host,
            deflate=bool(target.get("deflate")),
        )
        upgraded_secs = self.ws.upgraded_at_secs - started
        self._tickmark = tickmark
        self._resume = resume
        self._retries = 0
        for number in range(len(self.channels)):
            self._subscribe(number)
        await asyncio.wait_for(
            asyncio.shield(self.ready), target.get("timeout_secs", 30.0)
        )
        if resume and self._recovery is not None and not self._recovery:
            self._recovery = None
            self.recovered_at_secs = time.monotonic()
        return upgraded_secs, time.monotonic() - started


class Worker:
    """Executes the orchestrator's commands."""

    def __init__(self) -> None:
        self.tally = Tally()
        self.clients: dict[int, Client] = {}
        self.publisher: Publisher | None = None
        # Monotonic seconds when the clients were last dropped.
        self._dropped_at_secs = 0.0

    async def handle(self, command: Message) -> Message:
        name = command["cmd"]
        method = getattr(self, "cmd_" + name, None)
        if method is None:
            return {"error": f"unknown command {name}"}
        answer: Message = await method(command)
        return answer

    # --- subscribers ------------------------------------------------------------------

    async def _open_all(
        self, clients: list[Client], command: Message, *, resume: bool
    ) -> Message:
        target = command["target"]
        sources: list[str] = command["sources"]
        gate = asyncio.Semaphore(int(command["inflight"]))
        upgrade_ms: list[float] = []
        ready_ms: list[float] = []
        failures: dict[str, int] = defaultdict(int)

        retry_until = time.monotonic() + float(command.get("retry_secs", 0.0))
        retries = 0

        async def one(client: Client) -> None:
            nonlocal retries
            source = sources[client.client_id % len(sources)]
            while True:
                async with gate:
                    try:
                        upgraded, ready = await client.connect(
                            target, source, resume=resume
                        )
                    except HandshakeError as error:
                        reason = f"http_{error.status}"
                    except (OSError, TimeoutError, ConnectionError) as error:
                        reason = type(error).__name__
                    else:
                        upgrade_ms.append(upgraded * 1000)
                        ready_ms.append(ready * 1000)
                        return
                if client.ws is not None:
                    client.ws.abort()
                    client.ws = None
                if time.monotonic() >= retry_until:
                    failures[reason] += 1
                    return
                # As a real client would: back off, with jitter, and retry.
                retries += 1
                await asyncio.sleep(random.uniform(0.5, 1.5))

        started = time.monotonic()
        await asyncio.gather(*(one(c) for c in clients))
        return {
            "connected": len(ready_ms),
            "failures": dict(failures),
            "elapsed_secs": time.monotonic() - started,
            "upgrade_ms": upgrade_ms,
            "ready_ms": ready_ms,
            "retries": retries,
        }

    async def cmd_connect(self, command: Message) -> Message:
        clients = []
        for spec in command["clients"]:
            client = Client(spec["id"], spec.get("token"), spec["channels"], self.tally)
            self.clients[client.client_id] = client
            clients.append(client)
        return await self._open_all(clients, command, resume=False)

    async def cmd_drop(self, command: Message) -> Message:
        """Cut every subscriber connection at once, without a close frame."""
        self._dropped_at_secs = time.monotonic()
        dropped = 0
        for client in self.clients.values():
            if client.ws is not None:
                client.ws.abort()
                client.ws = None
                dropped += 1
        return {"dropped": dropped}

    async def cmd_reconnect(self, command: Message) -> Message:
        """Reconnect every client with its positions; wait for recovery."""
        clients = list(self.clients.values())
        answer = await self._open_all(clients, command, resume=True)
        deadline = time.monotonic() + float(command["recover_timeout_secs"])
        while time.monotonic() < deadline:
            if all(c.recovered_at_secs for c in clients):
                break
            await asyncio.sleep(0.05)
        recovered = [
            (c.recovered_at_secs - self._dropped_at_secs) * 1000
            for c in clients
            if c.recovered_at_secs
        ]
        answer["recovered_ms"] = recovered
        answer["not_recovered"] = len(clients) - len(recovered)
        return answer

    async def cmd_close(self, command: Message) -> Message:
        """Close every connection with a closing handshake, within a limit."""
        websockets = [c.ws for c in self.clients.values() if c.ws is not None]
        if self.publisher is not None:
            websockets.extend(self.publisher.posters)
        for ws in websockets:
            ws.close()
        pending = [ws.closed for ws in websockets]
        if pending:
            await asyncio.wait(pending, timeout=10)
            for ws in websockets:
                if not ws.closed.done():
                    ws.abort()
        self.clients.clear()
        self.publisher = None
        return {"closed": len(websockets)}

    async def cmd_reset(self, command: Message) -> Message:
        """Forget every client and every count (after ``close``)."""
        self.tally = Tally()
        self.clients.clear()
        gc.collect()
        return {"reset": True}

    async def cmd_progress(self, command: Message) -> Message:
        """Deliveries counted so far, by step."""
        return {"delivered": {str(k): v for k, v in self.tally.delivered.items()}}

    async def cmd_check(self, command: Message) -> Message:
        """Count, per step, the expected deliveries that never arrived.

        The command names, for each step, the positions published on each
        channel; every client subscribed to that channel should have them.
        """
        missing: dict[str, int] = {}
        expected: dict[str, int] = {}
        by_channel: dict[bytes, list[Stream]] = defaultdict(list)
        for client in self.clients.values():
            for channel, stream in client.streams.items():
                by_channel[channel].append(stream)
        for step, channels in command["steps"].items():
            lost = 0
            wanted = 0
            for channel, seqs in channels.items():
                streams = by_channel.get(channel.encode(), [])
                wanted += len(streams) * len(seqs)
                for stream in streams:
                    lost += sum(1 for seq in seqs if not stream.has(seq))
            missing[step] = lost
            expected[step] = wanted
        tally = self.tally
        return {
            "expected": expected,
            "missing": missing,
            "duplicates": {str(k): v for k, v in tally.duplicates.items()},
            "reordered": {str(k): v for k, v in tally.reordered.items()},
        }

    async def cmd_latencies(self, command: Message) -> Message:
        """Hand over (and forget) the latency samples of some steps."""
        out = {}
        for step in command["steps"]:
            samples = self.tally.latency_us.pop(int(step), None)
            if samples is not None:
                out[str(step)] = pack_array(samples)
        return {"latency_us": out}

    async def cmd_stats(self, command: Message) -> Message:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        tally = self.tally
        closes: dict[str, int] = defaultdict(int)
        for client in self.clients.values():
            if client.ws is not None and client.ws.closed.done():
                closes[str(client.ws.close_code or "no_close_frame")] += 1
        return {
            "cpu_secs": usage.ru_utime + usage.ru_stime,
            "max_rss_kib": usage.ru_maxrss,
            "unexpected": tally.unexpected,
            "frames": dict(tally.frames),
            "frame_bytes": dict(tally.frame_bytes),
            "errors": dict(tally.errors),
            "closed_by_server": dict(closes),
            "open": sum(
                1
                for c in self.clients.values()
                if c.ws is not None and not c.ws.closed.done()
            ),
        }

    # --- posters -------------------------------------------------------------

    async def cmd_posters(self, command: Message) -> Message:
        targets = command["targets"]
        self.publisher = Publisher(targets[0]["kind"], command["run_tag"])
        return await self.publisher.connect(
            targets, command["tokens"], command["sources"]
        )

    async def cmd_publish(self, command: Message) -> Message:
        assert self.publisher is not None, "posters first"
        return await self.publisher.publish(
            command["plan"],
            rate_per_sec=float(command["rate_per_sec"]),
            duration_secs=float(command["duration_secs"]),
            step=int(command["step"]),
            ack_timeout_secs=float(command.get("ack_timeout_secs", 10.0)),
        )


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 30)
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(1, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    worker = Worker()
    while True:
        try:
            command = await read_message(reader)
        except asyncio.IncompleteReadError:
            return  # the orchestrator went away
        if command["cmd"] == "exit":
            await write_message(writer, {"bye": True})
            return
        try:
            answer = await worker.handle(command)
        except Exception as error:
            logger.exception("command failed")
            answer = {"error": f"{type(error).__name__}: {error}"}
        await write_message(writer, answer)


def main() -> None:
    # A full collection over tens of thousands of connection objects stalls
    # the loop for many milliseconds, which would show up as latency that
    # is the generator's, not the server's; the worker collects between
    # scenarios instead (see cmd_reset). Runs are bounded, so memory is too.
    gc.disable()
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="worker %(message)s"
    )
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
