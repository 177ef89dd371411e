"""Prometheus metrics of one daz process.

Each App gets its own registry (two bots in one test process must not collide); /metrics
exposes it. Every metric declared here is updated somewhere: a declared metric nothing updates
would promise a figure that is never there.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_OWN_SERIES: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Any]] = \
    weakref.WeakKeyDictionary()


def own_series(metrics: Any, name: str, build: Callable[[CollectorRegistry], Any]) -> Any:
    """Series that a part of daz declares itself (``build(registry)``), on the app's registry,
    or on a registry of their own without one. Built once per registry and ``name``: a plugin
    restarted in the same process gets the same series back, where a second registration of
    the same metric names would be refused."""
    registry = metrics.registry if metrics is not None else CollectorRegistry()
    built = _OWN_SERIES.setdefault(registry, {})
    found = built.get(name)
    if found is None:
        found = built[name] = build(registry)
    return found


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events_received = Counter("daz_events_received_total", "CyTube events received",
                                       ["room", "type"], registry=r)
        self.events_dropped = Counter("daz_events_dropped_total",
                                      "Events a bus subscriber dropped because it fell behind",
                                      ["subscriber"], registry=r)
        self.handler_error_counts: dict[str, int] = {}
        self.handler_errors = Counter("daz_handler_errors_total",
                                      "Plugin handler calls that raised or timed out",
                                      ["plugin"], registry=r)
        self.handler_slow = Counter("daz_handler_slow_total",
                                    "Plugin handler calls that ran past the slow threshold",
                                    ["plugin"], registry=r)
        self.outbox_depth = Gauge("daz_outbox_queue_depth", "Messages waiting in a room's outbox",
                                  ["room"], registry=r)
        self.outbox_sent = Counter("daz_outbox_sent_total", "Chat lines and PMs sent",
                                   ["room", "kind"], registry=r)
        self.outbox_dropped = Counter("daz_outbox_dropped_total",
                                      "Outgoing messages dropped (queue full while offline)",
                                      ["room"], registry=r)
        self.reconnects = Counter("daz_reconnects_total", "Reconnect attempts", ["room"],
                                  registry=r)
        self.room_connected = Gauge("daz_room_connected", "1 when the room is joined",
                                    ["room"], registry=r)
        self.room_held = Gauge("daz_room_held", "1 for each room this instance holds the lease of",
                               ["room", "instance"], registry=r)
        self.rooms_unheld = Gauge("daz_rooms_unheld",
                                  "Configured rooms no live instance holds", registry=r)
        self.lease_instances = Gauge("daz_instances_live",
                                     "daz instances alive on this database", registry=r)
        self.db_pool_size = Gauge("daz_db_pool_size", "Connections in the pool", registry=r)
        self.db_pool_idle = Gauge("daz_db_pool_idle", "Idle connections in the pool", registry=r)
        self.db_up = Gauge("daz_db_up", "1 when the database answers", registry=r)
        self.plugin_events = Counter("daz_plugin_events_total", "Events handled per plugin",
                                     ["plugin"], registry=r)
        self.plugin_retries = Counter("daz_plugin_retries_total",
                                      "Operations handed to the retry queue per plugin",
                                      ["plugin"], registry=r)
        self.plugin_handle_seconds = Gauge("daz_plugin_handle_seconds_avg",
                                           "Average handling time per event", ["plugin"],
                                           registry=r)
        self.commands = Counter("daz_commands_total", "Command attempts by outcome",
                                ["command", "outcome"], registry=r)
        self.command_latency = Histogram("daz_command_seconds", "Command handling time",
                                         registry=r,
                                         buckets=(.001, .0025, .005, .01, .025, .05, .1, .5, 1, 5))

    def count_handler_error(self, plugin: str) -> None:
        """One failed handler or timer call of ``plugin``. The count is also kept in a plain
        dict: reading it back through the registry rebuilds every series, which grows with
        rooms × event types and froze the loop for seconds at 1,000 rooms (issue 13)."""
        self.handler_errors.labels(plugin=plugin).inc()
        self.handler_error_counts[plugin] = self.handler_error_counts.get(plugin, 0) + 1

    def render(self) -> bytes:
        return generate_latest(self.registry)
