"""mediatracker on a real PostgreSQL: plays, repeats, reconnects, restarts, mirror, library."""
import random
import time

from daz.plugins.mediatracker import MediaTracker
from tests.fakes.room import RecordingRoom
from tests.integration.tracker_feed import command, disconnect, feed, item, media
from tests.plugin_kit import Kit

P = "daz_mediatracker_plays"


async def start(database):
    return await Kit.start({"mediatracker": MediaTracker}, db=database)


async def plays(database, channel="testchan"):
    return await database.fetch(
        f"SELECT id, media_id, ended_at, completed, metadata FROM {P} WHERE channel = $1"
        " ORDER BY id", channel)


async def change(k, mid, t, *, uid, seconds=120, current=-3.0, paused=True, room=None,
                 mtype="cu"):
    """setCurrent then changeMedia, as the server sends them."""
    await feed(k, "setCurrent", uid, t, room=room)
    await feed(k, "changeMedia", {**media(mid, seconds=seconds, mtype=mtype),
                                  "currentTime": current,
                                  "paused": paused}, t, room=room)


async def tick(k, position, t, paused=False):
    await feed(k, "mediaUpdate", {"currentTime": position, "paused": paused}, t)


async def test_one_play_per_change_with_real_played_time(database):
    k = await start(database)
    t = time.time() - 1000
    await feed(k, "playlist", [item(1, "a", seconds=60), item(2, "b")], t)
    await change(k, "a", t, uid=1, seconds=60)
    await change(k, "a", t + 0.2, uid=1, seconds=60)  # the doubled frames of a join
    for s in range(0, 61, 5):
        await tick(k, s, t + 3 + s)
    await change(k, "b", t + 65, uid=2)  # auto-advance 2 s after the end
    await tick(k, 0, t + 68)  # lead-in over
    await tick(k, 10, t + 78)
    await change(k, "a", t + 80, uid=1, seconds=60)  # b skipped after 12 s of play
    rows = await plays(database)
    assert [r["media_id"] for r in rows] == ["a", "b", "a"]
    assert rows[0]["completed"] is True and rows[0]["ended_at"] is not None
    assert rows[1]["completed"] is False
    assert 11.9 < rows[1]["metadata"]["played"] < 12.1
    assert rows[2]["ended_at"] is None
    stats = {r["media_id"]: r for r in await database.fetch(
        "SELECT media_id, play_count, total_duration FROM daz_mediatracker_stats")}
    assert (stats["a"]["play_count"], stats["a"]["total_duration"]) == (2, 60)
    assert (stats["b"]["play_count"], stats["b"]["total_duration"]) == (1, 12)
    lib = {r["media_id"]: r["play_count"] for r in await database.fetch(
        "SELECT media_id, play_count FROM daz_mediatracker_library")}
    assert lib == {"a": 2, "b": 1}  # plays, not queue adds or playlist ingests
    await k.stop()


async def test_reconnect_repeat_continues_the_same_play(database):
    k = await start(database)
    t = time.time() - 1000
    await feed(k, "playlist", [item(1, "a", seconds=100), item(2, "b")], t)
    await change(k, "a", t, uid=1, seconds=100, current=0, paused=False)
    await tick(k, 30, t + 30)
    await disconnect(k, t + 31)
    row = (await plays(database))[0]
    assert row["ended_at"] is not None  # closed while we could not watch
    # Back 20 s later; the server kept playing: the join burst repeats the current item.
    await change(k, "a", t + 51, uid=1, seconds=100, current=51, paused=False)
    await change(k, "a", t + 51.1, uid=1, seconds=100, current=51.1, paused=False)
    rows = await plays(database)
    assert len(rows) == 1 and rows[0]["ended_at"] is None  # reopened, not a second play
    await tick(k, 95, t + 95)
    await change(k, "b", t + 102, uid=2)
    rows = await plays(database)
    assert rows[0]["completed"] is True and len(rows) == 2
    total = await database.fetchval(
        "SELECT total_duration FROM daz_mediatracker_stats WHERE media_id = 'a'")
    assert total == 100  # credited once, though the play was closed twice
    await k.stop()


