"""Prometheus metrics of one server process, served at ``GET /metrics``.

Gauges are read when scraped (connections, subscriptions, queues, broker
health); counters are kept where things happen. Each app gets a registry
of its own, so several apps in one process (as in tests) do not collide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


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
