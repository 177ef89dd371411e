"""stats: per-plugin counters in ``daz_plugin_stats`` and on /metrics.

Every ``interval_seconds`` (and at shutdown) it reads the bus subscriptions (each one knows its
owner plugin, events handled, errors and time spent) and adds what happened since the last write
to the plugin's row, so the table keeps lifetime totals across restarts and across several daz
processes on one database. In the Go bot ``events_processed``/``events_failed`` were never
written (reference daz-go-schema §5). ``retries_*`` are counted by the retry-queue trigger.

It also keeps ``daz_plugin_events_total`` and ``daz_plugin_handle_seconds_avg`` current.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from daz.plugins.base import Plugin, PluginConfig


class StatsConfig(PluginConfig):
    interval_seconds: float = Field(60.0, gt=0)
    # How often to note the bus's subscriptions: a plugin is unsubscribed before our teardown
    # runs, and its counters are only found at shutdown if we noted its subscription earlier.
    snapshot_seconds: float = Field(1.0, gt=0)


@dataclass
class Totals:
    handled: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def average(self) -> float:
        return self.seconds / self.handled if self.handled else 0.0


class Stats(Plugin):
    name = "stats"
    description = "Per-plugin event, error and timing figures in daz_plugin_stats and /metrics"
    Config = StatsConfig

    async def setup(self) -> None:
        self.written: dict[str, Totals] = {}  # what the table already has from this process
        self.published: dict[str, int] = {}  # what the Prometheus counter already has
        self.seen_subs: dict[int, Any] = {}
        self._lock = asyncio.Lock()
        self._loop = asyncio.create_task(self._every(), name="stats:write")

    async def teardown(self) -> None:
        self._loop.cancel()
        await asyncio.gather(self._loop, return_exceptions=True)
        await self.write()

    async def _every(self) -> None:
        loop = asyncio.get_running_loop()
        next_write = loop.time() + self.config.interval_seconds
        while True:
            await asyncio.sleep(self.config.snapshot_seconds)
            self.note_subscriptions()
            if loop.time() < next_write:
                continue
            next_write = loop.time() + self.config.interval_seconds
            try:
                await self.write()
            except Exception as exc:  # the next pass adds what this one could not
                self.log.warning("stats: could not write plugin stats: %s", exc)

    def note_subscriptions(self) -> None:
        for sub in self.ctx.bus.subscriptions():
            self.seen_subs.setdefault(id(sub), sub)

    def collect(self) -> dict[str, Totals]:
        """Totals per plugin over all its bus subscriptions, since this process started."""
        out: dict[str, Totals] = {}
        # Subscriptions stay in our list after they leave the bus: plugins stopped before us at
        # shutdown still have their last events counted.
        self.note_subscriptions()
        for sub in self.seen_subs.values():
            t = out.setdefault(sub.owner, Totals())
            t.handled += sub.handled
            t.errors += sub.errors
            t.seconds += sub.total_seconds
        metrics = self.ctx.metrics
        if metrics is not None:
            # Timer and setup failures are counted there, not on any subscription.
            for name, t in out.items():
                counted = metrics.registry.get_sample_value("daz_handler_errors_total",
                                                            {"plugin": name})
                if counted is not None and counted > t.errors:
                    t.errors = int(counted)
        return out

    def update_metrics(self, totals: dict[str, Totals]) -> None:
        metrics = self.ctx.metrics
        if metrics is None:
            return
        for name, t in totals.items():
            delta = t.handled - self.published.get(name, 0)
            if delta > 0:
                metrics.plugin_events.labels(plugin=name).inc(delta)
                self.published[name] = t.handled
            metrics.plugin_handle_seconds.labels(plugin=name).set(t.average)

    async def write(self) -> int:
        """Add the change since the last write to each plugin's row; returns rows touched."""
        async with self._lock:
            totals = self.collect()
            self.update_metrics(totals)
            if self.ctx.db is None:
                return 0
            rows = []
            for name, t in totals.items():
                old = self.written.get(name, Totals())
                d_handled, d_errors = t.handled - old.handled, t.errors - old.errors
                if d_handled or d_errors or name not in self.written:
                    rows.append((name[:100], d_handled, d_errors))
            if not rows:
                return 0
            async with self.ctx.db.pool.acquire() as conn:
                await conn.executemany(
                    "INSERT INTO daz_plugin_stats (plugin_name, events_processed, events_failed)"
                    " VALUES ($1, $2, $3)"
                    " ON CONFLICT (plugin_name) DO UPDATE SET"
                    " events_processed = coalesce(daz_plugin_stats.events_processed, 0)"
                    " + EXCLUDED.events_processed,"
                    " events_failed = coalesce(daz_plugin_stats.events_failed, 0)"
                    " + EXCLUDED.events_failed,"
                    " updated_at = now()", rows)
            self.written = {name: Totals(t.handled, t.errors, t.seconds)
                            for name, t in totals.items()}
            return len(rows)