async def test_restart_picks_up_the_play_and_a_loop_is_a_new_play(database):
    t = time.time() - 15  # stopping closes the play at the real "now": t + 15
    k = await start(database)
    await feed(k, "playlist", [item(7, "solo", seconds=40)], t)
    await change(k, "solo", t, uid=7, seconds=40, current=0, paused=False)
    await tick(k, 10, t + 10)
    await k.stop()  # closes the play at "now" (position 15)
    k = await start(database)
    await feed(k, "playlist", [item(7, "solo", seconds=40)], t + 20)
    await change(k, "solo", t + 20, uid=7, seconds=40, current=20, paused=False)
    await change(k, "solo", t + 20.1, uid=7, seconds=40, current=20.1, paused=False)
    assert len(await plays(database)) == 1  # the same play, still going
    await tick(k, 40, t + 40)
    await change(k, "solo", t + 42, uid=7, seconds=40, current=-3, paused=True)  # it loops
    rows = await plays(database)
    assert len(rows) == 2 and rows[0]["completed"] is True and rows[1]["ended_at"] is None
    await k.stop()


async def test_each_room_has_its_own_current_play(database):
    k = await start(database)
    other = RecordingRoom(room_id="other", channel="otherchan", bot_name="dazbot")
    k.manager.rooms.add(other)
    t = time.time() - 100
    await change(k, "x", t, uid=1)
    await change(k, "y", t + 1, uid=1, room=other)
    await change(k, "z", t + 2, uid=2)
    assert [r["media_id"] for r in await plays(database)] == ["x", "z"]
    assert [r["ended_at"] is None for r in await plays(database, "otherchan")] == [True]
    await k.stop()


async def mirror(database):
    return [(int(r["uid"]), r["media_id"]) for r in await database.fetch(
        "SELECT uid, media_id FROM daz_mediatracker_queue WHERE channel = 'testchan'"
        " ORDER BY position")]


def expected(k):
    return [(i.uid, i.media.id) for i in k.room.state.playlist_items()]


async def test_playlist_mirror_follows_every_edit_by_uid(database):
    k = await start(database)
    await feed(k, "playlist", [item(u, f"m{u}") for u in range(1, 6)])
    await feed(k, "queue", {"item": item(6, "m6"), "after": 2})
    await feed(k, "queue", {"item": item(7, "m7"), "after": "prepend"})
    await feed(k, "delete", {"uid": 3})
    await feed(k, "moveVideo", {"from": 5, "after": "prepend"})
    await feed(k, "moveVideo", {"from": 7, "after": 4})
    assert await mirror(database) == expected(k) == [
        (5, "m5"), (1, "m1"), (2, "m2"), (6, "m6"), (4, "m4"), (7, "m7")]
    rng = random.Random(7)
    uid = 100
    for _ in range(300):
        order = list(k.room.state.order)
        op = rng.random()
        if op < 0.4 or not order:
            uid += 1
            after = rng.choice(order + ["prepend"]) if order else "prepend"
            await feed(k, "queue", {"item": item(uid, f"m{uid % 37}"), "after": after},
                       settle=False)
        elif op < 0.65:
            await feed(k, "delete", {"uid": rng.choice(order)}, settle=False)
        else:
            await feed(k, "moveVideo", {"from": rng.choice(order),
                                        "after": rng.choice(order + ["prepend"])}, settle=False)
    await k.bus.drain(30)
    assert await mirror(database) == expected(k)
    # A whole new playlist (a shuffle) replaces it in one go.
    items = [item(u, f"s{u}") for u in rng.sample(range(500, 600), 100)]
    await feed(k, "playlist", items)
    assert await mirror(database) == expected(k) and len(expected(k)) == 100
    await k.stop()


