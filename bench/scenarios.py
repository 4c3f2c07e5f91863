"""The five scenarios of the bench, each against Tickmark and the reference.

A scenario starts its servers, connects subscribers through the
generator, runs its ladder or its storm, and returns a JSON-ready dict of
figures. Servers run on ``server_cpus`` and everything else (generator
workers, publisher, Redis, this process) on ``generator_cpus``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench import profiling
from bench.generator import Generator, percentiles
from bench.processes import (
    Machine,
    Process,
    postgres_cpu_secs,
    start_reference,
    start_tickmark,
)
from bench.world import World


__all__ = ["Context", "Scale", "durable", "fanout", "idle"]

logger = logging.getLogger("bench")

# The step number the reconnect storm's posts carry (ladders use 1-99).
STORM_STEP = 900
# ...and the warm-up's, whose posts are not measured.
WARM_UP_STEP = 0
# A step is sustained when p99 stays under this (the targets' knee).
KNEE_P99_MS = 250.0
# ...and the publisher held at least this share of the target rate.
_HELD_SHARE = 0.97
# The ladder stops after a step that left more than this share undelivered.
_OVERLOAD_SHARE = 0.2


@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes and rates of a run; ``FULL`` is the targets', ``QUICK`` a smoke test."""

    companies: int
    clients: int
    posters: int
    idle_ladder: tuple[int, ...]
    big_channel: int
    f50_channels: int
    f50_per_channel: int
    fanout_deliveries_per_sec: tuple[int, ...]
    redis_deliveries_per_sec: tuple[int, ...]
    durable_channels: int
    durable_per_channel: int
    durable_posts_per_sec: tuple[int, ...]
    storm_posts_per_sec: int
    storm_secs: float
    step_secs: float
    drain_secs: float
    settle_secs: float
    connect_inflight: int
    storm_inflight: int
    subscriber_workers: int


FULL = Scale(
    companies=100,
    clients=10_000,
    posters=50,
    idle_ladder=(1_000, 5_000, 10_000),
    big_channel=1_000,
    f50_channels=100,
    f50_per_channel=50,
    fanout_deliveries_per_sec=(5_000, 10_000, 20_000, 40_000, 60_000),
    redis_deliveries_per_sec=(5_000, 10_000, 20_000),
    durable_channels=100,
    durable_per_channel=10,
    durable_posts_per_sec=(125, 250, 500, 1_000, 2_000),
    storm_posts_per_sec=100,
    storm_secs=20.0,
    step_secs=5.0,
    drain_secs=3.0,
    settle_secs=2.0,
    connect_inflight=200,
    storm_inflight=500,
    subscriber_workers=2,
)

QUICK = Scale(
    companies=10,
    clients=600,
    posters=10,
    idle_ladder=(100, 300),
    big_channel=200,
    f50_channels=10,
    f50_per_channel=20,
    fanout_deliveries_per_sec=(1_000, 2_000, 4_000),
    redis_deliveries_per_sec=(1_000, 2_000),
    durable_channels=10,
    durable_per_channel=5,
    durable_posts_per_sec=(50, 100, 200),
    storm_posts_per_sec=20,
    storm_secs=8.0,
    step_secs=2.0,
    drain_secs=2.0,
    settle_secs=1.5,
    connect_inflight=100,
    storm_inflight=100,
    subscriber_workers=2,
)


@dataclasses.dataclass
class Context:
    """What every scenario of one run shares."""

    scale: Scale
    world: World
    generator: Generator
    database_url: str
    database_name: str
    redis: Process
    redis_url: str
    log_dir: Path
    server_cpus: str | None
    generator_cpus: str | None
    run_tag: str
    # Scenario labels whose steps are sampled with py-spy; empty: none.
    profile: frozenset[str] = frozenset()
    profiles: dict[str, Any] = dataclasses.field(default_factory=dict)
    _step: int = 0

    def next_step(self) -> int:
        self._step += 1
        return self._step


