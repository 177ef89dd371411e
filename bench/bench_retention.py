"""Retention on a big history while a bot writes: how fast the prune goes, how long writers wait.

A database gets the synthetic history of tests/history_data.py (``--scale``; at 1: 1.4 M
mediaUpdate events among 5 M core events, 300 k gallery health checks, three years). Then the
default retention (mediaUpdate events 30 days, health checks 90 days) is applied the way the
running bot applies it, in batches, while a writer inserts a core event every 10 ms (each
insert timed).

    python bench/bench_retention.py --scale 0.2
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg

from bench.bench_online_migration import Writer
from bench.common import report, run, scratch_database, test_dsn
from daz.config import RetentionConfig
from daz.db import retention
from daz.db.migrate import migrate
from daz.db.pool import Database
from tests.history_data import END, fill


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.2)
    args = parser.parse_args()
    dsn = await scratch_database(test_dsn(), "daz_bench_retention")
    conn = await asyncpg.connect(dsn)
    await migrate(conn)
    await fill(conn, args.scale)
    events = await conn.fetchval("SELECT count(*) FROM daz_core_events")
    print(f"  history at scale {args.scale}: {events:,} core events", flush=True)
    db = Database(dsn, min_size=1, max_size=3, command_timeout=600)
    await db.start()
    settings = RetentionConfig()
    now = END.replace(tzinfo=UTC)  # the history's own "now"
    started = time.monotonic()
    dry = await retention.prune(db, settings, now=now, dry_run=True)
    counted = time.monotonic() - started
    for line in retention.describe(dry, dry_run=True):
        print("  " + line)
    writer = Writer(conn)
    writing = asyncio.create_task(writer.run())
    await asyncio.sleep(0.3)
    started = time.monotonic()
    done = await retention.prune(db, settings, now=now)
    took = time.monotonic() - started
    writer.stop.set()
    await writing
    removed = sum(o.rows for o in done)
    worst, p99 = writer.worst()
    report("retention: dry run (counting)", counted, "s", "")
    report("retention: rows removed", removed, "rows",
           f"{sum(o.rows for o in dry):,} counted by the dry run")
    report("retention: prune time", took, "s",
           f"{removed / took:,.0f} rows/s in batches of {settings.batch_size}")
    report("retention: writer worst wait during the prune", worst, "ms", "< 1000 ms")
    report("retention: writer p99 wait during the prune", p99, "ms", "")
    await db.close()
    await conn.close()


if __name__ == "__main__":
    run(main())
