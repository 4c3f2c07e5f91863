"""The orchestrator's side of the generator: worker processes and their results.

:class:`Generator` starts the worker processes (pinned to the generator's
core), spreads subscriber connections over them, runs the publisher in a
worker of its own, and merges what the workers report: latency samples,
deliveries, losses, duplicates and CPU.
"""

from __future__ import annotations

import array
import asyncio
import statistics
import sys
from typing import Any

from bench.control import Message, read_message, unpack_array, write_message
from bench.processes import REPO_ROOT


__all__ = ["Generator", "WorkerHandle", "percentiles"]

# Several 127.0.0.x source addresses: each gives its own ~28k ephemeral
# ports towards one server port, and TIME_WAIT sockets of earlier
# scenarios do not pile up on a single one.
SOURCES = [f"127.0.0.{n}" for n in range(2, 10)]
# Longest any one command may take before the run gives up on a worker.
_COMMAND_TIMEOUT_SECS = 300.0


def percentiles(values: list[float] | array.array[int]) -> dict[str, float]:
    """p50, p95, p99 and max of some samples (nearest rank); zeros if none."""
    if not values:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "count": 0}
    ordered = sorted(values)
    size = len(ordered)

    def rank(q: float) -> float:
        return float(ordered[min(size - 1, max(0, int(q * size + 0.5) - 1))])

    return {
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": float(ordered[-1]),
        "mean": statistics.fmean(ordered),
        "count": size,
    }


