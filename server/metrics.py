"""Prometheus metrics of one server process, served at ``GET /metrics``.

Gauges are read when scraped (connections, subscriptions, queues, broker
health); counters are kept where things happen. Each app gets a registry
of its own, so several apps in one process (as in tests) do not collide.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


if TYPE_CHECKING:
    from server.broker import Broker
    from server.live.hub import Hub

__all__ = ["Metrics"]


class Metrics:
    """The process's counters, and gauges read from the hub and broker."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.messages_published = Counter(
            "tickmark_messages_published",
            "Messages stored and announced by this process.",
            registry=self.registry,
        )
        self.deliveries = Counter(
            "tickmark_ws_deliveries",
            "Frames queued for subscribers of company and transaction channels.",
            registry=self.registry,
        )
        self.recoveries = Counter(
            "tickmark_ws_recoveries",
            "Gaps read back from PostgreSQL for a subscriber.",
            registry=self.registry,
        )
        self.slow_consumers = Counter(
            "tickmark_ws_slow_consumers",
            "Connections closed because the client did not read (4008).",
            registry=self.registry,
        )
        self.broker_resyncs = Counter(
            "tickmark_broker_resyncs",
            "Times the broker may have lost news and every channel re-read.",
            registry=self.registry,
        )
        self._connections = Gauge(
            "tickmark_ws_connections",
            "Open WebSocket connections.",
            registry=self.registry,
        )
        self._subscriptions = Gauge(
            "tickmark_ws_subscriptions",
            "Channel subscriptions of open connections.",
            registry=self.registry,
        )
        self._queued = Gauge(
            "tickmark_ws_queued_frames",
            "Frames waiting to be written to clients, all connections.",
            registry=self.registry,
        )
        self._broker_up = Gauge(
            "tickmark_broker_up",
            "1 while the broker reaches the other processes, else 0.",
            registry=self.registry,
        )
        self._gc_pauses = Histogram(
            "tickmark_gc_full_pause_seconds",
            "Full garbage collections of this process, by how long each stopped it.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )

    def watch_garbage_collector(self) -> Callable[[], None]:
        """Time the process's full garbage collections until told to stop.

        A full pass stops everything in the process while it walks every
        object the open sockets keep, so its length is latency that every
        client waiting then sees (docs/operations.md). Returns the function
        that stops the timing.
        """
        started = 0.0

        def on_collection(phase: str, info: dict[str, Any]) -> None:
            nonlocal started
            if info["generation"] != 2:
                return
            if phase == "start":
                started = time.perf_counter()
            else:
                self._gc_pauses.observe(time.perf_counter() - started)

        gc.callbacks.append(on_collection)
        return lambda: gc.callbacks.remove(on_collection)

    def watch(self, hub: Hub, broker: Broker) -> None:
        """Read the gauges from the hub and broker at each scrape."""
        self._connections.set_function(lambda: hub.connection_count())
        self._subscriptions.set_function(
            lambda: sum(len(c.subscriptions) for c in hub.connections())
        )
        self._queued.set_function(lambda: sum(c.queued for c in hub.connections()))
        self._broker_up.set_function(lambda: 1.0 if broker.healthy else 0.0)

    def render(self) -> bytes:
        """The metrics in the Prometheus text format."""
        return generate_latest(self.registry)
