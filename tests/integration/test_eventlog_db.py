"""The event log writer against a real PostgreSQL: batches, dedup, the bad-row fallback, hostile
text, and the journal (nothing accepted is lost, nothing is written twice)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

from daz.db.pool import Database
from daz.journal import encode, read_records, stream_at
from daz.metrics import Metrics
from daz.plugins.sql.eventlog import EventLog
from daz.plugins.sql.eventrows import (
    ACTIVITY,
    CHAT,
    CORE,
    PRIVATE,
    LogEntry,
    chat_uid,
    clean_json,
    random_uid,
)
from tests.e2e.harness import wait_until
from tests.fakes.no_database import database_that_never_answers


def chat(i: int, *, user: str = "alice", channel: str = "chan", text: str | None = None,
         tables=(CORE, CHAT)) -> LogEntry:
    msg = text if text is not None else f"line {i}"
    return LogEntry.build(uid=chat_uid(channel, 1_700_000_000_000 + i, user, msg),
                          event_type="cytube.event.chatMsg", channel=channel,
                          timestamp=1_700_000_000 + i / 1000, tables=tables,
                          payload={"username": user, "msg": msg, "time": 1_700_000_000_000 + i},
                          username=user, message=msg, message_time=1_700_000_000_000 + i, rank=1)


def join(name: str) -> LogEntry:
    return LogEntry.build(uid=random_uid(), event_type="cytube.event.addUser", channel="chan",
                          timestamp=time.time(), payload={"name": name, "rank": 1},
                          tables=(CORE, ACTIVITY), username=name, rank=1)


async def core_messages(db) -> list[str]:
    return [r["message"] for r in await db.fetch("SELECT message FROM daz_core_events ORDER BY id")]


async def test_a_full_batch_is_written_at_once_and_a_partial_one_on_close(database, tmp_path):
    log = EventLog(database, journal=stream_at(tmp_path / "eventlog.spill"), batch_size=10,
                   max_batch=10, flush_interval=3600)
    await log.start()
    for i in range(25):
        log.put(chat(i))
    await wait_until(lambda: log.counts["written"] >= 20, 10, "two full batches")
    await asyncio.sleep(0.2)  # the last 5 wait for a full batch or the (hour-long) interval
    assert await database.fetchval("SELECT count(*) FROM daz_core_events") == 20
    await log.close()
    assert await core_messages(database) == [f"line {i}" for i in range(25)]
    assert await database.fetchval("SELECT count(*) FROM daz_chat_log") == 25
    assert log.counts == {"queued": 25, "written": 25, "spilled": 0, "replayed": 0, "failed": 0}


async def test_the_flush_interval_writes_a_lone_event(database, tmp_path):
    log = EventLog(database, journal=stream_at(tmp_path / "s"), batch_size=64, flush_interval=0.05)
    await log.start()
    log.put(chat(1))
    assert await log.wait_idle(10)
    assert await core_messages(database) == ["line 1"]
    await log.close()


async def test_replayed_chat_and_go_era_rows_are_not_stored_twice(database, tmp_path):
    # A row the Go bot wrote (no event_uid) for the same line.
    await database.execute(
        "INSERT INTO daz_core_events (event_type, channel_name, timestamp, username, message,"
        " message_time, raw_data) VALUES ('cytube.event.chatMsg', 'chan', now(), 'alice',"
        " 'line 0', 1700000000000, '{}')")
    log = EventLog(database, journal=stream_at(tmp_path / "s"), batch_size=5, flush_interval=0.01)
    await log.start()
    for i in range(10):
        log.put(chat(i))
    assert await log.wait_idle(10)
    for i in range(10):  # the join replay sends them again: same key, same text, same uid
        log.put(chat(i))
    log.put(chat(3, user="bob"))  # same time, another sender: a different line
    await log.close()
    assert await database.fetchval("SELECT count(*) FROM daz_core_events") == 11
    # Line 0 was already logged (by Go, which never wrote daz_chat_log): the live line and its
    # replay are both replays of it, so daz_chat_log gets alice's other 9 lines, and bob's.
    assert await database.fetchval("SELECT count(*) FROM daz_chat_log") == 10
    assert await database.fetchval("SELECT count(*) FROM daz_chat_log"
                                   " WHERE message = 'line 0'") == 0
    assert log.duplicates == 11


async def test_two_lines_of_one_sender_in_one_millisecond_are_both_kept(database, tmp_path):
    # CyTube stamps chat with Date.now(): a burst can give one sender two lines in one ms.
    same_ms = [chat(1, text="first thought"), chat(1, text="second thought")]
    log = EventLog(database, journal=stream_at(tmp_path / "s"), batch_size=64, flush_interval=0.01)
    await log.start()
    for entry in same_ms:
        log.put(entry)
    assert await log.wait_idle(10)
    for entry in same_ms:  # the join replay: the same two lines again, one batch each
        log.put(chat(1, text=entry.message))
        assert await log.wait_idle(10)
    await log.close()
    for table in ("daz_core_events", "daz_chat_log"):
        rows = await database.fetch(f"SELECT message FROM {table} ORDER BY id")
        assert [r["message"] for r in rows] == ["first thought", "second thought"], table
    assert log.duplicates == 2 and log.counts["failed"] == 0


async def test_the_row_by_row_fallback_keeps_the_same_chat_rules(database, tmp_path):
    # A Go-era line (no event_uid), then a batch that must go row by row: the replay of the
    # Go line, two same-ms lines of one sender, and one bad row that forces the fallback.
    await database.execute(
        "INSERT INTO daz_core_events (event_type, channel_name, timestamp, username, message,"
        " message_time, raw_data) VALUES ('cytube.event.chatMsg', 'chan', now(), 'alice',"
        " 'line 0', 1700000000000, '{}')")
    bad = chat(9)
    bad.event_type = "x" * 80  # too wide for varchar(50): the batch is refused
    log = EventLog(database, journal=stream_at(tmp_path / "s"), batch_size=64, flush_interval=0.01)
    await log.start()
    for entry in (chat(0), chat(1, text="one"), chat(1, text="two"), chat(1, text="one"), bad):
        log.put(entry)
    await log.close()
    core = await database.fetch("SELECT message, event_uid FROM daz_core_events"
                                " WHERE message_time IS NOT NULL ORDER BY id")
    assert [r["message"] for r in core] == ["line 0", "one", "two"]
    assert core[0]["event_uid"] is None  # the Go row stays as it was
    chat_log = [r["message"] for r in await database.fetch(
        "SELECT message FROM daz_chat_log ORDER BY id")]
    assert chat_log == ["one", "two", "line 9"]  # the bad row's chat_log row is fine
    assert log.counts["failed"] == 1 and log.duplicates == 2


async def test_lines_logged_by_an_older_daz_are_not_logged_again(database, tmp_path):
    # An older daz derived the chat uid without the text: after the upgrade, the replay of a line
    # it logged has another uid. The natural key catches it in daz_core_events, and daz_chat_log
    # (which has no natural key) follows daz_core_events, so neither table gets it twice.
    old_uid = "11111111-2222-5333-8444-555555555555"
    await database.execute(
        "INSERT INTO daz_core_events (event_uid, event_type, channel_name, timestamp, username,"
        " message, message_time, raw_data) VALUES ($1, 'cytube.event.chatMsg', 'chan', now(),"
        " 'alice', 'line 0', 1700000000000, '{}')", old_uid)
    await database.execute(
        "INSERT INTO daz_chat_log (event_uid, username, message, channel, timestamp)"
        " VALUES ($1, 'alice', 'line 0', 'chan', now())", old_uid)
    log = EventLog(database, journal=stream_at(tmp_path / "s"), batch_size=64, flush_interval=0.01)
    await log.start()
    log.put(chat(0))
    log.put(chat(1))
    await log.close()
    for table in ("daz_core_events", "daz_chat_log"):
        rows = await database.fetch(f"SELECT message FROM {table} ORDER BY id")
        assert [r["message"] for r in rows] == ["line 0", "line 1"], table


async def test_a_bad_row_is_set_aside_and_its_batch_is_written(database, tmp_path, caplog):
    spill = tmp_path / "eventlog.spill"
    log = EventLog(database, journal=stream_at(spill), batch_size=50, flush_interval=0.01)
    await log.start()
    bad = chat(5)
    bad.event_type = "x" * 80  # bypasses the cleaning that build() does: too wide for varchar(50)
    with caplog.at_level(logging.WARNING, logger="daz.plugins.sql.eventlog"):
        for i in range(10):
            log.put(bad if i == 5 else chat(i))
        await log.close()
    assert await core_messages(database) == [f"line {i}" for i in range(10) if i != 5]
    assert log.counts["failed"] == 1 and log.counts["written"] == 9
    refusal = [r.getMessage() for r in caplog.records if "not written" in r.getMessage()]
    assert len(refusal) == 1 and bad.uid in refusal[0] and "too long" in refusal[0]
    rejected = [json.loads(line) for line in (tmp_path / "eventlog.spill.rejected").read_text()
                .splitlines()]
    assert len(rejected) == 1 and json.loads(rejected[0]["entry"])["uid"] == bad.uid


HOSTILE_NAMES = ["Robert'); DROP TABLE daz_core_events;--", "nul\x00name", "\u202eevil",
                 "😀" * 30, "a" * 500, "\ud800lone", "$1", "%s%s%n"]


async def test_hostile_text_is_stored_cleaned_never_lost(database, tmp_path):
    log = EventLog(database, journal=stream_at(tmp_path / "s"), batch_size=100, flush_interval=0.01)
    await log.start()
    huge = "x" * 100_000 + "\x00end"
    log.put(chat(0, text=huge))
    for i, name in enumerate(HOSTILE_NAMES, 1):
        log.put(chat(i, user=name, text=f"from {name}"))
    deep: dict = {}
    node = deep
    for _ in range(300):
        node["k"] = {}
        node = node["k"]
    weird = LogEntry.build(uid=random_uid(), event_type="cytube.event.\x00weird" + "e" * 90,
                           channel="chan\x00", timestamp=time.time(),
                           payload={"n": float("nan"), "i": float("inf"), "\x00k": ["\ud83d"],
                                    "deep": deep, "obj": object()},
                           tables=(CORE, ACTIVITY, PRIVATE), username="\x00", to_user=None)
    log.put(weird)
    await log.close()
    assert log.counts["failed"] == 0
    assert await database.fetchval("SELECT count(*) FROM daz_core_events") == 2 + len(HOSTILE_NAMES)
    stored = await database.fetchval("SELECT message FROM daz_core_events WHERE message_time ="
                                     " 1700000000000")
    assert len(stored) == 100_004 and stored.endswith("\ufffdend")
    names = {r["username"] for r in await database.fetch("SELECT username FROM daz_chat_log")}
    assert "Robert'); DROP TABLE daz_core_events;--" in names
    assert "nul\ufffdname" in names and "\ufffdlone" in names and "a" * 100 in names
    row = await database.fetchrow("SELECT event_type, channel_name, raw_data FROM daz_core_events"
                                  " WHERE channel_name <> 'chan'")
    assert row["event_type"] == ("cytube.event.\ufffdweird" + "e" * 90)[:50]
    assert row["channel_name"] == "chan\ufffd"
    raw = row["raw_data"]
    raw = json.loads(raw) if isinstance(raw, str) else raw
    assert raw["n"] is None and raw["i"] is None and raw["\ufffdk"] == ["\ufffd"]
    assert isinstance(raw["obj"], str)


def test_clean_json_always_gives_text_jsonb_accepts():
    for value in ({"a": "\x00"}, [float("nan")], {"\udcff": 1}, {1: set()}, "plain"):
        text = clean_json(value)
        assert "\\u0000" not in text and "NaN" not in text
        text.encode("utf-8")  # no lone surrogates left


async def test_events_wait_in_memory_then_spill_and_come_back_in_order(migrated_dsn, tmp_path):
    spill = tmp_path / "eventlog.spill"
    metrics = Metrics()
    down = Database(migrated_dsn)  # never started: every write fails as "not connected"
    log = EventLog(down, journal=stream_at(spill), batch_size=10, max_batch=10, max_queue=20,
                   flush_interval=0.01, retry_max_delay=0.05, metrics=metrics)
    await log.start()
    put = [chat(i) if i % 10 else join(f"user{i}") for i in range(100)]
    for entry in put:
        log.put(entry)
    await asyncio.sleep(0.3)
    assert not log.db_ok and log.status()["spilling"]
    assert log.status()["in_memory"] == 20  # bounded; the rest went to disk
    await log.close()  # still down: memory goes to the head of the file
    lines = read_records(spill)
    assert len(lines) == 100
    assert [json.loads(line)["uid"] for line in lines] == [e.uid for e in put]
    assert log.counts["spilled"] == 100 and log.counts["written"] == 0
    assert metrics.registry.get_sample_value("daz_eventlog_events_total",
                                             {"stage": "spilled"}) == 100

    # Next start, database up: the file is replayed before anything newer.
    db = Database(migrated_dsn)
    await db.start()
    try:
        again = EventLog(db, journal=stream_at(spill), batch_size=10, flush_interval=0.01)
        await again.start()
        again.put(chat(500))
        assert await again.wait_idle(20)
        await again.close()
        messages = await core_messages(db)
        assert messages[:100] == [None if i % 10 == 0 else f"line {i}" for i in range(100)]
        assert messages[100:] == ["line 500"]
        assert await db.fetchval("SELECT count(*) FROM daz_user_activity") == 10
        # Newer events go through the file too until it is drained: order is kept.
        assert (again.counts["replayed"], again.counts["written"]) == (101, 0)
        assert not spill.exists() or spill.stat().st_size == 0
    finally:
        await db.close()


async def test_a_replay_after_a_partial_write_is_exactly_once(database, tmp_path):
    spill = tmp_path / "eventlog.spill"
    entries = [chat(i) for i in range(30)] + [join(f"u{i}") for i in range(30)]
    first = EventLog(database, journal=stream_at(tmp_path / "other"),
                     batch_size=100, flush_interval=0)
    await first.start()
    for e in entries[:40]:  # these reached the database before the "crash"...
        first.put(e)
    await first.close()
    # ...but the spill file still holds all of them (the crash came before it was consumed),
    # and its last record was torn in the middle of a write.
    spill.write_bytes(b"".join(encode(e.to_json()) for e in entries)
                      + encode('{"uid": "torn in two"}')[:20])
    log = EventLog(database, journal=stream_at(spill), batch_size=7, flush_interval=0.01)
    await log.start()
    assert await log.wait_idle(20)
    await log.close()
    uids = [r["event_uid"] for r in await database.fetch("SELECT event_uid FROM daz_core_events")]
    assert len(uids) == len(set(uids)) == 60
    assert log.counts["failed"] == 1  # the torn record, set aside
    assert log.duplicates == 40


async def test_without_a_database_or_spill_file_close_reports_the_loss(tmp_path, caplog):
    log = EventLog(database_that_never_answers(), journal=None, batch_size=2,
                   flush_interval=0.01, retry_max_delay=0.05, shutdown_timeout=1)
    await log.start()
    log.put(chat(1))
    with caplog.at_level(logging.ERROR, logger="daz.plugins.sql.eventlog"):
        await log.close()
    assert any("1 event(s) could not be written" in r.getMessage() for r in caplog.records)



async def test_fresh_batches_are_copied_straight_in_and_one_with_a_duplicate_goes_staged(
        database, tmp_path):
    log = EventLog(database, journal=stream_at(tmp_path / "s"), batch_size=10, flush_interval=0.01,
                   direct_pause=3600)
    await log.start()
    for i in range(10):
        log.put(chat(i))
    assert await log.wait_idle(10)
    assert (log.direct_batches, log.staged_batches) == (1, 0)
    # The join replay re-sends lines 5..9 inside a batch with five new ones: the direct copy
    # meets the unique index, is rolled back whole, and the batch goes staged.
    for i in range(5, 15):
        log.put(chat(i))
    assert await log.wait_idle(10)
    assert (log.direct_batches, log.staged_batches, log.direct_refused) == (1, 1, 1)
    # Until the pause is over, fresh batches go staged too (a second daz logging the channel
    # would otherwise cost a refused copy every batch).
    for i in range(15, 25):
        log.put(chat(i))
    assert await log.wait_idle(10)
    assert (log.direct_batches, log.staged_batches) == (1, 2)
    log.direct_pause = 0
    log._direct_after = 0.0  # the pause is over
    for i in range(25, 35):
        log.put(chat(i))
    await log.close()
    assert (log.direct_batches, log.staged_batches) == (2, 2)
    assert await core_messages(database) == [f"line {i}" for i in range(35)]
    chat_rows = await database.fetch("SELECT message FROM daz_chat_log ORDER BY id")
    assert [r["message"] for r in chat_rows] == [f"line {i}" for i in range(35)]
    assert log.duplicates == 5 and log.counts["failed"] == 0
    raw = await database.fetchval("SELECT raw_data FROM daz_core_events WHERE message = 'line 3'")
    assert raw == {"username": "alice", "msg": "line 3", "time": 1_700_000_000_003}


class _AnswerLostOnce:
    """A pool whose first connection drops right after its transaction committed: the writer
    sees an error although its rows are stored (what a cut between COMMIT and its reply does)."""

    def __init__(self, db):
        self.db = db
        self.dropped = False

    @contextlib.asynccontextmanager
    async def acquire(self):
        async with self.db.acquire() as conn:
            yield conn
        if not self.dropped:
            self.dropped = True
            raise ConnectionResetError("connection lost after COMMIT")


async def test_a_batch_retried_after_an_unknown_outcome_is_written_staged_exactly_once(
        database, tmp_path):
    log = EventLog(_AnswerLostOnce(database), journal=stream_at(tmp_path / "s"), batch_size=8,
                   flush_interval=0.01, retry_max_delay=0.05)
    await log.start()
    entries = [chat(i) for i in range(4)] + [join(f"u{i}") for i in range(4)]
    for entry in entries:
        log.put(entry)
    assert await log.wait_idle(10)
    await log.close()
    # The retry cannot know its rows are in, so it goes staged without trying a direct copy.
    assert (log.direct_batches, log.staged_batches, log.direct_refused) == (0, 1, 0)
    assert log.duplicates == 8 and log.counts["written"] == 8
    for table, count in (("daz_core_events", 8), ("daz_chat_log", 4), ("daz_user_activity", 4)):
        assert await database.fetchval(f"SELECT count(*) FROM {table}") == count, table


class _Gate:
    """A pool that hands out connections only while ``open`` is set, and refuses them while
    ``down`` (the database away)."""

    def __init__(self, db):
        self.db = db
        self.open = asyncio.Event()
        self.down = False

    @contextlib.asynccontextmanager
    async def acquire(self):
        await self.open.wait()
        if self.down:
            raise ConnectionRefusedError("database down")
        async with self.db.acquire() as conn:
            yield conn


async def test_a_burst_waits_in_memory_and_then_holds_the_caller_instead_of_spilling(
        database, tmp_path):
    gate = _Gate(database)  # a writing but slow database: the first batch hangs until opened
    log = EventLog(gate, journal=stream_at(tmp_path / "s"),
                   batch_size=10, max_batch=10, max_queue=10,
                   burst_queue=50, flush_interval=0)
    await log.start()

    async def producer():
        for i in range(200):
            await log.admit(chat(i))

    task = asyncio.create_task(producer())
    await wait_until(lambda: log.status()["in_memory"] == 50, 5, "the burst allowance to fill")
    await asyncio.sleep(0.2)
    assert not task.done()  # held: back-pressure, not the spill file
    assert log.counts["spilled"] == 0 and log.counts["queued"] == 50
    gate.open.set()
    await asyncio.wait_for(task, 10)
    await log.close()
    assert log.counts == {"queued": 200, "written": 200, "spilled": 0, "replayed": 0,
                          "failed": 0}
    assert await core_messages(database) == [f"line {i}" for i in range(200)]


async def test_when_the_database_goes_away_what_waits_beyond_the_queue_moves_to_the_file(
        database, tmp_path):
    gate = _Gate(database)
    log = EventLog(gate, journal=stream_at(tmp_path / "s"),
                   batch_size=10, max_batch=10, max_queue=10,
                   burst_queue=50, flush_interval=0, retry_max_delay=0.1)
    await log.start()
    for i in range(50):
        await log.admit(chat(i))
    gate.down = True
    gate.open.set()  # the hanging batch now fails: the database is away
    await wait_until(lambda: log.counts["spilled"] == 40, 5, "the excess to move to the file")
    assert log.status()["in_memory"] == 10 and not log.db_ok
    for i in range(50, 80):  # admit() no longer waits; these go behind the moved ones
        await asyncio.wait_for(log.admit(chat(i)), 1)
    assert log.counts["spilled"] == 70
    gate.down = False
    assert await log.wait_idle(20)
    await log.close()
    assert await core_messages(database) == [f"line {i}" for i in range(80)]
    assert log.counts["written"] + log.counts["replayed"] == 80
    assert log.counts["replayed"] == 70 and log.duplicates == 0


async def test_a_hung_write_releases_admit_and_the_waiting_entry_spills(database, tmp_path):
    gate = _Gate(database)  # the first batch hangs, yet no write has failed yet
    log = EventLog(gate, journal=stream_at(tmp_path / "s"),
                   batch_size=10, max_batch=10, max_queue=10,
                   burst_queue=20, flush_interval=0, write_timeout=0.5)
    await log.start()
    for i in range(20):
        await log.admit(chat(i))
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(log.admit(chat(20)), 5)  # the bus lane's handler must not hang
    assert asyncio.get_running_loop().time() - started < 1.5
    assert log.counts["spilled"] >= 1  # it went to the file rather than wait on
    gate.open.set()
    assert await log.wait_idle(20)
    await log.close()
    assert await core_messages(database) == [f"line {i}" for i in range(21)]


async def test_admit_waits_at_most_twice_the_write_timeout_even_with_no_writer(
        database, tmp_path):
    log = EventLog(database, journal=stream_at(tmp_path / "s"), batch_size=10, max_batch=10,
                   max_queue=10, burst_queue=20, flush_interval=3600, write_timeout=0.3)
    await log.start()
    log._task.cancel()  # a writer that is gone for whatever reason
    await asyncio.gather(log._task, return_exceptions=True)
    for i in range(20):
        await log.admit(chat(i))
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(log.admit(chat(20)), 5)
    assert 0.5 < asyncio.get_running_loop().time() - started < 1.5
    assert log.counts["spilled"] == 1
    await log.close()  # the 20 in memory go to the head of the file, before the spilled one
    again = EventLog(database, journal=stream_at(tmp_path / "s"),
                     batch_size=10, flush_interval=0.01)
    await again.start()
    assert await again.wait_idle(20)
    await again.close()
    assert await core_messages(database) == [f"line {i}" for i in range(21)]


async def test_save_to_spill_puts_memory_first_and_what_follows_behind(migrated_dsn, tmp_path):
    """At a stop with the database away: memory goes to the head of the file at once (the
    writer is stopped, no attempt waits on the database), later entries go behind it."""
    spill = tmp_path / "eventlog.spill"
    down = Database(migrated_dsn)  # never started
    log = EventLog(down, journal=stream_at(spill), batch_size=10, max_batch=10, max_queue=20,
                   flush_interval=0.01, retry_max_delay=0.05, write_timeout=30)
    await log.start()
    put = [chat(i) for i in range(30)]
    for entry in put[:25]:
        log.put(entry)
    await asyncio.sleep(0.1)
    assert log.status()["in_memory"] == 20
    started = time.monotonic()
    await log.save_to_spill()
    assert time.monotonic() - started < 1.0
    assert log.status()["in_memory"] == 0
    for entry in put[25:]:
        log.put(entry)
    await log.close()
    assert [json.loads(line)["uid"] for line in read_records(spill)] == \
        [e.uid for e in put]
