"""Time limits in tests, scaled for slow machines.

Set TICKMARK_TEST_TIMING_FACTOR=3 on a loaded CI machine to give every
wait in the tests three times as long; nothing else changes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable


FACTOR = float(os.environ.get("TICKMARK_TEST_TIMING_FACTOR", "1"))


def secs(value: float) -> float:
    """A duration in seconds, scaled by the timing factor."""
    return value * FACTOR


async def eventually(
    check: Callable[[], object], *, within_secs: float, step_secs: float = 0.05
) -> None:
    """Wait until ``check()`` is truthy; fail after ``within_secs`` (scaled)."""
    deadline = asyncio.get_running_loop().time() + secs(within_secs)
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {secs(within_secs):.1f} s")
        await asyncio.sleep(step_secs)