# --- layouts: who subscribes to what ------------------------------------------


def _txn(bill: str) -> str:
    return f"transaction:{bill}"


def _idle_specs(ctx: Context, count: int, tickmark: bool) -> list[dict[str, Any]]:
    """Client i follows its company and two of its bills (3 channels)."""
    world = ctx.world
    specs = []
    for i in range(count):
        company = world.companies[i % len(world.companies)]
        channels = [f"company:{company.id}", _txn(company.bills[0])]
        channels.append(_txn(company.bills[1]))
        specs.append(_spec(ctx, i, channels, tickmark))
    return specs


def _spec(
    ctx: Context, i: int, channels: list[str], tickmark: bool, target: int = 0
) -> dict[str, Any]:
    spec: dict[str, Any] = {"id": i, "channels": channels, "target": target}
    if tickmark:
        spec["token"] = ctx.world.clients[i].token
    return spec


@dataclasses.dataclass
class Layout:
    """Subscribers and the posting plan of one fan-out shape."""

    name: str
    specs: list[dict[str, Any]]
    plan: list[dict[str, Any]]
    # Subscribers of each channel (for the expected deliveries).
    audience: dict[str, int]
    fanout: int
    posters: int


def fanout_layout(
    ctx: Context,
    name: str,
    *,
    channels: int,
    per_channel: int,
    bill: int,
    tickmark: bool,
    targets: int = 1,
    online_recipient: bool = False,
) -> Layout:
    """``channels`` bills with ``per_channel`` subscribers each.

    Channel *c* is bill ``bill`` of company *c*, followed by clients
    ``c + companies * k``. With one channel, it is bill ``bill`` of company
    0 followed by the first ``per_channel`` clients (all members of it).
    Subscribers alternate between targets, so that every channel has
    subscribers on every server process.
    """
    world = ctx.world
    companies = len(world.companies)
    specs = []
    plan = []
    audience = {}
    posters = min(ctx.scale.posters, channels) if tickmark else 1
    for c in range(channels):
        company = world.companies[c]
        channel = _txn(company.bills[bill])
        members = (
            list(range(per_channel))
            if channels == 1
            else [c + companies * k for k in range(per_channel)]
        )
        for k, i in enumerate(members):
            specs.append(_spec(ctx, i, [channel], tickmark, target=k % targets))
        audience[channel] = len(members)
        recipient = world.clients[c].id if online_recipient else company.away
        plan.append(
            {
                "channel": channel,
                "transaction_id": company.bills[bill],
                "recipients": [recipient],
                "poster": c % posters,
            }
        )
    return Layout(name, specs, plan, audience, per_channel, posters)


# --- measuring ----------------------------------------------------------------


@dataclasses.dataclass
class Snapshot:
    at_secs: float
    server_cpu_secs: float
    generator_cpu_secs: float
    redis_cpu_secs: float
    postgres_cpu: dict[int, float]
    # Whole-machine counters (Machine.cpu_secs).
    machine: dict[str, float]
    # This process's own CPU (the orchestrator).
    own_cpu_secs: float


async def _snapshot(ctx: Context, servers: list[Process]) -> Snapshot:
    stats = await ctx.generator.stats()
    return Snapshot(
        at_secs=time.monotonic(),
        server_cpu_secs=sum(s.cpu_secs() for s in servers),
        generator_cpu_secs=float(stats["cpu_secs"]),
        redis_cpu_secs=ctx.redis.cpu_secs(),
        postgres_cpu=postgres_cpu_secs(ctx.database_name),
        machine=Machine.cpu_secs(),
        own_cpu_secs=time.process_time(),
    )


