"""A 4,000-item playlist on join: from the frame to the mirror and library rows committed.

The whole path as the bot runs it: the ``playlist`` frame parsed, applied to ``RoomState``,
published on the bus, and mediatracker writing ``daz_mediatracker_queue`` (DELETE + COPY) and
the new media into ``daz_mediatracker_library`` in one transaction. Target: under 2 s (Go Daz
paced the same ingest at 20 rows per 150 ms: about 30 s for 4,000 items).
"""
from __future__ import annotations

import logging
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench.common import (
    Timer,
    report,
    run,
    scratch_database,
    sized,
    test_dsn,
)
from daz.bus import Bus
from daz.clock import Clock
from daz.config import load_config
from daz.cytube.events import parse_event
from daz.cytube.rooms import Rooms
from daz.db.migrate import migrate
from daz.db.pool import Database
from daz.metrics import Metrics
from daz.plugins.manager import PluginManager, plugin_class
from tests.fakes.room import RecordingRoom

ITEMS = sized(4000, 1000)
ROUNDS = sized(5, 2)


def playlist(seed: int) -> list[dict]:
    return [{"media": {"id": f"vid{seed}_{i % 3700}", "title": f"Some video title number {i}",
                       "seconds": 180 + i % 600, "duration": "03:00", "type": "yt", "meta": {}},
             "uid": seed * 10_000 + i, "temp": False, "queueby": f"user{i % 40}"}
            for i in range(ITEMS)]


async def bare_copy_ms(db: Database) -> float:
    """One COPY of ITEMS mirror rows (no parsing, no bus, no library), then undone."""
    from datetime import UTC, datetime

    now = datetime.now(UTC).replace(tzinfo=None)  # naive UTC, as the Go schema stores it
    records = [("copychan", i, str(90_000 + i), f"vid_copy_{i}", "yt",
                f"Some video title number {i}", 180, "someone", now) for i in range(ITEMS)]
    async with db.pool.acquire() as conn:
        with Timer() as t:
            await conn.copy_records_to_table(
                "daz_mediatracker_queue", records=records,
                columns=("channel", "position", "uid", "media_id", "media_type", "title",
                         "duration", "queued_by", "queued_at"))
        await conn.execute("DELETE FROM daz_mediatracker_queue WHERE channel = 'copychan'")
    return t.seconds * 1000


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    dsn = await scratch_database(test_dsn(), "daz_bench_playlist")
    db = Database(dsn, max_size=4)
    await db.start()
    await migrate(db.pool)
    config = load_config(None, env={}, overrides={"channel": "benchchan"})
    room = RecordingRoom(room_id="benchchan", channel="benchchan", bot_name="dazbot")
    bus = Bus()
    manager = PluginManager(config=config, bus=bus, rooms=Rooms([room]), db=db, http=None,
                            clock=Clock(), metrics=Metrics(), data_dir=None)
    await manager.start(manager.select({"mediatracker": plugin_class("mediatracker")}))
    print(f"  {ITEMS} items per playlist; first round: empty mirror; later rounds: a new"
          " playlist replacing the old one (e.g. after a reload)")
    times = []
    for r in range(ROUNDS):
        payload = playlist(r)
        with Timer() as t:
            event = parse_event("playlist", payload, room_id=room.id, channel=room.channel)
            room.state.apply(event)
            await bus.publish(event)
            await bus.drain(120)
        rows = await db.fetchval("SELECT count(*) FROM daz_mediatracker_queue")
        assert rows == ITEMS, rows
        times.append(t.seconds)
        print(f"  round {r + 1}: {t.seconds * 1000:,.0f} ms")
    floor = await bare_copy_ms(db)
    report(f"bare COPY of {ITEMS:,} rows into daz_mediatracker_queue", floor, "ms",
           "database floor for the mirror alone, same run")
    report(f"playlist {ITEMS:,} items, join (empty mirror)", times[0] * 1000, "ms",
           "target < 2,000")
    report(f"playlist {ITEMS:,} items, replace (median)", statistics.median(times[1:]) * 1000,
           "ms", "target < 2,000")
    library = await db.fetchval("SELECT count(*) FROM daz_mediatracker_library")
    print(f"  library rows: {library:,} (distinct media, counted once)")
    await manager.stop()
    await bus.close()
    await db.close()


if __name__ == "__main__":
    run(main())
