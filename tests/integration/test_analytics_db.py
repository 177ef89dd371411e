"""analytics on a real PostgreSQL: real counts, distinct users across restarts, exactly-once
flushes, ignored lines, !mystats."""
import json
import time

import pytest

from daz.events import CommandExecuted
from daz.journal import read_records
from daz.plugins.analytics import Analytics, store
from daz.plugins.analytics.counters import Batch
from daz.plugins.mediatracker import MediaTracker
from tests.integration.tracker_feed import command, feed, item, media, user
from tests.plugin_kit import Kit

MANUAL = {"analytics": {"flush_seconds": 3600}}
HOUR = time.time() // 3600 * 3600 - 2 * 3600  # two hours ago, at the start of the hour


async def start(database, extra=None):
    return await Kit.start({"analytics": Analytics, **(extra or {})}, db=database,
                           sections=MANUAL)


async def chat(k, name, t, text="hi", **flags):
    return await feed(k, "chatMsg", {"username": name, "msg": text, "meta": {},
                                     "time": int(t * 1000)}, t, settle=False, marks=flags)


async def hourly(database, hour=HOUR):
    return await database.fetchrow(
        "SELECT message_count, unique_users, media_plays, commands_used, joins"
        " FROM daz_analytics_hourly WHERE channel = 'testchan'"
        " AND hour_start = to_timestamp($1)", hour)


async def test_counts_per_hour_and_day_are_real(database):
    k = await start(database, {"mediatracker": MediaTracker})
    for i, name in enumerate(["alice", "bob", "alice", "carol"]):
        await chat(k, name, HOUR + 60 + i)
    await chat(k, "alice", HOUR + 3600 + 5)  # the next hour
    await feed(k, "addUser", user("dave"), HOUR + 100)
    await feed(k, "setCurrent", 1, HOUR + 200)
    await feed(k, "changeMedia", {**media("m1"), "currentTime": 0, "paused": False}, HOUR + 200)
    await feed(k, "changeMedia", {**media("m1"), "currentTime": 0.5, "paused": False},
               HOUR + 200.5)  # a repeat: not a play
    await k.bus.publish(CommandExecuted(room_id="testchan", channel="testchan", command="np",
                                        username="bob", args=[], via_pm=False, outcome="ok",
                                        received_at=HOUR + 300))
    await k.bus.publish(CommandExecuted(room_id="testchan", channel="testchan", command="x",
                                        username="bob", args=[], via_pm=False,
                                        outcome="unknown", received_at=HOUR + 301))
    await k.bus.drain(10)
    assert await k.plugin("analytics").flush() == 1
    assert tuple(await hourly(database)) == (4, 3, 1, 1, 1)
    assert tuple(await hourly(database, HOUR + 3600)) == (1, 1, 0, 0, 0)
    day = await database.fetchrow(
        "SELECT total_messages, unique_users, total_media_plays, peak_users, active_hours, joins"
        " FROM daz_analytics_daily WHERE channel = 'testchan' AND day_date ="
        " (to_timestamp($1) AT TIME ZONE 'UTC')::date", HOUR)
    if (HOUR + 3600) // 86400 == HOUR // 86400:  # both hours on the same UTC day
        assert tuple(day) == (5, 3, 1, 3, 2, 1)
    users = {r["username"]: r["total_messages"] for r in await database.fetch(
        "SELECT username, total_messages FROM daz_analytics_user_stats")}
    assert users == {"alice": 3, "bob": 1, "carol": 1}
    await k.stop()


async def store_chat(database, name, t, text="hi"):
    """A chat line as the event log stored it (said while daz was here)."""
    await database.execute(
        "INSERT INTO daz_core_events (event_type, channel_name, timestamp, username, message,"
        " message_time, raw_data) VALUES ('cytube.event.chatMsg', 'testchan', to_timestamp($1),"
        " $2, $3, $4, '{}')", t, name, text, int(t * 1000))


async def test_ignored_lines_never_count(database):
    await store_chat(database, "bob", HOUR + 10)
    k = await start(database)
    await chat(k, "alice", HOUR + 1, replayed=True)  # older than a stored line: counted then
    await chat(k, "alice", HOUR + 2, own=True)
    await chat(k, "[server]", HOUR + 3, "alice joined")
    await chat(k, "dazbot", HOUR + 4)  # our own name, even if not flagged as an echo
    await feed(k, "addUser", user("dazbot", 2), HOUR + 5)
    await k.bus.drain(10)
    await k.plugin("analytics").flush()
    assert await hourly(database) is None
    await k.stop()


