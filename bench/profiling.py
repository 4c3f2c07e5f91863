"""Sampling the server with py-spy during a step, and reading the samples.

py-spy runs beside the server (pinned to the generator's core) in
non-blocking mode, so the server is never paused; the samples are kept as
collapsed stacks, one ``frame;frame;... count`` line per distinct stack,
and summarised two ways: where the time is spent (the innermost frame, or
"self" time) and under which of Tickmark's functions (inclusive time).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.processes import REPO_ROOT


__all__ = ["record", "summarise"]

logger = logging.getLogger(__name__)

# Samples per second: enough for a 5-second step, light on the server.
_RATE_PER_SEC = 200
# py-spy writes "name (path:line)"; the line number is dropped to group.
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<path>[^:()]*)(?::\d+)?\)$")


def _py_spy() -> str | None:
    # Installed by the ``bench`` extra beside this Python, which need not
    # be on PATH (``make bench`` runs .venv/bin/python directly).
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


async def record(
    pid: int, duration_secs: float, output: Path, cpus: str | None
) -> Path | None:
    """Sample ``pid`` for ``duration_secs``; None when py-spy is missing.

    Raises:
        RuntimeError: py-spy failed (for example, not allowed to ptrace).

    """
    binary = _py_spy()
    if binary is None:
        logger.warning("py-spy not found: pip install -e '.[bench]'")
        return None
    argv = [
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(round(duration_secs)),
    ]
    argv += ["--rate", str(_RATE_PER_SEC), "--format", "raw", "--output", str(output)]
    if os.environ.get("BENCH_PYSPY_NATIVE"):
        # C frames too (the garbage collector, zlib, the kernel boundary);
        # py-spy then pauses the server for each sample.
        argv.append("--native")
    else:
        argv.append("--nonblocking")
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"py-spy failed: {stderr.decode(errors='replace')[-500:]}")
    return output


def _short(frame: str) -> str:
    found = _FRAME.match(frame.strip())
    if found is None:
        return frame.strip()
    path = found["path"]
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO_ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{found['name']} ({path})"


def summarise(collapsed: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive shares of the top functions in a py-spy recording."""
    self_time: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    idle = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [_short(f) for f in stack.split(";") if f]
        total += count
        if frames and frames[-1].startswith(("EpollSelector.select ", "select ")):
            idle += count  # waiting in epoll: the loop had nothing to do
        if frames:
            self_time[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    busy = total - idle

    def shares(counter: Counter[str]) -> list[tuple[str, float]]:
        # Shares of the busy samples: what the loop spent its work on.
        return [
            (name, n / busy)
            for name, n in counter.most_common(top + 1)
            if not name.startswith(("EpollSelector.select ", "select "))
        ][:top]

    return {
        "samples": total,
        "idle_share": idle / total if total else 0.0,
        "self": shares(self_time) if busy else [],
        "inclusive": shares(inclusive) if busy else [],
    }
