"""usertracker on a real PostgreSQL: sessions, resync, races, history, batching, !seen."""
import asyncio
import time

from daz.plugins.usertracker import UserTracker, sessions
from tests.integration.tracker_feed import command, disconnect, feed, user
from tests.plugin_kit import Kit

S = "daz_user_tracker_sessions"
FAST = {"usertracker": {"activity_flush_seconds": 3600}}  # flushes only when the test says


async def start(database, **kw):
    return await Kit.start({"usertracker": UserTracker}, db=database,
                           sections=kw.pop("sections", FAST), **kw)


async def active(database, name=None):
    if name is None:
        return await database.fetch(
            f"SELECT username, joined_at, left_at FROM {S} WHERE is_active ORDER BY username")
    return await database.fetch(
        f"SELECT id, joined_at FROM {S} WHERE is_active AND lower(username) = lower($1)", name)


async def history(database, name):
    rows = await database.fetch(
        "SELECT event_type, metadata FROM daz_user_tracker_history WHERE username = $1"
        " ORDER BY id", name)
    return [(r["event_type"], r["metadata"]) for r in rows]


async def test_join_leave_and_quick_rejoin_keep_one_active_session(database):
    k = await start(database)
    now = time.time()
    await feed(k, "addUser", user("alice", 1), now - 10)
    assert len(await active(database, "alice")) == 1
    await feed(k, "userLeave", {"name": "alice"}, now - 9)
    assert await active(database, "alice") == []
    await feed(k, "addUser", user("alice", 1), now - 8.5)  # back within a second
    rows = await database.fetch(f"SELECT is_active, left_at FROM {S} WHERE username = 'alice'"
                                " ORDER BY id")
    assert [r["is_active"] for r in rows] == [False, True]
    assert rows[0]["left_at"] is not None
    assert [e for e, _ in await history(database, "alice")] == ["join", "leave", "join"]
    assert (await history(database, "alice"))[0][1] == {"rank": 1, "from_userlist": False}
    await k.stop()


async def test_a_join_while_a_stale_session_is_open_closes_it(database):
    k = await start(database)
    await feed(k, "addUser", user("bob"), time.time() - 100)
    k.room.state.users.pop("bob")  # the leave never reached us
    await feed(k, "addUser", user("bob"), time.time())
    rows = await database.fetch(f"SELECT is_active FROM {S} WHERE username = 'bob' ORDER BY id")
    assert [r["is_active"] for r in rows] == [False, True]
    await k.stop()


async def test_two_processes_and_racing_writes_never_make_two_active_sessions(database):
    k1, k2 = await start(database), await start(database)
    t = time.time()
    # Both daz processes see the same join; each also races itself.
    await asyncio.gather(*(feed(k, "addUser", user("carol"), t + d, settle=False)
                           for k in (k1, k2) for d in (0, 0.001)))
    await asyncio.gather(k1.bus.drain(10), k2.bus.drain(10))
    assert len(await active(database, "carol")) == 1
    assert [e for e, _ in await history(database, "carol")] == ["join"]
    # Direct concurrent writers on separate connections: still one.
    async def racer(i):
        async with database.pool.acquire() as conn:
            await sessions.join(conn, "testchan", "dave", 1, t + i * 5, 2.0)
    await asyncio.gather(*(racer(i) for i in range(8)))
    assert len(await active(database, "dave")) == 1
    await k1.stop()
    await k2.stop()


async def test_userlist_after_restart_keeps_real_join_times_and_bounds_left_at(database):
    now = time.time()
    k = await start(database)
    await feed(k, "addUser", user("dazbot", 2), now - 7200)  # the bot itself, tracked
    await feed(k, "addUser", user("alice"), now - 7000)
    await feed(k, "addUser", user("bob"), now - 3600)
    await disconnect(k, now - 600)  # daz stops watching ten minutes ago
    await k.stop()
    alice_joined = (await active(database, "alice"))[0]["joined_at"]

    k = await start(database)  # a new process; alice and carol are there, bob left meanwhile
    await feed(k, "userlist", [user("alice"), user("carol"), user("dazbot", 2)], now)
    names = [r["username"] for r in await active(database)]
    assert names == ["alice", "carol", "dazbot"]
    assert (await active(database, "alice"))[0]["joined_at"] == alice_joined  # not faked
    bob = await database.fetchrow(f"SELECT left_at FROM {S} WHERE username = 'bob'")
    assert abs(bob["left_at"].timestamp() - (now - 600)) < 1  # when daz last watched, not now
    carol = await history(database, "carol")
    assert carol == [("join", {"rank": 1, "from_userlist": True, "observed_at_join": True})]
    assert ("leave", {"reason": "absent_at_resync"}) in await history(database, "bob")

    # The same list again (rank crossing 2 re-sends it): nothing changes, nothing is written.
    before = await database.fetchval("SELECT count(*) FROM daz_user_tracker_history")
    await feed(k, "userlist", [user("alice"), user("carol"), user("dazbot", 2)], now + 1)
    assert await database.fetchval("SELECT count(*) FROM daz_user_tracker_history") == before
    await k.stop()


async def test_rank_changes_are_history_and_repeats_are_not(database):
    k = await start(database)
    await feed(k, "addUser", user("erin", 1))
    await feed(k, "setUserRank", {"name": "erin", "rank": 1})  # sent on every login: no change
    await feed(k, "setUserRank", {"name": "erin", "rank": 2})
    assert await history(database, "erin") == [
        ("join", {"rank": 1, "from_userlist": False}), ("rank", {"rank": 2, "old_rank": 1})]
    assert await database.fetchval(f"SELECT rank FROM {S} WHERE username = 'erin'") == 2
    await k.stop()


