"""One run of the whole suite: set up, run every scenario, write the results.

The order keeps each server's figures independent: every scenario starts
its own server processes and closes every connection before the next.
The reference runs right beside Tickmark in each scenario, so both see
the same machine at (nearly) the same time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import platform
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.generator import Generator
from bench.processes import REPO_ROOT, start_redis
from bench.scenarios import Context, Scale
from bench.world import build_world, recreate_database


__all__ = ["SCENARIOS", "migrate", "run_suite"]

logger = logging.getLogger("bench")

#: Scenario groups that ``--only`` may name.
SCENARIOS = ("idle", "fanout", "redis", "durable")


def _git(*args: str) -> str:
    try:
        return subprocess.run(  # noqa: S603
            ["git", *args],  # noqa: S607
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ""


def _environment() -> dict[str, Any]:
    dirty = [
        line[3:]
        for line in _git("status", "--porcelain", "--", "server").splitlines()
        if line
    ]
    return {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD").strip() or "unknown",
        "server_files_changed_since_commit": dirty,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "websockets": metadata.version("websockets"),
        "uvicorn": metadata.version("uvicorn"),
        "starlette": metadata.version("starlette"),
        "loadavg_at_start": os.getloadavg(),
    }


async def migrate(database_url: str) -> None:
    """Run ``tickmark migrate`` on a database."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "migrate",
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"tickmark migrate failed: {stderr.decode()[-1000:]}")


async def run_suite(
    *,
    scale: Scale,
    admin_url: str,
    database_name: str,
    out_dir: Path,
    only: tuple[str, ...],
    server_cpus: str | None,
    generator_cpus: str | None,
    profile: frozenset[str],
) -> dict[str, Any]:
    """Run the scenarios named in ``only``; return every figure."""
    started = time.monotonic()
    results: dict[str, Any] = {"environment": _environment(), "scale": vars(scale)}
    database_url = admin_url.rsplit("/", 1)[0] + "/" + database_name

    logger.info("setting up database %s", database_name)
    await recreate_database(admin_url, database_name)
    await migrate(database_url)
    world = await build_world(
        database_url,
        companies_count=scale.companies,
        clients_count=scale.clients,
        posters_count=scale.posters,
        big_channel=scale.big_channel,
    )
    logger.info("world ready in %.1f s", world.setup_secs)
    results["setup_secs"] = world.setup_secs

    if generator_cpus is not None:
        os.sched_setaffinity(0, {int(c) for c in generator_cpus.split(",")})
    redis, redis_port = await start_redis(out_dir, generator_cpus)
    generator = await Generator.start(scale.subscriber_workers, generator_cpus)
    ctx = Context(
        scale=scale,
        world=world,
        generator=generator,
        database_url=database_url,
        database_name=database_name,
        redis=redis,
        redis_url=f"redis://127.0.0.1:{redis_port}/0",
        log_dir=out_dir,
        server_cpus=server_cpus,
        generator_cpus=generator_cpus,
        run_tag=secrets.token_hex(4),
        profile=profile,
    )
    plan: list[tuple[str, str, Callable[[], Awaitable[dict[str, Any]]]]] = []
    if "idle" in only:
        for kind in ("reference", "tickmark"):
            for deflate in (False, True):
                label = f"idle-{kind}" + ("-deflate" if deflate else "")
                plan.append(("idle", label, _idle(ctx, label, kind, deflate)))
    if "fanout" in only:
        for shape in ("f1000", "f50"):
            for kind in ("reference", "tickmark"):
                label = f"{shape}-{kind}"
                storm = kind == "tickmark" and shape == "f50"
                plan.append(
                    ("fanout", label, _fanout(ctx, label, kind, shape, storm=storm))
                )
    if "redis" in only:
        for shape in ("f1000", "f50"):
            for processes in (1, 2):
                label = f"{shape}-tickmark-redis-x{processes}"
                plan.append(
                    (
                        "redis",
                        label,
                        _fanout(
                            ctx,
                            label,
                            "tickmark",
                            shape,
                            processes=processes,
                            redis=True,
                            rates=scale.redis_deliveries_per_sec,
                        ),
                    )
                )
    if "durable" in only:
        plan.append(("durable", "durable", lambda: scenarios.durable(ctx, "durable")))

    try:
        for group, label, run in plan:
            logger.info("scenario %s", label)
            scenario_started = time.monotonic()
            try:
                figures = await run()
            except Exception as error:
                logger.exception("scenario %s failed", label)
                figures = {"label": label, "error": f"{type(error).__name__}: {error}"}
            figures["secs"] = time.monotonic() - scenario_started
            results.setdefault(group, []).append(figures)
            _save(out_dir, results)
    finally:
        await generator.stop()
        await redis.stop()
    results["profiles"] = ctx.profiles
    results["total_secs"] = time.monotonic() - started
    _save(out_dir, results)
    return results


def _idle(
    ctx: Context, label: str, kind: str, deflate: bool
) -> Callable[[], Awaitable[dict[str, Any]]]:
    return lambda: scenarios.idle(ctx, label, kind, deflate=deflate)


def _fanout(
    ctx: Context,
    label: str,
    kind: str,
    shape: str,
    *,
    processes: int = 1,
    redis: bool = False,
    rates: tuple[int, ...] | None = None,
    storm: bool = False,
) -> Callable[[], Awaitable[dict[str, Any]]]:
    return lambda: scenarios.fanout(
        ctx,
        label,
        kind,
        shape,
        processes=processes,
        redis=redis,
        deliveries_per_sec=rates,
        storm=storm,
    )


def _save(out_dir: Path, results: dict[str, Any]) -> None:
    path = out_dir / "results.json"
    path.write_text(json.dumps(results, indent=1, default=str))
