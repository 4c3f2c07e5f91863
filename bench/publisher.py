"""Publishing at a target rate, open loop, through the servers' real protocols.

Posts are sent on a fixed schedule whatever the server answers, so a slow
server shows up as latency and a backlog rather than as a politely slower
generator. Each post's body is a probe (:func:`bench.frames.probe_body`)
stamped just before the frame is written.

- Tickmark: ``post`` frames on poster connections. A connection's frames
  are handled one after another by the server, so the plan routes every
  post on a channel through the same poster: posts on one transaction are
  then stored, numbered and published in the order they were sent, as one
  person typing would produce them. The ``ack`` of each post names the
  ``seq`` it was given: these are the positions subscribers must receive.
- Reference: ``pub`` frames on one connection, carrying a frame in
  Tickmark's shape with a position the publisher numbers itself.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import secrets
import time
from collections import defaultdict
from typing import Any

from bench.control import Message, pack_array
from bench.frames import ReferenceFrame, build_post, parse_ack, probe_body
from bench.wsclient import WsClient, open_ws


__all__ = ["Publisher"]


class Publisher:
    """Poster connections and the schedule that drives them.

    Args:
        kind: ``tickmark`` or ``reference``.
        run_tag: makes this run's idempotency keys unique.

    """

    def __init__(self, kind: str, run_tag: str) -> None:
        self.tickmark = kind == "tickmark"
        # Keys must differ between publishers of one run too: the same
        # poster accounts post in every scenario.
        self.run_tag = f"{run_tag}-{secrets.token_hex(4)}"
        self.posters: list[WsClient] = []
        # The number of the last post sent (post ids are ``p<number>``).
        self._number = 0
        # Where the round-robin over the plan continues.
        self._cursor = 0
        # Posts awaiting their ack: number -> (channel, step, sent_ns).
        self._pending: dict[int, tuple[str, int, int]] = {}
        # How many posts of each step await their answer, and the event
        # set when the step being published has none left.
        self._open_by_step: dict[int, int] = defaultdict(int)
        self._step_answered = asyncio.Event()
        # Acknowledged positions: step -> channel -> seqs.
        self._acked: dict[int, dict[str, list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        # Post-to-ack time of each acknowledged post, microseconds.
        self._ack_us: array.array[int] = array.array("q")
        self._errors: dict[str, int] = defaultdict(int)
        # Reference only: the last position given on each channel.
        self._reference_seq: dict[str, int] = defaultdict(int)
        self._reference_frame = ReferenceFrame()

    async def connect(
        self,
        targets: list[dict[str, Any]],
        tokens: list[str | None],
        sources: list[str],
    ) -> Message:
        """Open one poster connection per token (None for the reference).

        Poster *n* connects to target ``n % len(targets)``.
        """
        for number, token in enumerate(tokens):
            target = targets[number % len(targets)]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            ws = await open_ws(
                target["host"],
                target["port"],
                target["path"],
                self._on_message,
                headers=headers,
                source_host=sources[number % len(sources)],
            )
            self.posters.append(ws)
        return {"posters": len(self.posters)}

    def _on_message(self, data: bytes) -> None:
        ack = parse_ack(data)
        if ack is not None:
            number, seq = ack
            pending = self._answered(number)
            if pending is not None:
                channel, step, sent_ns = pending
                self._acked[step][channel].append(seq)
                self._ack_us.append((time.time_ns() - sent_ns) // 1000)
            return
        if data.startswith(b'{"type":"error"'):
            frame = json.loads(data)
            request_id = str(frame.get("id") or "")
            if request_id.startswith("p"):
                self._answered(int(request_id[1:]))
            self._errors[str(frame.get("code"))] += 1

    def _answered(self, number: int) -> tuple[str, int, int] | None:
        pending = self._pending.pop(number, None)
        if pending is not None:
            step = pending[1]
            self._open_by_step[step] -= 1
            if self._open_by_step[step] == 0:
                self._step_answered.set()
        return pending

    def _send(self, entry: dict[str, Any], step: int) -> None:
        channel: str = entry["channel"]
        poster = self.posters[entry.get("poster", 0)]
        sent_ns = time.time_ns()
        body = probe_body(sent_ns, step)
        if not self.tickmark:
            self._reference_seq[channel] += 1
            seq = self._reference_seq[channel]
            frame = self._reference_frame.build(channel, seq, body)
            poster.send_text(f"pub {channel} {frame}".encode())
            self._acked[step][channel].append(seq)
            return
        self._number += 1
        number = self._number
        self._pending[number] = (channel, step, sent_ns)
        self._open_by_step[step] += 1
        poster.send_text(
            build_post(
                number,
                entry["transaction_id"],
                entry["recipients"],
                body,
                f"{self.run_tag}-{number}",
            )
        )

    async def publish(
        self,
        plan: list[dict[str, Any]],
        *,
        rate_per_sec: float,
        duration_secs: float,
        step: int,
        ack_timeout_secs: float,
    ) -> Message:
        """Post round-robin over ``plan`` at ``rate_per_sec`` for a while.

        Returns once every post was answered or ``ack_timeout_secs`` passed
        after the last one was sent.
        """
        total = max(1, round(rate_per_sec * duration_secs))
        started = time.monotonic()
        sent = 0
        while sent < total:
            due = min(total, int((time.monotonic() - started) * rate_per_sec) + 1)
            while sent < due:
                self._send(plan[self._cursor % len(plan)], step)
                self._cursor += 1
                sent += 1
            wake_at = started + sent / rate_per_sec
            await asyncio.sleep(max(0.0, wake_at - time.monotonic()))
        elapsed_secs = time.monotonic() - started

        if self._open_by_step[step] > 0:
            self._step_answered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._step_answered.wait(), ack_timeout_secs)
        acked = self._acked.pop(step, {})
        ack_us, self._ack_us = self._ack_us, array.array("q")
        errors, self._errors = dict(self._errors), defaultdict(int)
        unanswered = self._open_by_step.pop(step, 0)
        return {
            "sent": sent,
            "elapsed_secs": elapsed_secs,
            "acked": {channel: seqs for channel, seqs in acked.items()},
            "ack_us": pack_array(ack_us),
            "errors": errors,
            "unanswered": unanswered,
        }