async def test_afk_and_idleness_never_end_a_session(database):
    k = await start(database)
    await feed(k, "addUser", user("finn"))
    await feed(k, "setAFK", {"name": "finn", "afk": True})
    await feed(k, "setAFK", {"name": "finn", "afk": False})
    assert len(await active(database, "finn")) == 1
    assert [e for e, _ in await history(database, "finn")] == ["join", "afk", "back"]
    await k.stop()


async def test_chat_activity_is_batched_not_written_per_line(database):
    k = await start(database)
    t = time.time() - 60
    await feed(k, "addUser", user("gina"), t)
    before = await database.fetchval(f"SELECT last_activity FROM {S} WHERE username = 'gina'")
    for i in range(50):
        await feed(k, "chatMsg", {"username": "gina", "msg": f"line {i}", "meta": {},
                                  "time": int((t + i) * 1000)}, t + 1 + i, settle=False)
    await k.bus.drain(10)
    # Nothing written yet: activity waits for the flush.
    assert await database.fetchval(
        f"SELECT last_activity FROM {S} WHERE username = 'gina'") == before
    plugin = k.plugin("usertracker")
    assert await plugin.flush() >= 1
    after = await database.fetchval(f"SELECT last_activity FROM {S} WHERE username = 'gina'")
    assert abs(after.timestamp() - (t + 50)) < 0.01
    await k.stop()


async def test_replayed_and_own_lines_are_not_activity(database):
    k = await start(database)
    t = time.time() - 60
    await feed(k, "addUser", user("hal"), t)
    await feed(k, "chatMsg", {"username": "hal", "msg": "old", "meta": {}, "time": 1},
               t + 30, marks={"replayed": True})
    await feed(k, "chatMsg", {"username": "hal", "msg": "echo", "meta": {}, "time": 2},
               t + 40, marks={"own": True})
    await k.plugin("usertracker").flush()
    last = await database.fetchval(f"SELECT last_activity FROM {S} WHERE username = 'hal'")
    assert abs(last.timestamp() - t) < 0.01
    await k.stop()


async def test_disconnect_closes_only_the_bots_own_session(database):
    k = await start(database)
    await feed(k, "addUser", user("dazbot", 2))
    await feed(k, "addUser", user("ivy"))
    await disconnect(k)
    assert [r["username"] for r in await active(database)] == ["ivy"]
    assert ("leave", {"reason": "bot_disconnected"}) in await history(database, "dazbot")
    await k.stop()


async def test_seen(database):
    k = await start(database)
    now = time.time()
    await feed(k, "addUser", user("jack"), now - 3 * 3600 - 120)
    await feed(k, "userLeave", {"name": "jack"}, now - 3 * 3600 - 60)
    await feed(k, "addUser", user("kate"), now - 1800)
    assert await command(k, "seen", "zed", "@Jack") == [
        "jack was last seen 3 hours ago (" + time.strftime(
            "%Y-%m-%d %H:%M", time.gmtime(now - 3 * 3600 - 60)) + " UTC)."]
    assert await command(k, "seen", "zed", "kate") == ["kate is here now (joined 30 minutes ago)."]
    assert await command(k, "seen", "zed", "nobody") == ["I haven't seen nobody in this channel."]
    assert await command(k, "seen", "zed", "dazbot") == ["I'm right here."]
    assert "doesn't look like a CyTube username" in (await command(k, "seen", "zed", "a b;c"))[0]
    await k.stop()


async def test_a_nul_in_a_name_does_not_block_the_channels_activity_writes(database):
    k = await Kit.start({"usertracker": UserTracker}, db=database,
                        sections={"usertracker": {"activity_flush_seconds": 3600}})
    await feed(k, "userlist", [user("alice")])
    await k.chat("bad\x00name", "hi")
    await k.chat("alice", "hi")
    assert await k.plugin("usertracker").flush() == 1
    await k.stop()


async def test_one_flush_writes_every_channels_activity_to_its_own_sessions(database):
    """A flush is one statement for all rooms (1,000 rooms once meant 1,000 round trips every
    few seconds); the same name in two channels still lands on each channel's own session."""
    t = time.time() - 600
    for channel in ("north", "south"):
        await database.execute(
            f"INSERT INTO {S} (channel, username, joined_at, last_activity, is_active)"
            " VALUES ($1, 'Ivy', to_timestamp($2), to_timestamp($2), true)", channel, t)
    await database.execute(  # an ended session is history: never touched
        f"INSERT INTO {S} (channel, username, joined_at, left_at, last_activity, is_active)"
        " VALUES ('north', 'Ivy', to_timestamp($1), to_timestamp($1), to_timestamp($1), false)",
        t - 100)
    async with database.acquire() as conn:
        touched = await sessions.touch(conn, {"north": {"ivy": ("Ivy", t + 10)},
                                              "south": {"ivy": ("Ivy", t + 20),
                                                        "nobody": ("nobody", t + 30)}})
    assert touched == 2
    rows = await database.fetch(
        f"SELECT channel, is_active, extract(epoch FROM last_activity)::float8 AS at FROM {S}"
        " WHERE username = 'Ivy' ORDER BY channel, is_active")
    assert [(r["channel"], r["is_active"], round(r["at"] - t)) for r in rows] == [
        ("north", False, -100), ("north", True, 10), ("south", True, 20)]
    async with database.acquire() as conn:  # an older time never moves last_activity back
        assert await sessions.touch(conn, {"north": {"ivy": ("Ivy", t + 5)}}) == 1
    assert round(await database.fetchval(
        f"SELECT extract(epoch FROM last_activity)::float8 FROM {S}"
        " WHERE channel = 'north' AND is_active") - t) == 10
