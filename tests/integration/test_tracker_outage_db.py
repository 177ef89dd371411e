"""usertracker and mediatracker while the database is cut (a real PostgreSQL behind a cuttable
proxy): the events of the outage are held in order and land, once each, with their own times.

The plugins run in a Kit (real manager and bus); the room's RoomState is the truth the tables
must end up matching.
"""
import logging
import time

from daz.plugins.mediatracker import MediaTracker
from daz.plugins.usertracker import UserTracker
from tests.e2e.harness import wait_until
from tests.integration.test_db_outage import proxied
from tests.integration.tracker_feed import disconnect, feed, item, media, user
from tests.plugin_kit import Kit

S = "daz_user_tracker_sessions"
FAST = {"usertracker": {"activity_flush_seconds": 3600, "held_retry_seconds": 0.2},
        "mediatracker": {"held_retry_seconds": 0.2}}


def held_count(k, outcome: str) -> float:
    return sum(k.metrics.registry.get_sample_value(
        "daz_held_writes_total", {"plugin": p, "outcome": outcome}) or 0
        for p in ("usertracker", "mediatracker"))


def problems(caplog) -> list:
    """Error-level lines and tracebacks from daz (handler failures are both)."""
    return [(r.name, r.getMessage()[:200]) for r in caplog.records
            if r.name.startswith("daz") and (r.levelno >= logging.ERROR or r.exc_info)]


async def history(database) -> dict[str, list[tuple[str, float]]]:
    out: dict[str, list] = {}
    for r in await database.fetch(
            "SELECT username, event_type, extract(epoch FROM timestamp)::float8 AS t"
            " FROM daz_user_tracker_history ORDER BY id"):
        out.setdefault(r["username"], []).append((r["event_type"], round(r["t"], 3)))
    return out


async def drained(k) -> bool:
    return not k.plugin("usertracker").held.holding() and \
        not k.plugin("mediatracker").held.holding()


