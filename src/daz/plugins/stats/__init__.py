"""stats: per-plugin counters in ``daz_plugin_stats`` and on /metrics.

Every ``interval_seconds`` (and at shutdown) it reads the bus subscriptions (each one knows its
owner plugin, events handled, errors and time spent) and adds what happened since the last write
to the plugin's row, so the table keeps lifetime totals across restarts and across several daz
processes on one database (the Go bot never wrote ``events_processed``/``events_failed``;
docs/upgrading-from-go.md). ``retries_*`` are counted by the retry-queue trigger;
``handle_seconds`` (daz's column) is the time spent, so the average is
``handle_seconds / events_processed``.

Each write is exactly once: this process's absolute totals go into ``daz_plugin_stats_runs``
and only the difference from what that table held is added, in the same transaction. A write
that failed, or whose commit reply was lost, is simply repeated.

It also keeps ``daz_plugin_events_total`` and ``daz_plugin_handle_seconds_avg`` current.

Config: ``plugins.stats`` in docs/config.md.
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from daz.plugins.base import Plugin, PluginConfig, every


class StatsConfig(PluginConfig):
    interval_seconds: float = Field(60.0, gt=0, description="Seconds between two writes to "
                                    "daz_plugin_stats")
    # A plugin is unsubscribed before our teardown runs, and its counters are only found at
    # shutdown if we noted its subscription earlier.
    snapshot_seconds: float = Field(1.0, gt=0, description="Seconds between two looks at the "
                                    "bus's subscriptions")
    run_retention_days: int = Field(30, ge=1, description="Rows of finished daz processes in "
                                    "daz_plugin_stats_runs are kept this long")


@dataclass
class Totals:
    handled: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def average(self) -> float:
        return self.seconds / self.handled if self.handled else 0.0


class Stats(Plugin[StatsConfig]):
    name = "stats"
    after = ("sql",)
    description = "Per-plugin event, error and timing figures in daz_plugin_stats and /metrics"

    async def setup(self) -> None:
        self.run_id = uuid.uuid4()
        self.written: dict[str, Totals] = {}  # what the table already has from this process
        self.published: dict[str, int] = {}  # what the Prometheus counter already has
        self.seen_subs: dict[int, Any] = {}
        self._lock = asyncio.Lock()

    async def teardown(self) -> None:
        await self.write()

    @every(config="snapshot_seconds")
    async def snapshot(self) -> None:
        self.note_subscriptions()

    @every(config="interval_seconds")
    async def write_timer(self) -> None:
        await self.write()  # what it could not write, the next run adds

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
        # Job and setup failures are counted there, not on any subscription.
        for name, t in out.items():
            counted = self.ctx.metrics.handler_error_counts.get(name, 0)
            if counted > t.errors:
                t.errors = counted
        return out

    def update_metrics(self, totals: dict[str, Totals]) -> None:
        metrics = self.ctx.metrics
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
            rows = []
            for name, t in totals.items():
                old = self.written.get(name)
                if old is None or (t.handled, t.errors) != (old.handled, old.errors):
                    rows.append((name[:100], t.handled, t.errors, t.seconds))
            if not rows:
                return 0
            async with self.ctx.db.acquire() as conn:
                await store_totals(conn, self.run_id, rows, self.config.run_retention_days)
            self.written = {name: Totals(t.handled, t.errors, t.seconds)
                            for name, t in totals.items()}
            return len(rows)


async def store_totals(conn, run_id: uuid.UUID, rows: list[tuple[str, int, int, float]],
                       retention_days: int = 30) -> None:
    """Record this run's absolute totals and add their growth to the lifetime rows."""
    async with conn.transaction():
        # prev sees the run's row as it was before this statement; run then replaces it.
        await conn.executemany(
            "WITH prev AS (SELECT events_processed AS h, events_failed AS e, handle_seconds AS s"
            "   FROM daz_plugin_stats_runs WHERE run_id = $1 AND plugin_name = $2),"
            " run AS (INSERT INTO daz_plugin_stats_runs (run_id, plugin_name, events_processed,"
            "   events_failed, handle_seconds, updated_at) VALUES ($1, $2, $3, $4, $5, now())"
            "   ON CONFLICT (run_id, plugin_name) DO UPDATE SET"
            "   events_processed = EXCLUDED.events_processed,"
            "   events_failed = EXCLUDED.events_failed,"
            "   handle_seconds = EXCLUDED.handle_seconds, updated_at = now())"
            " INSERT INTO daz_plugin_stats AS p (plugin_name, events_processed, events_failed,"
            "   handle_seconds)"
            " SELECT $2, $3 - coalesce(max(prev.h), 0), $4 - coalesce(max(prev.e), 0),"
            "   $5 - coalesce(max(prev.s), 0) FROM prev"
            " ON CONFLICT (plugin_name) DO UPDATE SET"
            "   events_processed = coalesce(p.events_processed, 0) + EXCLUDED.events_processed,"
            "   events_failed = coalesce(p.events_failed, 0) + EXCLUDED.events_failed,"
            "   handle_seconds = coalesce(p.handle_seconds, 0) + EXCLUDED.handle_seconds,"
            "   updated_at = now()", [(run_id, *row) for row in rows])
        await conn.execute("DELETE FROM daz_plugin_stats_runs"
                           " WHERE updated_at < now() - make_interval(days => $1)",
                           retention_days)