class WorkerHandle:
    """One ``bench.worker`` process and its command pipe."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.pid = process.pid
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, name: str, cpus: str | None) -> WorkerHandle:
        argv = [sys.executable, "-m", "bench.worker"]
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 30,
        )
        return cls(name, process)

    async def call(self, command: Message) -> Message:
        """Send a command and wait for its answer.

        Raises:
            RuntimeError: the worker reported an error.

        """
        assert self.process.stdin is not None and self.process.stdout is not None
        async with self._lock, asyncio.timeout(_COMMAND_TIMEOUT_SECS):
            await write_message(self.process.stdin, command)
            answer = await read_message(self.process.stdout)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    async def stop(self) -> None:
        if self.process.returncode is not None:
            return
        try:
            await asyncio.wait_for(self.call({"cmd": "exit"}), 10)
            await asyncio.wait_for(self.process.wait(), 10)
        except (TimeoutError, RuntimeError, asyncio.IncompleteReadError):
            self.process.kill()
            await self.process.wait()


class Generator:
    """Subscriber workers and one publisher worker.

    Args:
        subscribers: workers that hold subscriber connections.
        publisher: the worker that holds the poster connections.

    """

    def __init__(
        self, subscribers: list[WorkerHandle], publisher: WorkerHandle
    ) -> None:
        self.subscribers = subscribers
        self.publisher = publisher

    @classmethod
    async def start(cls, subscriber_workers: int, cpus: str | None) -> Generator:
        subscribers = [
            await WorkerHandle.start(f"worker{n}", cpus)
            for n in range(subscriber_workers)
        ]
        publisher = await WorkerHandle.start("publisher", cpus)
        return cls(subscribers, publisher)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in (*self.subscribers, self.publisher)]

    async def stop(self) -> None:
        for worker in (*self.subscribers, self.publisher):
            await worker.stop()

    async def _each(self, command: Message) -> list[Message]:
        return list(await asyncio.gather(*(w.call(command) for w in self.subscribers)))

    # --- connections ----------------------------------------------------------------

    async def connect(
        self,
        targets: list[dict[str, Any]],
        clients: list[dict[str, Any]],
        *,
        inflight: int,
    ) -> Message:
        """Open subscriber connections, spread over workers and targets.

        Client *n* of the list goes to worker ``n % workers`` and to target
        ``n % targets``; the in-flight limit is shared out among workers.
        """
        per_worker: list[list[dict[str, Any]]] = [[] for _ in self.subscribers]
        for n, client in enumerate(clients):
            per_worker[n % len(per_worker)].append(client)
        answers = await asyncio.gather(
            *(
                self._connect_on(worker, targets, mine, inflight)
                for worker, mine in zip(self.subscribers, per_worker, strict=True)
                if mine
            )
        )
        return _merge_connects(list(answers))

    async def _connect_on(
        self,
        worker: WorkerHandle,
        targets: list[dict[str, Any]],
        clients: list[dict[str, Any]],
        inflight: int,
    ) -> Message:
        # One command per target, so that each connection knows its server.
        by_target: list[list[dict[str, Any]]] = [[] for _ in targets]
        for client in clients:
            by_target[client.get("target", client["id"]) % len(targets)].append(client)
        share = max(1, inflight // (len(self.subscribers) * len(targets)))
        answers = await asyncio.gather(
            *(
                worker.call(
                    {
                        "cmd": "connect",
                        "target": target,
                        "clients": mine,
                        "inflight": share,
                        "sources": SOURCES,
                    }
                )
                for target, mine in zip(targets, by_target, strict=True)
                if mine
            )
        )
        return _merge_connects(list(answers))

    async def posters(
        self, targets: list[dict[str, Any]], tokens: list[str | None], run_tag: str
    ) -> None:
        """Open poster connections: poster *n* goes to target ``n % targets``."""
        await self.publisher.call(
            {
                "cmd": "posters",
                "targets": targets,
                "tokens": tokens,
                "sources": SOURCES,
                "run_tag": run_tag,
            }
        )

    async def close(self) -> None:
        """Close every connection and forget what was counted."""
        await asyncio.gather(
            *(w.call({"cmd": "close"}) for w in (*self.subscribers, self.publisher))
        )
        await asyncio.gather(
            *(w.call({"cmd": "reset"}) for w in (*self.subscribers, self.publisher))
        )

    async def drop(self) -> Message:
        answers = await self._each({"cmd": "drop"})
        return {"dropped": sum(a["dropped"] for a in answers)}

    async def reconnect(
        self,
        targets: list[dict[str, Any]],
        *,
        inflight: int,
        recover_timeout_secs: float,
    ) -> Message:
        share = max(1, inflight // len(self.subscribers))
        answers = await self._each(
            {
                "cmd": "reconnect",
                "target": targets[0],
                "inflight": share,
                "sources": SOURCES,
                "recover_timeout_secs": recover_timeout_secs,
                "retry_secs": recover_timeout_secs,
            }
        )
        merged = _merge_connects(answers)
        merged["recovered_ms"] = [v for a in answers for v in a["recovered_ms"]]
        merged["not_recovered"] = sum(a["not_recovered"] for a in answers)
        merged["retries"] = sum(a.get("retries", 0) for a in answers)
        return merged

    # --- publishing and results ---------------------------------------------

    async def publish(
        self,
        plan: list[dict[str, Any]],
        *,
        rate_per_sec: float,
        duration_secs: float,
        step: int,
        ack_timeout_secs: float = 10.0,
    ) -> Message:
        return await self.publisher.call(
            {
                "cmd": "publish",
                "plan": plan,
                "rate_per_sec": rate_per_sec,
                "duration_secs": duration_secs,
                "step": step,
                "ack_timeout_secs": ack_timeout_secs,
            }
        )

    async def delivered(self, step: int) -> int:
        return (await self.delivered_by_step()).get(step, 0)

    async def delivered_by_step(self) -> dict[int, int]:
        """First deliveries counted so far, by step, over every worker."""
        answers = await self._each({"cmd": "progress"})
        total: dict[int, int] = {}
        for answer in answers:
            for step, count in answer["delivered"].items():
                total[int(step)] = total.get(int(step), 0) + int(count)
        return total

    async def latencies_us(self, step: int) -> array.array[int]:
        answers = await self._each({"cmd": "latencies", "steps": [step]})
        merged: array.array[int] = array.array("q")
        for answer in answers:
            packed = answer["latency_us"].get(str(step))
            if packed is not None:
                merged.extend(unpack_array(packed))
        return merged

    async def check(
        self, expected: dict[int, dict[str, list[int]]]
    ) -> dict[int, Message]:
        """Missing, duplicated and reordered deliveries for each step."""
        steps = {str(step): channels for step, channels in expected.items()}
        answers = await self._each({"cmd": "check", "steps": steps})
        out: dict[int, Message] = {}
        for step in expected:
            key = str(step)
            out[step] = {
                "expected": sum(a["expected"].get(key, 0) for a in answers),
                "lost": sum(a["missing"].get(key, 0) for a in answers),
                "duplicated": sum(a["duplicates"].get(key, 0) for a in answers),
                "reordered": sum(a["reordered"].get(key, 0) for a in answers),
            }
        return out

    async def stats(self) -> Message:
        answers = await asyncio.gather(
            *(w.call({"cmd": "stats"}) for w in (*self.subscribers, self.publisher))
        )
        merged: Message = {
            "cpu_secs": sum(a["cpu_secs"] for a in answers),
            "unexpected": sum(a["unexpected"] for a in answers),
            "open": sum(a["open"] for a in answers),
        }
        for key in ("frames", "frame_bytes", "errors", "closed_by_server"):
            total: dict[str, int] = {}
            for answer in answers:
                for name, count in answer[key].items():
                    total[name] = total.get(name, 0) + count
            merged[key] = total
        return merged


def _merge_connects(answers: list[Message]) -> Message:
    failures: dict[str, int] = {}
    for answer in answers:
        for reason, count in answer["failures"].items():
            failures[reason] = failures.get(reason, 0) + count
    return {
        "connected": sum(a["connected"] for a in answers),
        "failures": failures,
        "elapsed_secs": max((a["elapsed_secs"] for a in answers), default=0.0),
        "upgrade_ms": [v for a in answers for v in a["upgrade_ms"]],
        "ready_ms": [v for a in answers for v in a["ready_ms"]],
        "retries": sum(a.get("retries", 0) for a in answers),
    }