def _usage(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """CPU used between two snapshots, as shares of one core."""
    wall = max(1e-9, after.at_secs - before.at_secs)
    postgres = sum(
        after.postgres_cpu[pid] - before.postgres_cpu[pid]
        for pid in after.postgres_cpu.keys() & before.postgres_cpu.keys()
    )
    server = after.server_cpu_secs - before.server_cpu_secs
    generator = after.generator_cpu_secs - before.generator_cpu_secs
    redis = after.redis_cpu_secs - before.redis_cpu_secs
    machine = {k: after.machine[k] - before.machine[k] for k in after.machine}
    own = after.own_cpu_secs - before.own_cpu_secs
    ours = server + generator + redis + postgres + own
    return {
        "wall_secs": wall,
        "server_cpu_secs": server,
        "server_core_share": server / wall,
        "generator_core_share": generator / wall,
        "redis_core_share": redis / wall,
        "postgres_core_share": postgres / wall,
        "softirq_core_share": machine["softirq"] / wall,
        "steal_core_share": machine["steal"] / wall,
        # Machine CPU used by none of the processes above, nor the kernel's
        # interrupt work, nor stolen: other people's work on this machine.
        "other_core_share": max(
            0.0, machine["busy"] - machine["softirq"] - machine["steal"] - ours
        )
        / wall,
    }


@contextlib.asynccontextmanager
async def _maybe_profile(
    ctx: Context, label: str, servers: list[Process], duration_secs: float
) -> AsyncIterator[None]:
    """Sample the first server with py-spy during the block, if asked."""
    if label not in ctx.profile:
        yield
        return
    output = ctx.log_dir / f"profile-{label}.txt"
    task = asyncio.create_task(
        profiling.record(servers[0].pid, duration_secs, output, ctx.generator_cpus)
    )
    try:
        yield
    finally:
        try:
            if await task is not None:
                ctx.profiles[label] = profiling.summarise(output)
        except RuntimeError as error:
            ctx.profiles[label] = {"error": str(error)}


def _ms(values_us: Any) -> dict[str, float]:
    found = percentiles(values_us)
    return {k: (v / 1000 if k not in ("count",) else v) for k, v in found.items()}


async def _ladder(
    ctx: Context,
    label: str,
    servers: list[Process],
    layout: Layout,
    deliveries_per_sec: tuple[int, ...],
    profile_at: int | None = None,
) -> list[dict[str, Any]]:
    """Post at each rate of the ladder; measure each step."""
    gen = ctx.generator
    scale = ctx.scale
    steps: list[dict[str, Any]] = []
    expected_seqs: dict[int, dict[str, list[int]]] = {}
    for target_deliveries in deliveries_per_sec:
        rate = target_deliveries / layout.fanout
        step = ctx.next_step()
        before = await _snapshot(ctx, servers)
        started = time.monotonic()
        profile_label = f"{label}@{target_deliveries}"
        async with _maybe_profile(ctx, profile_label, servers, scale.step_secs):
            published = await gen.publish(
                layout.plan,
                rate_per_sec=rate,
                duration_secs=scale.step_secs,
                step=step,
                ack_timeout_secs=scale.drain_secs + 2,
            )
        acked: dict[str, list[int]] = published["acked"]
        expected = sum(len(s) * layout.audience[c] for c, s in acked.items())

        delivered = await _drain(gen, step, expected, scale.drain_secs)
        drained_secs = time.monotonic() - started
        after = await _snapshot(ctx, servers)
        latency = _ms(await gen.latencies_us(step))
        expected_seqs[step] = acked

        sent = int(published["sent"])
        acked_count = sum(len(s) for s in acked.values())
        window_secs = max(float(published["elapsed_secs"]), drained_secs)
        usage = _usage(before, after)
        record = {
            "step": step,
            "target_deliveries_per_sec": target_deliveries,
            "target_posts_per_sec": rate,
            "sent": sent,
            "posts_per_sec": sent / float(published["elapsed_secs"]),
            "acked": acked_count,
            "post_errors": published["errors"],
            "unanswered": published["unanswered"],
            "ack_ms": _ms(_unpack(published["ack_us"])),
            "expected": expected,
            "delivered": delivered,
            "deliveries_per_sec": delivered / window_secs
            if delivered < expected
            else delivered / float(published["elapsed_secs"]),
            "latency_ms": latency,
            "server_us_per_delivery": usage["server_cpu_secs"] * 1e6 / delivered
            if delivered
            else None,
            "server_us_per_post": usage["server_cpu_secs"] * 1e6 / acked_count
            if acked_count
            else None,
            "usage": usage,
        }
        steps.append(record)
        logger.info(
            "%s step %d: %.0f/s delivered, p99 %.1f ms, %.1f us/delivery",
            label,
            target_deliveries,
            record["deliveries_per_sec"],
            latency["p99"],
            record["server_us_per_delivery"] or 0.0,
        )
        # Overloaded when much of what was sent is not delivered (posts that
        # were never acknowledged count too): higher steps would only pile
        # more onto the backlog.
        intended = sent * layout.fanout
        if delivered < (1 - _OVERLOAD_SHARE) * intended:
            break
        await asyncio.sleep(0.5)

    # A last drain, then count what never came, twice, or out of order.
    await _final_drain(gen, steps)
    checks = await gen.check(expected_seqs)
    for record in steps:
        record.update(checks[record["step"]])
        record["sustained"] = _sustained(record)
    return steps


async def _drain(gen: Generator, step: int, expected: int, limit_secs: float) -> int:
    """Wait for a step's stragglers, up to a limit; return the deliveries."""
    deadline = time.monotonic() + limit_secs
    while True:
        delivered = await gen.delivered(step)
        if delivered >= expected or time.monotonic() >= deadline:
            return delivered
        await asyncio.sleep(0.05)


async def _final_drain(
    gen: Generator,
    steps: list[dict[str, Any]],
    *,
    still_secs: float = 2.0,
    limit_secs: float = 20.0,
) -> None:
    """Wait while deliveries of the ladder's steps still arrive.

    A message that comes late (an overloaded server, or a generator starved
    by other load) is not lost; only one that has not come once deliveries
    stopped for ``still_secs`` is. ``limit_secs`` bounds the wait.
    """
    expected = sum(int(s["expected"]) for s in steps)
    started = time.monotonic()
    last_total, last_change = -1, started
    while time.monotonic() - started < limit_secs:
        by_step = await gen.delivered_by_step()
        total = sum(by_step.get(int(s["step"]), 0) for s in steps)
        now = time.monotonic()
        if total >= expected:
            return
        if total != last_total:
            last_total, last_change = total, now
        elif now - last_change >= still_secs:
            return
        await asyncio.sleep(0.2)


def _unpack(packed: str) -> Any:
    from bench.control import unpack_array

    return unpack_array(packed)


def _sustained(record: dict[str, Any]) -> bool:
    return bool(
        record["lost"] == 0
        and record["duplicated"] == 0
        and record["unanswered"] == 0
        and not record["post_errors"]
        and record["posts_per_sec"] >= _HELD_SHARE * record["target_posts_per_sec"]
        and record["latency_ms"]["p99"] < KNEE_P99_MS
    )


def knee(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest sustained step, and the step nearest half of it."""
    sustained = [s for s in steps if s.get("sustained")]
    if not sustained:
        return {"knee_deliveries_per_sec": 0, "half_knee_step": None}
    top = max(sustained, key=lambda s: s["target_deliveries_per_sec"])
    half = top["target_deliveries_per_sec"] / 2
    candidates = [s for s in steps if s["target_deliveries_per_sec"] <= half]
    half_step = max(
        candidates or [steps[0]], key=lambda s: s["target_deliveries_per_sec"]
    )
    return {
        "knee_deliveries_per_sec": top["target_deliveries_per_sec"],
        "knee_measured_per_sec": top["deliveries_per_sec"],
        "half_knee_step": half_step["target_deliveries_per_sec"],
        "half_knee_p99_ms": half_step["latency_ms"]["p99"],
    }


# --- servers ------------------------------------------------------------------


def _target(kind: str, port: int, *, deflate: bool = False) -> dict[str, Any]:
    return {
        "kind": kind,
        "host": "127.0.0.1",
        "port": port,
        "path": "/ws" if kind == "tickmark" else "/",
        "deflate": deflate,
        "timeout_secs": 60.0,
    }


async def _start(
    ctx: Context, kind: str, name: str, *, redis: bool = False, deflate: bool = False
) -> tuple[Process, dict[str, Any]]:
    if kind == "reference":
        process, port = await start_reference(
            name, deflate=deflate, log_dir=ctx.log_dir, cpus=ctx.server_cpus
        )
    else:
        process, port = await start_tickmark(
            name,
            database_url=ctx.database_url,
            redis_url=ctx.redis_url if redis else None,
            log_dir=ctx.log_dir,
            cpus=ctx.server_cpus,
            extra_env={"WS_COMPRESSION": "true"} if deflate else None,
        )
    return process, _target(kind, port, deflate=deflate)


async def _finish(ctx: Context, servers: list[Process]) -> dict[str, Any]:
    """Collect the generator's counters, close everything, stop the servers."""
    stats = await ctx.generator.stats()
    await ctx.generator.close()
    for server in servers:
        await server.stop()
    return {
        "frames": stats["frames"],
        "frame_bytes": stats["frame_bytes"],
        "errors": stats["errors"],
        "closed_by_server": stats["closed_by_server"],
        "unexpected_deliveries": stats["unexpected"],
    }


# --- scenario 1: idle connections ---------------------------------------------


async def idle(ctx: Context, label: str, kind: str, *, deflate: bool) -> dict[str, Any]:
    """Connect the idle ladder, 3 channels each; RSS, connect rate, handshakes."""
    server, target = await _start(ctx, kind, label, deflate=deflate)
    tickmark = kind == "tickmark"
    await asyncio.sleep(1.0)
    base_rss_kib = server.rss_kib()
    specs = _idle_specs(ctx, max(ctx.scale.idle_ladder), tickmark)
    rows = []
    connected = 0
    opened = 0
    try:
        for count in ctx.scale.idle_ladder:
            batch = specs[connected:count]
            cpu_before = server.cpu_secs()
            async with _maybe_profile(ctx, f"{label}@{count}", [server], 5.0):
                answer = await ctx.generator.connect(
                    [target], batch, inflight=ctx.scale.connect_inflight
                )
            cpu_secs = server.cpu_secs() - cpu_before
            await asyncio.sleep(ctx.scale.settle_secs)
            rss_kib = server.rss_kib()
            connected = count
            opened += answer["connected"]
            rows.append(
                {
                    "connections": count,
                    "connected": opened,
                    "failures": answer["failures"],
                    "connect_secs": answer["elapsed_secs"],
                    "connects_per_sec": len(batch) / answer["elapsed_secs"],
                    "upgrade_ms": _ms([v * 1000 for v in answer["upgrade_ms"]]),
                    "ready_ms": _ms([v * 1000 for v in answer["ready_ms"]]),
                    "rss_kib": rss_kib,
                    "rss_per_connection_kib": (rss_kib - base_rss_kib) / count,
                    "server_ms_per_connect": cpu_secs * 1000 / max(1, len(batch)),
                }
            )
            logger.info(
                "%s %d: %.1f KiB/conn, %.0f conn/s, ready p99 %.0f ms",
                label,
                count,
                rows[-1]["rss_per_connection_kib"],
                rows[-1]["connects_per_sec"],
                rows[-1]["ready_ms"]["p99"],
            )
    finally:
        extra = await _finish(ctx, [server])
    return {
        "label": label,
        "kind": kind,
        "deflate": deflate,
        "base_rss_kib": base_rss_kib,
        "ladder": rows,
        **extra,
    }


# --- scenario 2 and 4: fan-out ladders, one or two processes ------------------


async def fanout(
    ctx: Context,
    label: str,
    kind: str,
    shape: str,
    *,
    processes: int = 1,
    redis: bool = False,
    deliveries_per_sec: tuple[int, ...] | None = None,
    storm: bool = False,
) -> dict[str, Any]:
    """The fan-out ladder for ``shape`` ``f1000`` or ``f50``."""
    scale = ctx.scale
    tickmark = kind == "tickmark"
    servers: list[Process] = []
    targets = []
    for n in range(processes):
        server, target = await _start(ctx, kind, f"{label}-{n}", redis=redis)
        servers.append(server)
        targets.append(target)
    if shape == "f1000":
        layout = fanout_layout(
            ctx,
            shape,
            channels=1,
            per_channel=ctx.world.big_channel,
            bill=1,
            tickmark=tickmark,
            targets=processes,
        )
    else:
        layout = fanout_layout(
            ctx,
            shape,
            channels=scale.f50_channels,
            per_channel=scale.f50_per_channel,
            bill=0,
            tickmark=tickmark,
            targets=processes,
        )
    result: dict[str, Any] = {
        "label": label,
        "kind": kind,
        "shape": shape,
        "fanout": layout.fanout,
        "channels": len(layout.plan),
        "processes": processes,
        "redis": redis,
    }
    try:
        answer = await ctx.generator.connect(
            targets, layout.specs, inflight=scale.connect_inflight
        )
        result["connect"] = {
            "connected": answer["connected"],
            "failures": answer["failures"],
            "connect_secs": answer["elapsed_secs"],
            "ready_ms": _ms([v * 1000 for v in answer["ready_ms"]]),
        }
        tokens: list[str | None] = (
            [p.token for p in ctx.world.posters[: layout.posters]]
            if tickmark
            else [None]
        )
        await ctx.generator.posters(targets, tokens, ctx.run_tag)
        rates = deliveries_per_sec or scale.fanout_deliveries_per_sec
        result["warm_up_secs"] = await _warm_up(ctx, servers, layout, rates[0])
        steps = await _ladder(ctx, label, servers, layout, rates)
        result["steps"] = steps
        result.update(knee(steps))
        if storm:
            result["quiet_before_storm_secs"] = await _wait_quiet(servers)
            result["storm"] = await _storm(ctx, servers, targets, layout)
    finally:
        result.update(await _finish(ctx, servers))
    return result


async def _warm_up(
    ctx: Context, servers: list[Process], layout: Layout, deliveries_per_sec: int
) -> float:
    """Let the connection burst settle, then post briefly at the first rate.

    Right after thousands of subscriptions Tickmark is still writing
    presence and sending viewer lists; and the first posts find cold
    caches (prepared statements, pool connections). Neither belongs to the
    first step, so the ladder starts once the server is quiet and warm.
    Returns the seconds spent.
    """
    started = time.monotonic()
    await asyncio.sleep(ctx.scale.settle_secs)
    await _wait_quiet(servers)
    await ctx.generator.publish(
        layout.plan,
        rate_per_sec=deliveries_per_sec / layout.fanout,
        duration_secs=1.0,
        step=WARM_UP_STEP,
        ack_timeout_secs=ctx.scale.drain_secs,
    )
    await asyncio.sleep(1.0)
    await _wait_quiet(servers)
    return time.monotonic() - started


async def _wait_quiet(servers: list[Process], limit_secs: float = 30.0) -> float:
    """Wait until the servers work off any backlog; return the seconds waited.

    Quiet means under a fifth of a core over half a second: what idle
    connections cost (pings, presence, access polls) stays well below it.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit_secs:
        before = sum(s.cpu_secs() for s in servers)
        await asyncio.sleep(0.5)
        if sum(s.cpu_secs() for s in servers) - before < 0.1:
            break
    return time.monotonic() - started


# --- scenario 5: reconnect storm ----------------------------------------------


async def _storm(
    ctx: Context, servers: list[Process], targets: list[dict[str, Any]], layout: Layout
) -> dict[str, Any]:
    """Drop every subscriber at once while posts continue; time the recovery."""
    scale = ctx.scale
    gen = ctx.generator
    before = await _snapshot(ctx, servers)
    posting = asyncio.create_task(
        gen.publish(
            layout.plan,
            rate_per_sec=scale.storm_posts_per_sec,
            duration_secs=scale.storm_secs,
            step=STORM_STEP,
            ack_timeout_secs=60.0,
        )
    )
    await asyncio.sleep(3.0)
    dropped = await gen.drop()
    reconnected = await gen.reconnect(
        targets,
        inflight=scale.storm_inflight,
        recover_timeout_secs=max(60.0, scale.storm_secs),
    )
    published = await posting
    acked: dict[str, list[int]] = published["acked"]
    expected = sum(len(s) * layout.audience[c] for c, s in acked.items())
    await _drain(gen, STORM_STEP, expected, 10.0)
    after = await _snapshot(ctx, servers)
    check = (await gen.check({STORM_STEP: acked}))[STORM_STEP]
    recovered = reconnected["recovered_ms"]
    result = {
        "clients": dropped["dropped"],
        "posts_per_sec": scale.storm_posts_per_sec,
        "posts_sent": published["sent"],
        "posts_acked": sum(len(s) for s in acked.values()),
        "post_errors": published["errors"],
        # Posts with no answer at all within the limit: their messages are
        # not counted as expected, so these must be zero for "lost" to mean
        # anything.
        "posts_unanswered": published["unanswered"],
        "reconnected": reconnected["connected"],
        "reconnect_failures": reconnected["failures"],
        "retries": reconnected["retries"],
        "reconnect_secs": reconnected["elapsed_secs"],
        "ready_ms": _ms([v * 1000 for v in reconnected["ready_ms"]]),
        "recovered_ms": _ms([v * 1000 for v in recovered]),
        "all_recovered_secs": max(recovered) / 1000 if recovered else None,
        "not_recovered": reconnected["not_recovered"],
        "usage": _usage(before, after),
        **check,
    }
    logger.info(
        "storm: %d clients, all recovered in %s s, lost %d, duplicated %d",
        result["clients"],
        result["all_recovered_secs"],
        check["lost"],
        check["duplicated"],
    )
    return result


# --- scenario 3: durable posts ------------------------------------------------


async def durable(ctx: Context, label: str) -> dict[str, Any]:
    """Posts stored, acknowledged and fanned out: one process, with Redis."""
    scale = ctx.scale
    server, target = await _start(ctx, "tickmark", label, redis=True)
    layout = fanout_layout(
        ctx,
        "durable",
        channels=scale.durable_channels,
        per_channel=scale.durable_per_channel,
        bill=2,
        tickmark=True,
        online_recipient=True,
    )
    result: dict[str, Any] = {
        "label": label,
        "channels": len(layout.plan),
        "fanout": layout.fanout,
    }
    try:
        answer = await ctx.generator.connect(
            [target], layout.specs, inflight=scale.connect_inflight
        )
        result["connect"] = {
            "connected": answer["connected"],
            "failures": answer["failures"],
        }
        tokens: list[str | None] = [
            p.token for p in ctx.world.posters[: layout.posters]
        ]
        await ctx.generator.posters([target], tokens, ctx.run_tag)
        rates = tuple(r * layout.fanout for r in scale.durable_posts_per_sec)
        result["warm_up_secs"] = await _warm_up(ctx, [server], layout, rates[0])
        steps = await _ladder(ctx, label, [server], layout, rates)
        result["steps"] = steps
        sustained = [s for s in steps if s.get("sustained")]
        result["durable_posts_per_sec"] = max(
            (s["posts_per_sec"] for s in sustained), default=0.0
        )
        result["best_acked_per_sec"] = max(
            (s["acked"] / scale.step_secs for s in steps), default=0.0
        )
    finally:
        result.update(await _finish(ctx, [server]))
    return result
