"""The fake CyTube server's limits (flood throttle, antiflood, connect bucket, usercount),
playlist events, playback, bad frames and faults (restart, killed connections, stop)."""
from __future__ import annotations

import asyncio
import socket

import pytest
import socketio

from tests.fakes.cytube import FakeCytubeServer, SimulatedUser


async def wait_count(user: SimulatedUser, event: str, count: int, timeout: float = 3.0) -> list:
    for _ in range(count):
        await user.wait_for(event, timeout=timeout)
    return user.received(event)


async def test_thirty_back_to_back_pass_twenty_and_get_ten_cooldowns(server):
    bob = await server.user("bob")
    for i in range(30):
        await bob.chat(f"m{i}")
    cooldowns = await wait_count(bob, "cooldown", 10)
    assert cooldowns == [100] * 10
    assert server.chat_from("testchan", "bob") == [f"m{i}" for i in range(20)]
    assert server.dropped_from("testchan", "bob") == 10
    server.clock.advance(2.1)                       # 2 s of quiet resets the counter
    await bob.chat("after the pause")
    await bob.wait_for("chatMsg", lambda p: p["msg"] == "after the pause")


async def test_pms_share_the_chat_throttle(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    for i in range(15):
        await bob.chat(f"c{i}")
    for i in range(10):
        await bob.pm("alice", f"p{i}")
    assert await wait_count(bob, "cooldown", 5) == [100] * 5
    assert len(server.pms_to("alice")) == 5
    assert server.dropped_from("testchan", "bob") == 5
    assert len(await wait_count(alice, "pm", 5)) == 5


async def test_channel_antiflood_applies_below_rank_two_only(server):
    await server.set_options("testchan", chat_antiflood=True)
    alice = await server.user("alice")
    bob = await server.user("bob")
    for i in range(10):
        await bob.chat(f"b{i}")
        await alice.chat(f"a{i}")
    assert await wait_count(bob, "cooldown", 6) == [1000] * 6
    await alice.wait_for("chatMsg", lambda p: p["msg"] == "a9")
    assert server.chat_from("testchan", "bob") == ["b0", "b1", "b2", "b3"]
    assert len(server.chat_from("testchan", "alice")) == 10
    assert alice.received("cooldown") == []


async def test_channel_options_are_broadcast_whole(server):
    bob = await server.user("bob")
    await server.set_options("testchan", chat_antiflood=True)
    options = await bob.wait_for("channelOpts", lambda o: o["chat_antiflood"])
    assert options["chat_antiflood_params"] == {"burst": 4, "sustained": 1, "cooldown": 4}
    assert options["afk_timeout"] == 600


async def test_connect_bucket_allows_five_then_one_per_ten_seconds(server):
    clients = []
    try:
        for _ in range(5):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(server.base_url, headers={"X-Forwarded-For": "127.0.0.77"},
                                 transports=["websocket"], wait_timeout=3)
            clients.append(client)
        refused = socketio.AsyncClient(reconnection=False)
        errors = []
        refused.on("connect_error", lambda data: errors.append(data))
        for _ in range(2):                          # refusals cost no token
            with pytest.raises(socketio.exceptions.ConnectionError):
                await refused.connect(server.base_url,
                                      headers={"X-Forwarded-For": "127.0.0.77"},
                                      transports=["websocket"], wait_timeout=3)
        assert errors and errors[0] == {"message": "Rate limit exceeded"}
        assert server.refused_connects == 2
        other = socketio.AsyncClient(reconnection=False)    # another IP has its own bucket
        await other.connect(server.base_url, headers={"X-Forwarded-For": "127.0.0.78"},
                            transports=["websocket"], wait_timeout=3)
        clients.append(other)
        server.clock.advance(10)
        again = socketio.AsyncClient(reconnection=False)
        await again.connect(server.base_url, headers={"X-Forwarded-For": "127.0.0.77"},
                            transports=["websocket"], wait_timeout=3)
        clients.append(again)
    finally:
        for client in clients:
            await client.disconnect()


async def test_usercount_is_throttled_to_one_broadcast_per_interval():
    srv = FakeCytubeServer(usercount_interval=0.3)
    await srv.start()
    try:
        first = await srv.user("one")
        assert await first.wait_for("usercount") == 1
        await srv.user("two")
        await srv.user("three")
        assert await first.wait_for("usercount", timeout=3) == 3   # one late broadcast, latest
        await asyncio.sleep(0.4)
        assert first.received("usercount") == [1, 3]
    finally:
        await srv.stop()


async def test_playlist_events_from_server_actions(server):
    bob = await server.user("bob")
    mark = bob.mark()
    first = await server.queue_media("testchan", {"id": "one", "title": "One", "seconds": 12,
                                                  "type": "cu"}, temp=True, queueby="alice")
    queued = await bob.wait_for("queue")
    assert queued["after"] == "prepend"
    assert queued["item"]["uid"] == first and queued["item"]["temp"] is True
    assert queued["item"]["queueby"] == "alice"
    assert queued["item"]["media"]["duration"] == "00:12"
    assert await bob.wait_for("setPlaylistMeta", since=mark) == {"count": 1, "rawTime": 12,
                                                                 "time": "00:12"}
    second = await server.queue_media("testchan", {"id": "somestreamer", "type": "tw",
                                                   "title": "Twitch.tv - somestreamer"})
    live = await bob.wait_for("queue")
    assert live["after"] == first and live["item"]["media"]["duration"] == "--:--"
    third = await server.queue_media("testchan", {"id": "x", "type": "tw"}, after="prepend")
    assert (await bob.wait_for("queue"))["after"] == "prepend"
    assert [e.uid for e in server.channel("testchan").playlist] == [third, first, second]

    await server.play("testchan", first)
    assert await bob.wait_for("setCurrent") == first
    change = await bob.wait_for("changeMedia")
    assert change["title"] == "One" and change["currentTime"] == 0 and change["paused"] is False
    await server.media_update("testchan", 5.0)
    assert await bob.wait_for("mediaUpdate") == {"currentTime": 5.0, "paused": False}

    await server.move_media("testchan", third, second)
    assert await bob.wait_for("moveVideo") == {"from": third, "after": second}
    await server.delete_media("testchan", first)
    assert await bob.wait_for("delete") == {"uid": first}
    assert await bob.wait_for("setCurrent", lambda uid: uid != first) == second
    assert (await bob.wait_for("changeMedia", lambda m: m["title"] != "One"))["type"] == "tw"

    await server.set_playlist("testchan", [{"id": "z", "type": "cu", "seconds": 3}])
    replaced = await bob.wait_for("playlist", lambda items: len(items) == 1)
    assert replaced[0]["media"]["seconds"] == 3


async def test_client_queue_needs_rank_and_valid_embeds(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    await bob.emit("queue", {"id": "somestreamer", "type": "tw", "pos": "end", "temp": True})
    frame = {"id": '<iframe src="https://example.com/embed/123" width="640"></iframe>',
             "type": "cu", "pos": "end", "temp": True, "title": "My custom embed",
             "duration": 12}
    await alice.emit("queue", frame)
    queued = await alice.wait_for("queue")
    assert queued["item"]["media"]["meta"] == {
        "embed": {"tag": "iframe", "src": "https://example.com/embed/123"}}
    assert queued["item"]["media"]["seconds"] == 12 and queued["item"]["queueby"] == "alice"
    assert len(server.channel("testchan").playlist) == 1       # bob (rank 1) was ignored
    assert bob.received("queueFail") == []
    await alice.emit("queue", frame)
    assert (await alice.wait_for("queueFail"))["msg"] == "This item is already on the playlist"
    await alice.emit("queue", {"id": '<iframe src="http://insecure.example/"></iframe>',
                               "type": "cu", "pos": "end"})
    assert (await alice.wait_for("queueFail"))["msg"].startswith("Invalid embed. Embed source")
    for i in range(10):
        await alice.emit("queue", {"id": f"fast{i}", "type": "tw", "pos": "end"})
    fail = await alice.wait_for("queueFail", lambda f: "too quickly" in f["msg"])
    assert fail == {"msg": "You are adding videos too quickly",
                    "link": f"https://twitch.tv/{fail['id']}", "id": fail["id"]}


async def test_auto_playback_ticks_and_advances():
    srv = FakeCytubeServer(auto_playback=True, lead_in=0.1, update_interval=0.2,
                           end_grace=0.1)
    await srv.start()
    try:
        watcher = await srv.user("watcher")
        first = await srv.queue_media("testchan", {"id": "a", "type": "cu", "seconds": 0.5},
                                      temp=True)
        second = await srv.queue_media("testchan", {"id": "b", "type": "cu", "seconds": 30})
        start = await watcher.wait_for("changeMedia")
        assert start["currentTime"] == -0.1 and start["paused"] is True
        assert await watcher.wait_for("mediaUpdate") == {"currentTime": 0.0, "paused": False}
        tick = await watcher.wait_for("mediaUpdate")
        assert tick["currentTime"] > 0 and tick["paused"] is False
        assert await watcher.wait_for("delete", timeout=3) == {"uid": first}
        assert await watcher.wait_for("setCurrent", lambda uid: uid == second) == second
        assert [e.uid for e in srv.channel("testchan").playlist] == [second]
    finally:
        await srv.stop()


@pytest.mark.parametrize("event, payload", [
    ("chatMsg", None), ("chatMsg", "just a string"), ("chatMsg", {"msg": 5}),
    ("chatMsg", {"msg": "x", "meta": "not a dict"}), ("chatMsg", [1, 2, 3]),
    ("pm", {"to": 5, "msg": "x"}), ("pm", {}), ("login", {"name": None}), ("login", "alice"),
    ("joinChannel", {"name": {"x": 1}}), ("queue", "x"), ("queue", {"id": 1, "type": []}),
    ("delete", "x"), ("delete", True), ("moveMedia", {"from": "a"}),
    ("setChannelRank", {"name": "bob", "rank": "high"}), ("setOptions", ["x"]),
    ("noSuchEvent", {"a": 1}), ("setMotd", {"motd": 5}),
])
async def test_malformed_frames_are_dropped_and_the_server_keeps_going(server, event, payload):
    alice = await server.user("alice")
    await alice.emit(event, payload)
    await alice.chat("still alive")
    await alice.wait_for("chatMsg", lambda p: p["msg"] == "still alive")


async def test_huge_and_nul_text_is_cut_and_cleaned(server):
    alice = await server.user("alice")
    await alice.chat("a\x00b" + "x" * 100_000)
    line = await alice.wait_for("chatMsg", lambda p: p["username"] == "alice")
    assert line["msg"] == "a b" + "x" * 317


async def test_restart_drops_everyone_and_comes_back_on_the_same_port(server):
    alice = await server.user("alice")
    await alice.chat("before the restart")
    await alice.wait_for("chatMsg", lambda p: p["msg"] == "before the restart")
    port = server.port
    await server.restart(down_for=0.2)
    await alice.wait_for("disconnect", timeout=3)
    assert server.port == port
    assert server.channel("testchan").members == {}
    again = await server.user("alice")
    assert ("alice", "before the restart") in again.chats()       # history survives


async def test_restart_reloads_the_channel_with_new_uids_and_the_item_a_few_seconds_back(server):
    await server.set_playlist("testchan", [
        {"media": {"id": "a", "title": "A", "seconds": 600, "type": "cu"}},
        {"media": {"id": "somestreamer", "title": "Live", "seconds": 0, "type": "tw"}},
        {"media": {"id": "c", "title": "C", "seconds": 600, "type": "cu"}}])
    channel = server.channel("testchan")
    old = [e.uid for e in channel.playlist]
    await server.play("testchan", old[2], current_time=346)
    await server.restart(behind=8)
    assert [e.uid for e in channel.playlist] == [0, 1, 2] != old  # as a live server reloads it
    alice = await server.user("alice")
    assert alice.received("setCurrent") == [2, 2]
    change = alice.received("changeMedia")[-1]
    assert change["title"] == "C" and change["currentTime"] == 338
    listed = alice.received("playlist")[-1]
    assert [item["uid"] for item in listed] == [0, 1, 2]
    assert listed[1]["media"]["duration"] == "00:00"  # a reloaded live item, as observed


async def test_kill_connections_cuts_sockets_without_a_kick(server):
    alice = await server.user("alice")
    bob = await server.user("bob")
    await server.kill_connections()
    await alice.wait_for("disconnect", timeout=3)
    await bob.wait_for("disconnect", timeout=3)
    assert alice.received("kick") == [] and bob.received("kick") == []
    for _ in range(100):
        if not server.connections:
            break
        await asyncio.sleep(0.02)
    assert server.connections == {}
    assert server.channel("testchan").members == {}
    await server.user("bob")                         # and it still serves


async def test_stop_frees_the_port_with_clients_still_connected():
    srv = FakeCytubeServer()
    await srv.start()
    raw = socketio.AsyncClient(reconnection=False)
    await raw.connect(srv.base_url, transports=["websocket"], wait_timeout=3)
    await raw.emit("joinChannel", {"name": "testchan"})
    port = srv.port
    await srv.stop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))
    await raw.disconnect()


async def test_kill_connections_also_cuts_long_polling_clients(server):
    raw = socketio.AsyncClient(reconnection=False)
    gone = asyncio.Event()
    raw.on("disconnect", lambda *args: gone.set())
    await raw.connect(server.base_url, transports=["polling"], wait_timeout=3)
    await raw.emit("joinChannel", {"name": "testchan"})
    await raw.emit("login", {"name": "poller"})
    for _ in range(100):
        if server.channel("testchan").find("poller"):
            break
        await asyncio.sleep(0.02)
    await server.kill_connections()
    await asyncio.wait_for(gone.wait(), 5)
    assert server.channel("testchan").find("poller") is None