async def test_replayed_history_never_stored_counts_once_when_it_was_said(database):
    await store_chat(database, "alice", HOUR + 100, "here")
    await store_chat(database, "bob", HOUR + 100, "me too")  # the same millisecond
    k = await start(database)
    joined_at = HOUR + 3 * 3600  # daz rejoins hours later; the replay comes then
    replay = [("carol", HOUR + 50, "old"), ("alice", HOUR + 100, "here"),
              ("bob", HOUR + 100, "me too"), ("dave", HOUR + 100, "same ms, never stored"),
              ("erin", HOUR + 3600 + 7, "while daz was away")]
    for name, said, text in replay:
        await chat(k, name, said, text, replayed=True, received_at=joined_at)
    for name, said, text in replay:  # a second join replays the same buffer: nothing new
        await chat(k, name, said, text, replayed=True, received_at=joined_at + 60)
    await k.bus.drain(10)
    await k.plugin("analytics").flush()
    assert tuple(await hourly(database))[:2] == (1, 1)  # dave, in the hour he said it
    assert tuple(await hourly(database, HOUR + 3600))[:2] == (1, 1)  # erin
    assert await hourly(database, joined_at // 3600 * 3600) is None
    first = await database.fetchval(
        "SELECT extract(epoch FROM first_seen) FROM daz_analytics_user_stats"
        " WHERE username = 'erin'")
    assert abs(float(first) - (HOUR + 3600 + 7)) < 1
    await k.stop()


async def test_restart_within_the_hour_merges_distinct_users(database):
    k = await start(database)
    await chat(k, "alice", HOUR + 10)
    await chat(k, "bob", HOUR + 20)
    await k.stop()  # teardown flushes
    k = await start(database)
    await chat(k, "alice", HOUR + 30)  # seen before the restart: not a new user
    await chat(k, "carol", HOUR + 40)
    await k.stop()
    assert tuple(await hourly(database))[:2] == (4, 3)
    assert await database.fetchval(
        "SELECT total_messages FROM daz_analytics_user_stats WHERE username = 'alice'") == 2


async def test_a_retried_flush_is_applied_once(database):
    k = await start(database)
    plugin = k.plugin("analytics")
    await chat(k, "alice", HOUR + 1)
    await chat(k, "bob", HOUR + 2)
    await k.bus.drain(10)
    real_write = store.write
    calls = []

    async def commit_then_fail(conn, batch):  # the commit lands, the reply is lost
        calls.append(batch.flush_id)
        await real_write(conn, batch)
        raise ConnectionResetError("connection lost after COMMIT")

    store.write = commit_then_fail
    try:
        with pytest.raises(ConnectionResetError):
            await plugin.flush()
    finally:
        store.write = real_write
    await chat(k, "alice", HOUR + 3)  # counted into a new batch meanwhile
    await k.bus.drain(10)
    assert await plugin.flush() == 1  # the retry was a no-op, the new batch applied
    assert tuple(await hourly(database))[:2] == (3, 2)
    assert await database.fetchval("SELECT count(*) FROM daz_analytics_flushes") == 2
    # And directly: the same batch twice.
    batch = Batch()
    batch.message("testchan", "zoe", HOUR + 4)
    async with database.pool.acquire() as conn:
        assert await store.write(conn, batch) is True
        assert await store.write(conn, batch) is False
    assert tuple(await hourly(database))[:2] == (4, 3)
    await k.stop()


async def test_mystats(database):
    k = await start(database)
    assert "no chat lines from you" in (await command(k, "mystats", "alice"))[0]
    for i in range(3):
        await chat(k, "alice", time.time() - 7200 + i)
    await chat(k, "bob", time.time() - 10)
    await k.bus.drain(10)
    await k.plugin("analytics").flush()
    await chat(k, "alice", time.time())  # not flushed yet: still counted
    await k.bus.drain(10)
    assert await command(k, "mystats", "alice") == [
        "alice: 4 lines in this channel (#1 here), first seen 2 hours ago."]
    await k.stop()


async def test_playlist_events_do_not_count_as_plays(database):
    k = await start(database, {"mediatracker": MediaTracker})
    await feed(k, "playlist", [item(1, "a"), item(2, "b")], HOUR + 1)
    await feed(k, "queue", {"item": item(3, "c"), "after": 2}, HOUR + 2)
    await k.plugin("analytics").flush()
    assert await hourly(database) is None
    await k.stop()


async def test_helper_rows_past_the_retention_are_cleaned_up_once_a_day(database):
    old, recent = time.time() - 40 * 86400, HOUR
    batch = Batch()
    batch.message("testchan", "old_timer", old)
    batch.message("testchan", "alice", recent)
    async with database.pool.acquire() as conn:
        await store.write(conn, batch)
    await database.execute(
        "UPDATE daz_analytics_flushes SET applied_at = now() - interval '40 days'")
    await database.execute(
        "INSERT INTO daz_analytics_flushes (flush_id) VALUES (gen_random_uuid())")
    k = await start(database)
    plugin = k.plugin("analytics")
    assert await plugin.cleanup_if_due() == 2  # one old chatter name, one old flush id
    assert [r["username"] for r in await database.fetch(
        "SELECT username FROM daz_analytics_hourly_users")] == ["alice"]
    assert await database.fetchval("SELECT count(*) FROM daz_analytics_flushes") == 1
    await database.execute(
        "UPDATE daz_analytics_flushes SET applied_at = now() - interval '40 days'")
    assert await plugin.cleanup_if_due() == 0  # not again within the day
    assert await database.fetchval("SELECT count(*) FROM daz_analytics_flushes") == 1
    # The figures themselves are kept: only the helpers go.
    assert await database.fetchval("SELECT count(*) FROM daz_analytics_hourly") == 2
    await k.stop()


async def test_a_batch_the_database_refuses_is_dropped_not_retried_for_ever(database):
    k = await start(database)
    plugin = k.plugin("analytics")
    await chat(k, "bad\x00name", HOUR + 1)  # never counted: it would poison the batch
    await chat(k, "alice", HOUR + 2)
    await k.bus.drain(10)
    assert {u for _, u in plugin.current.users} == {"alice"}
    plugin.current.message("testchan", "x" * 300, HOUR + 3)  # too long for the column
    assert await plugin.flush() == 0  # refused: dropped, logged, nothing half-applied
    assert plugin.dropped_batches == 1 and plugin.pending is None
    assert await hourly(database) is None
    await chat(k, "bob", HOUR + 4)
    await k.bus.drain(10)
    assert await plugin.flush() == 1  # later counts are written again
    assert tuple(await hourly(database))[:2] == (1, 1)
    await k.stop()


async def test_counts_the_database_did_not_take_at_stop_are_written_once_at_the_next_start(
        database, tmp_path):
    k = await Kit.start({"analytics": Analytics}, db=database, sections=MANUAL,
                        data_dir=tmp_path)
    a = k.plugin("analytics")
    await chat(k, "alice", HOUR + 60)
    await k.bus.drain(10)
    a.pending, a.current = a.current, Batch()  # a flush whose outcome is unknown ...
    applied_id = a.pending.flush_id
    async with database.acquire() as conn:
        assert await store.write(conn, a.pending)  # ... that did reach COMMIT
    await chat(k, "bob", HOUR + 61)
    await chat(k, "bob", HOUR + 62)
    await k.bus.drain(10)
    await a.save_for_next_start()  # the database does not answer at stop
    saved = read_records(tmp_path / "journal" / "analytics-unsaved.journal")
    assert len(saved) == 2 and applied_id.hex in saved[0].replace("-", "")
    assert not a.pending and not a.current
    await k.stop()

    again = await Kit.start({"analytics": Analytics}, db=database, sections=MANUAL,
                            data_dir=tmp_path)
    assert not (tmp_path / "journal" / "analytics-unsaved.journal").exists()
    assert tuple(await hourly(database))[:2] == (3, 2)  # alice once (not twice), bob twice
    users = dict(await database.fetch(
        "SELECT username, total_messages FROM daz_analytics_user_stats"
        " WHERE channel = 'testchan'"))
    assert users == {"alice": 1, "bob": 2}
    await again.stop()


def test_a_batch_survives_its_trip_through_a_file():
    batch = Batch()
    batch.message("chan", "alice", HOUR + 1)
    batch.message("chan", "bob", HOUR + 3700)
    batch.join("chan", HOUR + 2)
    batch.play("chan", HOUR + 3)
    batch.command("chan", HOUR + 4)
    back = Batch.from_json(json.loads(json.dumps(batch.to_json())))
    assert back == batch
