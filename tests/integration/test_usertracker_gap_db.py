"""Sessions daz closes because a user list shows people gone end when those people were last
known to be there, never at daz's own start time (issue 11 §9): ``!seen`` must not say "just
now" for someone who left hours before daz started."""
import time

from daz.events import RoomConnected
from daz.plugins.usertracker import UserTracker
from tests.integration.tracker_feed import command, disconnect, feed, user
from tests.plugin_kit import Kit

S = "daz_user_tracker_sessions"
FAST = {"usertracker": {"activity_flush_seconds": 3600}}


async def start(database):
    return await Kit.start({"usertracker": UserTracker}, db=database, sections=FAST)


async def connected(kit, t: float) -> None:
    await kit.bus.publish(RoomConnected(room_id=kit.room.id, channel=kit.room.channel,
                                        received_at=t))
    await kit.bus.drain(10)


async def left_at(database, name: str) -> float:
    row = await database.fetchrow(f"SELECT left_at, is_active FROM {S} WHERE username = $1"
                                  " ORDER BY id DESC LIMIT 1", name)
    assert row is not None and not row["is_active"], row
    return row["left_at"].timestamp()


async def test_sessions_a_go_bot_left_open_end_at_their_last_activity(database):
    now = time.time()
    # As the Go bot leaves them: open sessions, no session of daz's own to say when it watched.
    await database.execute(
        f"INSERT INTO {S} (channel, username, rank, joined_at, last_activity, is_active) VALUES"
        " ('testchan', 'alice', 1, to_timestamp($1), to_timestamp($2), true),"
        " ('testchan', 'bob', 1, to_timestamp($3), to_timestamp($3), true)",
        now - 5 * 3600, now - 4 * 3600, now - 26 * 3600)
    k = await start(database)
    await connected(k, now - 2)
    await feed(k, "userlist", [user("carol")], now - 1)
    assert abs(await left_at(database, "alice") - (now - 4 * 3600)) < 1
    assert abs(await left_at(database, "bob") - (now - 26 * 3600)) < 1
    seen = await command(k, "seen", "carol", "alice")
    assert seen[0].startswith("alice was last seen 4 hours ago"), seen
    assert "just now" not in (await command(k, "seen", "carol", "bob"))[0]
    await k.stop()


async def test_the_bots_session_of_this_connection_does_not_count_as_having_watched(database):
    now = time.time()
    k = await start(database)
    await feed(k, "addUser", user("dazbot", 2), now - 9000)
    await feed(k, "addUser", user("bob"), now - 8000)
    await disconnect(k, now - 6000)  # daz stops watching; bob is still there then
    await k.stop()

    k = await start(database)
    await connected(k, now - 10)
    await feed(k, "addUser", user("dazbot", 2), now - 9)  # logged in before the list came
    await feed(k, "userlist", [user("dazbot", 2)], now - 8)
    assert abs(await left_at(database, "bob") - (now - 6000)) < 1  # not now - 9
    await k.stop()


async def test_an_anonymous_bot_bounds_a_reconnect_gap_by_when_it_lost_the_room(database):
    now = time.time()
    k = await start(database)
    k.room.state.bot_name = ""
    await connected(k, now - 4000)
    await feed(k, "userlist", [user("erin"), user("finn")], now - 3999)
    await disconnect(k, now - 3000)  # erin still there when the room dropped
    await connected(k, now - 20)
    await feed(k, "userlist", [user("finn")], now - 19)
    assert abs(await left_at(database, "erin") - (now - 3000)) < 1
    await k.stop()