async def test_an_outage_loses_and_doubles_nothing(migrated_dsn, database, caplog):
    caplog.set_level(logging.INFO)
    T = round(time.time() - 300, 3)
    async with proxied(migrated_dsn) as (proxy, db):
        k = await Kit.start({"usertracker": UserTracker, "mediatracker": MediaTracker}, db=db,
                            sections=FAST)
        await feed(k, "userlist", [user("alice"), user("bob"), user("carol"),
                                   user("dazbot", 2)], T)
        await feed(k, "playlist", [item(1, "a", seconds=60), item(2, "b")], T)
        await feed(k, "setCurrent", 1, T)
        await feed(k, "changeMedia", {**media("a", seconds=60), "currentTime": 0,
                                      "paused": False}, T)
        await feed(k, "mediaUpdate", {"currentTime": 10, "paused": False}, T + 10)

        await proxy.block()
        await feed(k, "addUser", user("dave"), T + 11)
        await feed(k, "userLeave", {"name": "bob"}, T + 12)
        await feed(k, "addUser", user("bob"), T + 13)  # a rejoin
        await feed(k, "userLeave", {"name": "carol"}, T + 14)
        await feed(k, "setUserRank", {"name": "alice", "rank": 2}, T + 15)
        await feed(k, "setAFK", {"name": "dave", "afk": True}, T + 16)
        await feed(k, "setAFK", {"name": "dave", "afk": False}, T + 17)
        await feed(k, "addUser", user("erin"), T + 18)  # came and went
        await feed(k, "userLeave", {"name": "erin"}, T + 19)
        await feed(k, "mediaUpdate", {"currentTime": 20, "paused": False}, T + 20)
        await feed(k, "queue", {"item": item(3, "c"), "after": 2}, T + 21)
        await feed(k, "setCurrent", 2, T + 25)
        await feed(k, "changeMedia", {**media("b"), "currentTime": 0, "paused": False}, T + 25)
        await feed(k, "mediaUpdate", {"currentTime": 10, "paused": False}, T + 35)
        assert held_count(k, "held") >= 12, "nothing was held: the cut proved nothing"
        assert not problems(caplog)  # no handler failed, nothing logged as lost
        assert k.plugin("usertracker").held.holding("testchan")
        await proxy.unblock()

        await wait_until(lambda: drained(k), 20, "held writes applied")
        present = sorted(k.room.state.users)
        rows = await database.fetch(
            f"SELECT lower(username) AS name, extract(epoch FROM joined_at)::float8 AS joined"
            f" FROM {S} WHERE is_active ORDER BY 1")
        assert [r["name"] for r in rows] == present == ["alice", "bob", "dave", "dazbot"]
        joined = {r["name"]: round(r["joined"], 3) for r in rows}
        assert joined == {"alice": T, "bob": T + 13, "dave": T + 11, "dazbot": T}
        h = await history(database)
        assert h["bob"] == [("join", T), ("leave", T + 12), ("join", T + 13)]
        assert h["carol"] == [("join", T), ("leave", T + 14)]
        assert h["alice"] == [("join", T), ("rank", T + 15)]
        assert h["dave"] == [("join", T + 11), ("afk", T + 16), ("back", T + 17)]
        assert h["erin"] == [("join", T + 18), ("leave", T + 19)]
        erin = await database.fetchrow(f"SELECT is_active, extract(epoch FROM left_at)::float8"
                                       f" AS left FROM {S} WHERE username = 'erin'")
        assert not erin["is_active"] and round(erin["left"], 3) == T + 19

        # Plays: a ended at the change with 25 s played (10 + 10 reported + 5 to the change).
        plays = await database.fetch(
            "SELECT media_id, extract(epoch FROM started_at)::float8 AS s,"
            " extract(epoch FROM ended_at)::float8 AS e, metadata"
            " FROM daz_mediatracker_plays ORDER BY id")
        assert [p["media_id"] for p in plays] == ["a", "b"]
        assert round(plays[0]["e"], 3) == T + 25 and plays[0]["metadata"]["played"] == 25
        assert round(plays[1]["s"], 3) == T + 25 and plays[1]["e"] is None
        assert k.plugin("mediatracker").plays["testchan"].play_id is not None
        queue = await database.fetch(
            "SELECT uid, position, extract(epoch FROM queued_at)::float8 AS q"
            " FROM daz_mediatracker_queue ORDER BY position")
        assert [r["uid"] for r in queue] == [str(u) for u in k.room.state.order] == ["1", "2", "3"]
        assert round(queue[2]["q"], 3) == T + 21  # queued during the outage, at its real time

        await disconnect(k, T + 40)  # b: 10 reported + 5 to the disconnect
        b = await database.fetchrow("SELECT metadata, ended_at FROM daz_mediatracker_plays"
                                    " WHERE media_id = 'b'")
        assert b["ended_at"] is not None and b["metadata"]["played"] == 15
        stats = {r["media_id"]: (r["play_count"], r["total_duration"]) for r in await
                 database.fetch("SELECT media_id, play_count, total_duration"
                                " FROM daz_mediatracker_stats")}
        assert stats == {"a": (1, 25), "b": (1, 15)}
        assert held_count(k, "dropped") == held_count(k, "lost") == 0
        assert not problems(caplog)
        await k.stop()


