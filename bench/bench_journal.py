"""The journal: what an outage costs the event log. Events arrive while the database is away
(they go to the journal: encoded, checksummed, fsynced in groups), then the next start, with the
database back, replays them into daz_core_events and its side tables. Also the journal alone:
append (with fsync) and read-back rates of event-log-sized records.

Lost and duplicated events must be 0: every event is counted in the table by its event_uid.
"""
from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench.bench_eventlog import CHANNEL, frames
from bench.common import Timer, report, run, scratch_database, sized, test_dsn
from daz.cytube.events import parse_event
from daz.db.migrate import migrate
from daz.db.pool import Database
from daz.journal import stream_at
from daz.plugins.sql.eventlog import EventLog
from daz.plugins.sql.rules import Router, entry_for_event

EVENTS = sized(40_000, 4_000)
RECORDS = sized(100_000, 10_000)


def entries(n: int) -> list:
    router = Router(None)
    out = []
    for i, (name, payload) in enumerate(frames(n)):
        event = parse_event(name, payload, room_id=CHANNEL, channel=CHANNEL, seq=i)
        out.append(entry_for_event(event, router.tables("cytube.event." + name), None))
    return out


async def journal_alone(path: Path, texts: list[str]) -> tuple[float, float]:
    """Records/s appended (fsync every 1,000, as the event log's groups) and read back."""
    stream = stream_at(path)
    with Timer() as t:
        for i, text in enumerate(texts):
            stream.append(text)
            if i % 1000 == 999:
                await stream.flush()
        await stream.flush()
    appended = len(texts) / t.seconds
    with Timer() as t:
        read = 0
        while batch := stream.read(4096):
            read += len(batch)
            stream.consume(batch[-1].end, len(batch))
    assert read == len(texts)
    return appended, read / t.seconds


async def outage(dsn: str, data: Path, batch: list) -> tuple[float, float, int, int]:
    """Events/s into the journal while the database is away, then replayed after a restart."""
    path = data / "eventlog.journal"
    down = Database(dsn)  # never started: every write fails as "not connected"
    log = EventLog(down, journal=stream_at(path), batch_size=256, max_queue=256,
                   flush_interval=0.2, retry_max_delay=0.05)
    await log.start()
    with Timer() as t:
        for entry in batch:
            log.put(entry)
        await log.close()  # what waits in memory goes to the head of the file
    spilled = len(batch) / t.seconds
    db = Database(dsn, max_size=4)
    await db.start()
    try:
        again = EventLog(db, journal=stream_at(path), batch_size=256, flush_interval=0.2)
        with Timer() as t:
            await again.start()
            assert await again.wait_idle(600)
        replayed = len(batch) / t.seconds
        await again.close()
        rows = await db.fetchval("SELECT count(*) FROM daz_core_events")
        distinct = await db.fetchval("SELECT count(DISTINCT event_uid) FROM daz_core_events")
    finally:
        await db.close()
    return spilled, replayed, len(batch) - distinct, rows - distinct


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    batch = entries(EVENTS)
    texts = [e.to_json() for e in batch[:RECORDS]]
    texts = (texts * (RECORDS // len(texts) + 1))[:RECORDS]
    print(f"  {RECORDS:,} records of the event log's size"
          f" ({sum(map(len, texts)) // len(texts)} bytes on average); {EVENTS:,} events")
    with tempfile.TemporaryDirectory() as tmp:
        appended, read = await journal_alone(Path(tmp) / "alone.journal", texts)
    report("journal: append + fsync every 1,000", appended, "records/s", "the flusher's thread")
    report("journal: read back, checksums checked", read, "records/s", "replay's reading")
    dsn = await scratch_database(test_dsn(), "daz_bench_journal")
    db = Database(dsn)
    await db.start()
    await migrate(db.pool)
    await db.close()
    with tempfile.TemporaryDirectory() as tmp:
        spilled, replayed, lost, doubled = await outage(dsn, Path(tmp), batch)
    report("outage: events into the journal", spilled, "events/s", "the database is away")
    report("outage: journal replayed into the tables", replayed, "events/s",
           "the next start, staged with ON CONFLICT")
    report("lost events (outage)", lost, "events", "must be 0")
    report("duplicated events (outage)", doubled, "events", "must be 0")


if __name__ == "__main__":
    run(main())