async def test_a_4000_item_playlist_is_ingested_at_once(database):
    k = await start(database)
    items = [item(u, f"v{u % 3500}", mtype="yt") for u in range(1, 4001)]  # some twice
    await feed(k, "playlist", items)  # its speed: bench/bench_playlist.py
    assert await database.fetchval("SELECT count(*) FROM daz_mediatracker_queue") == 4000
    assert await database.fetchval(
        "SELECT count(*) FROM daz_mediatracker_library WHERE play_count = 0") == 3500
    await k.stop()


async def test_nowplaying_and_stats_commands(database):
    k = await start(database)
    assert await command(k, "np", "alice") == ["Nothing is playing right now."]
    assert await command(k, "stats", "alice") == ["No plays recorded in this channel yet."]
    t = time.time()
    await feed(k, "playlist", [item(1, "abc123", mtype="yt", seconds=245, by="bob")], t - 70)
    await change(k, "abc123", t - 65, uid=1, seconds=245, current=0, paused=False, mtype="yt")
    await tick(k, 60, t - 5)
    reply = (await command(k, "nowplaying", "alice"))[0]
    assert reply.startswith("Now playing: title abc123 [https://youtu.be/abc123] ")
    assert " / 4:05, queued by bob" in reply and " 1:0" in reply  # about 1:05 in
    assert await command(k, "stats", "alice") == ["Most played here: 1. title abc123 (1 play)"]
    await k.stop()


async def test_hostile_titles_and_durations_do_not_break_the_mirror_or_the_play(database):
    k = await start(database)
    evil = item(1, "evil\x00id")
    evil["media"]["title"] = "evil\x00title " + "x" * 100_000
    evil["media"]["seconds"] = 10**12  # far beyond the INTEGER columns
    await feed(k, "playlist", [evil, item(2, "fine")])
    await change(k, "evil\x00id", time.time(), uid=1, seconds=10**12)
    queue = await database.fetch("SELECT uid, media_id, title, duration"
                                 " FROM daz_mediatracker_queue ORDER BY position")
    assert [(r["uid"], r["media_id"]) for r in queue] == [("1", "evilid"), ("2", "fine")]
    assert queue[0]["title"].startswith("eviltitle x") and len(queue[0]["title"]) == 1000
    assert queue[0]["duration"] == 2**31 - 1
    play = await database.fetchrow(f"SELECT media_id, title FROM {P}")
    assert play["media_id"] == "evilid" and "\x00" not in play["title"]
    assert await database.fetchval(
        "SELECT count(*) FROM daz_mediatracker_library WHERE media_id = 'evilid'") == 1
    assert k.manager.status()["mediatracker"]["errors"] == 0
    await k.stop()


async def test_a_lone_surrogate_in_a_title_is_stored_cleaned(database):
    k = await start(database)
    odd = item(1, "odd")
    odd["media"]["title"] = "broken \ud83d emoji"
    odd["queueby"] = "al\udc00ice"
    await feed(k, "playlist", [odd, item(2, "fine")])
    t = time.time()
    await feed(k, "setCurrent", 1, t)
    await feed(k, "changeMedia", {**odd["media"], "currentTime": -3.0, "paused": True}, t)
    queue = await database.fetch("SELECT media_id, title, queued_by"
                                 " FROM daz_mediatracker_queue ORDER BY position")
    assert [r["media_id"] for r in queue] == ["odd", "fine"]
    assert queue[0]["title"] == "broken \ufffd emoji" and queue[0]["queued_by"] == "al\ufffdice"
    play = await database.fetchrow(f"SELECT media_id, title FROM {P}")
    assert (play["media_id"], play["title"]) == ("odd", "broken \ufffd emoji")
    assert k.manager.status()["mediatracker"]["errors"] == 0
    await k.stop()