async def test_writes_applied_twice_change_nothing(database):
    """The connection may die after COMMIT: a held write is then applied again."""
    k = await Kit.start({"usertracker": UserTracker, "mediatracker": MediaTracker},
                        db=database, sections=FAST)
    ut, mt = k.plugin("usertracker"), k.plugin("mediatracker")
    T = round(time.time() - 100, 3)
    ops = [{"op": "join", "channel": "testchan", "user": "zoe", "rank": 1, "t": T},
           {"op": "rank", "channel": "testchan", "user": "zoe", "rank": 3, "t": T + 1},
           {"op": "afk", "channel": "testchan", "user": "zoe", "afk": True, "t": T + 2},
           {"op": "leave", "channel": "testchan", "user": "zoe", "t": T + 3},
           {"op": "join", "channel": "testchan", "user": "zoe", "rank": 1, "t": T + 4},
           {"op": "resync", "channel": "testchan", "users": [["zoe", 1]], "t": T + 5,
            "bot": "dazbot"}]
    for op in ops:
        async with database.acquire() as conn:
            await ut._apply(conn, op)
            await ut._apply(conn, op)  # the reply was lost; applied again
    assert [e for e, _ in (await history(database))["zoe"]] == [
        "join", "rank", "afk", "leave", "join"]
    assert await database.fetchval(f"SELECT count(*) FROM {S} WHERE is_active") == 1

    await feed(k, "changeMedia", {**media("m", seconds=100), "currentTime": 0,
                                  "paused": False}, T)
    play = mt.plays["testchan"]
    await feed(k, "mediaUpdate", {"currentTime": 40, "paused": False}, T + 40)
    play.close(T + 50)
    start = {"op": "start", "play": {**play.snapshot(), "play_id": None}}
    end = {"op": "end", "play": {**play.snapshot(), "play_id": None}, "t": T + 50}
    for op in (start, start, end, end):
        async with database.acquire() as conn:
            await mt._apply(conn, op)
    assert await database.fetchval("SELECT count(*) FROM daz_mediatracker_plays") == 1
    assert tuple(await database.fetchrow(
        "SELECT play_count, total_duration FROM daz_mediatracker_stats")) == (1, 50)
    assert await database.fetchval("SELECT play_count FROM daz_mediatracker_library") == 1
    await k.stop()


async def test_a_bad_write_is_dropped_with_a_reason_and_blocks_nothing(migrated_dsn, database,
                                                                       caplog):
    async with proxied(migrated_dsn) as (proxy, db):
        k = await Kit.start({"usertracker": UserTracker}, db=db, sections=FAST)
        await proxy.block()
        await feed(k, "addUser", user("x" * 300))  # longer than the column: refused
        await feed(k, "addUser", user("yann"))
        await proxy.unblock()
        await wait_until(lambda: drained_ut(k), 20, "held writes applied")
        assert await database.fetchval(
            f"SELECT count(*) FROM {S} WHERE username = 'yann' AND is_active") == 1
        dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(dropped) == 1 and "StringDataRightTruncation" in dropped[0], dropped
        await k.stop()


def drained_ut(k) -> bool:
    return not k.plugin("usertracker").held.holding()


async def test_writes_held_at_shutdown_are_applied_at_the_next_start(migrated_dsn, database,
                                                                     tmp_path):
    T = round(time.time() - 100, 3)
    async with proxied(migrated_dsn) as (proxy, db):
        plugins = {"usertracker": UserTracker, "mediatracker": MediaTracker}
        k = await Kit.start(plugins, db=db, sections=FAST, data_dir=tmp_path)
        await proxy.block()
        await feed(k, "addUser", user("ann"), T)
        await feed(k, "addUser", user("ben"), T + 1)
        await feed(k, "userLeave", {"name": "ben"}, T + 2)
        await feed(k, "changeMedia", {**media("m"), "currentTime": 0, "paused": False}, T + 3)
        await k.stop()  # the database is still away: kept in the journal
        assert (tmp_path / "journal" / "usertracker-held.journal").exists()
        assert (tmp_path / "journal" / "mediatracker-held.journal").exists()
        await proxy.unblock()
        k = await Kit.start(plugins, db=db, sections=FAST, data_dir=tmp_path)
        await wait_until(lambda: drained(k), 20, "saved writes applied")
        assert not (tmp_path / "journal" / "usertracker-held.journal").exists()
        h = await history(database)
        assert h["ann"] == [("join", T)]
        assert h["ben"] == [("join", T + 1), ("leave", T + 2)]
        assert await database.fetchval(
            f"SELECT count(*) FROM {S} WHERE is_active AND username <> 'dazbot'") == 1
        row = await database.fetchrow("SELECT media_id, ended_at FROM daz_mediatracker_plays")
        assert row["media_id"] == "m" and row["ended_at"] is not None  # closed at the stop
        await k.stop()
