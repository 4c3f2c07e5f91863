"""Do two runs agree? ``python -m bench.compare RUN1/results.json RUN2/results.json``.

Prints a Markdown table of the headline figures of both runs side by
side, with the second as a ratio of the first.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.report import COMPARE_AT, _by_label, _cost_at, _step_at, _table


__all__ = ["headline", "main"]

Figure = Callable[[dict[str, dict[str, Any]]], float | None]


def _idle(label: str, key: str) -> Figure:
    def get(s: dict[str, dict[str, Any]]) -> float | None:
        scenario = s.get(label)
        return None if scenario is None else float(scenario["ladder"][-1][key])

    return get


def _cost(label: str) -> Figure:
    return lambda s: _cost_at(s.get(label), COMPARE_AT)


def _p99(label: str) -> Figure:
    def get(s: dict[str, dict[str, Any]]) -> float | None:
        step = _step_at(s.get(label), COMPARE_AT)
        return None if step is None else float(step["latency_ms"]["p99"])

    return get


def _field(label: str, *keys: str) -> Figure:
    def get(s: dict[str, dict[str, Any]]) -> float | None:
        value: Any = s.get(label)
        for key in keys:
            if value is None:
                return None
            value = value.get(key)
        return None if value is None else float(value)

    return get


FIGURES: list[tuple[str, Figure]] = [
    ("idle RSS/conn KiB, reference", _idle("idle-reference", "rss_per_connection_kib")),
    ("idle RSS/conn KiB, Tickmark", _idle("idle-tickmark", "rss_per_connection_kib")),
    (
        "idle RSS/conn KiB, Tickmark, deflate",
        _idle("idle-tickmark-deflate", "rss_per_connection_kib"),
    ),
    ("connects/s, Tickmark", _idle("idle-tickmark", "connects_per_sec")),
    ("connects/s, reference", _idle("idle-reference", "connects_per_sec")),
    ("f1000 µs/delivery @10k, reference", _cost("f1000-reference")),
    ("f1000 µs/delivery @10k, Tickmark", _cost("f1000-tickmark")),
    ("f1000 µs/delivery @10k, Tickmark + Redis", _cost("f1000-tickmark-redis-x1")),
    ("f1000 µs/delivery @10k, 2 processes", _cost("f1000-tickmark-redis-x2")),
    ("f50 µs/delivery @10k, reference", _cost("f50-reference")),
    ("f50 µs/delivery @10k, Tickmark", _cost("f50-tickmark")),
    ("f50 µs/delivery @10k, Tickmark + Redis", _cost("f50-tickmark-redis-x1")),
    ("f50 µs/delivery @10k, 2 processes", _cost("f50-tickmark-redis-x2")),
    ("f1000 p99 ms @10k, reference", _p99("f1000-reference")),
    ("f1000 p99 ms @10k, Tickmark", _p99("f1000-tickmark")),
    ("f50 p99 ms @10k, reference", _p99("f50-reference")),
    ("f50 p99 ms @10k, Tickmark", _p99("f50-tickmark")),
    ("f1000 knee, reference", _field("f1000-reference", "knee_deliveries_per_sec")),
    ("f1000 knee, Tickmark", _field("f1000-tickmark", "knee_deliveries_per_sec")),
    ("f50 knee, reference", _field("f50-reference", "knee_deliveries_per_sec")),
    ("f50 knee, Tickmark", _field("f50-tickmark", "knee_deliveries_per_sec")),
    ("durable posts/s sustained", _field("durable", "durable_posts_per_sec")),
    ("durable best acked/s", _field("durable", "best_acked_per_sec")),
    (
        "storm: all recovered, s",
        _field("f50-tickmark", "storm", "all_recovered_secs"),
    ),
    ("storm: lost", _field("f50-tickmark", "storm", "lost")),
]


def headline(results: dict[str, Any]) -> dict[str, float | None]:
    """The figures of :data:`FIGURES` for one run."""
    labels = _by_label(results)
    return {name: get(labels) for name, get in FIGURES}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare")
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args()
    first = headline(json.loads(args.first.read_text()))
    second = headline(json.loads(args.second.read_text()))
    rows = []
    for name in first:
        a, b = first[name], second[name]
        ratio = "–" if not a or b is None else f"{b / a:.2f}"
        rows.append(
            [
                name,
                "–" if a is None else f"{a:,.1f}",
                "–" if b is None else f"{b:,.1f}",
                ratio,
            ]
        )
    print("\n".join(_table(["figure", "run 1", "run 2", "run 2 / run 1"], rows)))


if __name__ == "__main__":
    main()
