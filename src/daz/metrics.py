"""Prometheus metrics of one daz process.

Each App gets its own registry (two bots in one test process must not collide); /metrics
exposes it. Every metric declared here is updated somewhere: a declared metric nothing updates
would promise a figure that is never there.

Nothing here grows with rooms × anything (issue 13: at 1,000 rooms, per-room × per-event-type
series were 25,000 series and 0.8 s of CPU per scrape). Event types are counted for the whole
process; each room has a fixed handful of series, and those are not registry children at all:
the room counts in plain ints (``RoomCounts``, no lock per event) and /metrics writes the
room families from a snapshot taken on the event loop (``room_snapshot``, ``render``).
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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


# Distinct event-type labels in the process; a hostile server cannot blow up /metrics.
MAX_EVENT_TYPES = 200


@dataclass(slots=True)
class RoomCounts:
    """What one room counts, as plain ints: /metrics and /health read them."""

    events_received: int = 0
    chat_sent: int = 0
    pm_sent: int = 0
    outbox_dropped: int = 0

    def copy(self) -> RoomCounts:
        return RoomCounts(self.events_received, self.chat_sent, self.pm_sent,
                          self.outbox_dropped)


# One room's figures for /metrics: (room id, joined, reconnects, outbox depth, counts).
RoomRow = tuple[str, bool, int, int, RoomCounts]

# The per-room families /metrics shows: name, type, help, and which figure.
_ROOM_FAMILIES: tuple[tuple[str, str, str, Callable[[RoomRow], list[tuple[str, int]]]], ...] = (
    ("daz_room_connected", "gauge", "1 when the room is joined",
     lambda r: [("", 1 if r[1] else 0)]),
    ("daz_room_events_received_total", "counter",
     "CyTube events received in the room (all types; per type: daz_events_received_total)",
     lambda r: [("", r[4].events_received)]),
    ("daz_outbox_queue_depth", "gauge", "Messages waiting in a room's outbox",
     lambda r: [("", r[3])]),
    ("daz_outbox_sent_total", "counter", "Chat lines and PMs sent",
     lambda r: [(',kind="chat"', r[4].chat_sent), (',kind="pm"', r[4].pm_sent)]),
    ("daz_outbox_dropped_total", "counter",
     "Outgoing messages dropped (queue full while offline, or refused)",
     lambda r: [("", r[4].outbox_dropped)]),
    ("daz_reconnects_total", "counter", "Reconnect attempts", lambda r: [("", r[2])]),
)


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_rooms(rows: Iterable[RoomRow]) -> str:
    """The per-room families in Prometheus' text format (what generate_latest writes for a
    labelled series, without the ``_created`` samples)."""
    rows = list(rows)
    out: list[str] = []
    for name, kind, help_text, figures in _ROOM_FAMILIES:
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        for row in rows:
            room = _label_value(row[0])
            for extra, value in figures(row):
                out.append(f'{name}{{room="{room}"{extra}}} {value}\n')
    return "".join(out)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.events_received = Counter("daz_events_received_total",
                                       "CyTube events received, per type, in all rooms",
                                       ["type"], registry=r)
        self._event_counters: dict[str, Any] = {}
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

    def count_event(self, kind: str) -> Any:
        """The counter of one event type (to ``inc()``), "other" past ``MAX_EVENT_TYPES``
        distinct types; callers keep what it returns rather than look it up per event."""
        counter = self._event_counters.get(kind)
        if counter is None:
            if len(self._event_counters) >= MAX_EVENT_TYPES:
                counter = self._event_counters.get("other")
                if counter is None:
                    counter = self._event_counters["other"] = \
                        self.events_received.labels(type="other")
                return counter
            counter = self._event_counters[kind] = self.events_received.labels(type=kind)
        return counter

    @staticmethod
    def room_snapshot(rooms: Iterable[Any]) -> list[RoomRow]:
        """Each room's figures, read on the event loop (where they change) for ``render``."""
        return [room.metric_row() for room in rooms]

    def render(self, rooms: Iterable[RoomRow] = ()) -> bytes:
        """The registry's series and the rooms' (from ``room_snapshot``); safe in a thread."""
        return generate_latest(self.registry) + render_rooms(rooms).encode()
