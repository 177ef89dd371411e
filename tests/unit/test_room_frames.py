"""Room without a socket: frames fed to its frame intake in the order the real server sends them,
a recording stand-in for the connection. Checks marking (replayed, own, whisper), the join
decision, login/kick verdicts, and the outbox pump under cooldowns."""
from __future__ import annotations

import asyncio
import logging

import pytest

from daz.bus import Bus
from daz.config import RoomConfig
from daz.cytube import events as ev
from daz.cytube.room import Room
from daz.events import MessageSent, RoomJoined
from daz.metrics import Metrics

USER = {"profile": {"image": "", "text": ""}, "meta": {"afk": False, "muted": False}}


class FakeConn:
    """What Room needs from a Connection: emit, close, connected, closed."""

    def __init__(self):
        self.sent: list[tuple[str, object]] = []
        self.closed = asyncio.Event()
        self.close_reason = ""

    @property
    def connected(self):
        return not self.closed.is_set()

    async def emit(self, event, payload=None):
        if self.closed.is_set():
            raise ConnectionError("not connected")
        self.sent.append((event, payload))

    async def close(self, reason="closed"):
        self.close_reason = self.close_reason or reason
        self.closed.set()


def make_room(username="dazbot", password="pw", **extra) -> tuple[Room, Bus, list]:
    bus = Bus()
    seen: list = []

    async def record(event):
        seen.append(event)

    bus.subscribe("*", record, owner="test", overflow="block")
    config = RoomConfig(channel="testchan", username=username, password=password, enabled=True,
                        server_url="http://127.0.0.1:1", **extra)
    return Room(config, bus, metrics=Metrics()), bus, seen


def feed(room: Room, event_name: str, payload) -> None:
    room.intake.on_frame(event_name, payload)


async def attach(room: Room) -> FakeConn:
    conn = FakeConn()
    room.lifecycle.conn = conn
    loop = asyncio.get_running_loop()
    room._tasks = [loop.create_task(room.intake.dispatch()), loop.create_task(room.pump.run())]
    return conn


async def settle(room: Room, bus: Bus) -> None:
    """Everything the room queued is published and handled."""
    for _ in range(400):
        if not room.intake.inbox:
            break
        await asyncio.sleep(0.005)
    await bus.drain(5)


async def detach(room: Room, bus: Bus) -> None:
    for task in room._tasks:
        task.cancel()
    await asyncio.gather(*room._tasks, return_exceptions=True)
    await bus.close()


def join_burst(room: Room, history: list[tuple[str, str, int]], *, name="dazbot") -> None:
    """Join-then-login as captured: rank -1, ..., history replay, ..., userlist, login."""
    f = room.intake.on_frame
    f("rank", -1)
    f("setPermissions", {"chat": 0})
    f("setPlaylistLocked", True)
    f("emoteList", [])
    for user, msg, t in history:
        f("chatMsg", {"username": user, "msg": msg, "meta": {}, "time": t})
    f("drinkCount", 0)
    f("setMotd", "Welcome")
    f("channelOpts", {"chat_antiflood": False,
                      "chat_antiflood_params": {"burst": 4, "sustained": 1, "cooldown": 4}})
    f("setPlaylistMeta", {"count": 0, "rawTime": 0, "time": "00:00"})
    f("playlist", [])
    f("userlist", [{"name": "alice", "rank": 5, **USER}])
    f("usercount", 1)
    f("rank", 1)
    f("login", {"success": True, "name": name})
    f("addUser", {"name": name, "rank": 1, **USER})
    f("rank", 2)
    f("userlist", [{"name": "alice", "rank": 5, **USER}, {"name": name, "rank": 2, **USER}])
    f("setUserRank", {"name": name, "rank": 2})


async def test_history_replay_is_marked_and_joined_is_published_once_after_login():
    room, bus, seen = make_room()
    await attach(room)
    join_burst(room, [("alice", "!ping", 1000), ("dazbot", "pong", 1001), ("bob", "old", 1002)])
    feed(room, "chatMsg", {"username": "alice", "msg": "!ping", "meta": {}, "time": 5000})
    feed(room, "chatMsg", {"username": "dazbot", "msg": "pong", "meta": {}, "time": 5001})
    await settle(room, bus)
    chats = [e for e in seen if isinstance(e, ev.ChatMessage)]
    assert [(c.text, c.replayed, c.own) for c in chats] == [
        ("!ping", True, False), ("pong", True, True), ("old", True, False),
        ("!ping", False, False), ("pong", False, True)]
    joined = [i for i, e in enumerate(seen) if isinstance(e, RoomJoined)]
    assert len(joined) == 1
    login_at = next(i for i, e in enumerate(seen) if isinstance(e, ev.LoginResult))
    assert joined[0] == login_at + 1  # right after the login reply completed the join
    assert seen[joined[0]].bot_name == "dazbot" and not seen[joined[0]].reconnect
    assert room.state.joined and room.state.bot_rank == 2
    assert room.status()["joined"] and room.status()["logged_in"]
    seqs = [e.seq for e in seen if isinstance(e, ev.CytubeEvent)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    await detach(room, bus)


async def test_login_before_userlist_joins_on_the_userlist():
    room, bus, _seen = make_room()
    await attach(room)
    feed(room, "login", {"success": True, "name": "dazbot"})
    assert not room.state.joined
    feed(room, "userlist", [{"name": "dazbot", "rank": 1, **USER}])
    assert room.state.joined
    await detach(room, bus)


async def test_an_old_line_after_joining_is_still_replayed_but_live_lines_are_not():
    room, bus, seen = make_room()
    await attach(room)
    join_burst(room, [("bob", "history", 9_000)])
    feed(room, "chatMsg", {"username": "bob", "msg": "stale", "meta": {}, "time": 8_000})
    feed(room, "chatMsg", {"username": "bob", "msg": "live", "meta": {}, "time": 9_500})
    feed(room, "chatMsg", {"username": "[server]", "msg": "bob joined", "time": 9_600,
                           "meta": {"addClass": "server-whisper"}})
    await settle(room, bus)
    chats = {e.text: e for e in seen if isinstance(e, ev.ChatMessage)}
    assert chats["stale"].replayed and not chats["live"].replayed
    assert chats["bob joined"].whisper and chats["bob joined"].ignored
    await detach(room, bus)


async def test_own_pm_echo_is_marked_and_names_compare_case_insensitively():
    room, bus, seen = make_room(username="DazBot")
    await attach(room)
    join_burst(room, [], name="DazBot")
    feed(room, "pm", {"username": "dazbot", "to": "bob", "msg": "hi", "meta": {}, "time": 1})
    feed(room, "pm", {"username": "bob", "to": "dazbot", "msg": "yo", "meta": {}, "time": 2})
    await settle(room, bus)
    pms = [e for e in seen if isinstance(e, ev.PrivateMessage)]
    assert [(p.text, p.own) for p in pms] == [("hi", True), ("yo", False)]
    await detach(room, bus)


async def test_anonymous_room_joins_without_login_and_refuses_to_send(caplog):
    room, bus, seen = make_room(username="", password="")
    conn = await attach(room)
    feed(room, "userlist", [])
    assert room.state.joined
    await room.say("hello")
    assert room.outbox.depth == 0 and "read-only" in caplog.text
    await settle(room, bus)
    assert any(isinstance(e, RoomJoined) for e in seen) and conn.sent == []
    await detach(room, bus)


@pytest.mark.parametrize("error", ["Invalid username/password combination",
                                   "That username is registered."])
async def test_a_permanent_login_failure_closes_with_a_fatal_verdict(error, caplog):
    room, bus, _seen = make_room()
    conn = await attach(room)
    feed(room, "login", {"success": False, "error": error})
    await asyncio.wait_for(conn.closed.wait(), 2)
    verdict = room.lifecycle.session_verdict
    assert verdict.fatal and error in verdict.reason
    assert error in caplog.text and "pw" not in caplog.text.replace("password", "")
    await detach(room, bus)


async def test_guest_delay_sends_login_again_on_the_same_socket():
    room, bus, _seen = make_room(password="")
    conn = await attach(room)
    feed(room, "login", {"success": False, "error": "Guest logins are restricted to one per "
                                                     "IP address per 0.1 seconds."})
    for _ in range(100):
        if conn.sent:
            break
        await asyncio.sleep(0.05)
    assert conn.sent == [("login", {"name": "dazbot"})] and not conn.closed.is_set()
    await detach(room, bus)


async def test_kicks_set_the_verdict_for_the_supervisor():
    room, bus, _seen = make_room()
    await attach(room)
    feed(room, "kick", {"reason": "Duplicate login"})
    assert room.lifecycle.session_verdict.slow and not room.lifecycle.session_verdict.fatal
    feed(room, "kick", {"reason": "Duplicate login"})
    assert room.lifecycle.session_verdict.fatal
    await detach(room, bus)


async def test_pump_sends_in_order_publishes_message_sent_and_resends_a_dropped_line():
    room, bus, seen = make_room()
    conn = await attach(room)
    join_burst(room, [])
    for i in range(5):
        await room.say(f"line {i}")
    await room.pm("alice", "psst")
    for _ in range(100):
        if len(conn.sent) == 6:
            break
        await asyncio.sleep(0.01)
    assert conn.sent[:5] == [("chatMsg", {"msg": f"line {i}", "meta": {}}) for i in range(5)]
    assert conn.sent[5] == ("pm", {"to": "alice", "msg": "psst", "meta": {}})
    # the server answers in order: line 0 echoed, line 1 dropped, the rest echoed
    feed(room, "chatMsg", {"username": "dazbot", "msg": "line 0", "meta": {}, "time": 10})
    feed(room, "cooldown", 100)
    for i in (2, 3, 4):
        feed(room, "chatMsg", {"username": "dazbot", "msg": f"line {i}", "meta": {},
                               "time": 10 + i})
    feed(room, "pm", {"username": "dazbot", "to": "alice", "msg": "psst", "meta": {},
                      "time": 20})
    for _ in range(100):
        if len(conn.sent) == 7:
            break
        await asyncio.sleep(0.02)
    assert conn.sent[6] == ("chatMsg", {"msg": "line 1", "meta": {}})
    await asyncio.sleep(0.2)
    assert len(conn.sent) == 7  # nothing sent twice
    await settle(room, bus)
    sent = [(e.text, e.to) for e in seen if isinstance(e, MessageSent)]
    assert sent == [(f"line {i}", None) for i in range(5)] + [("psst", "alice"), ("line 1", None)]
    assert (room.counts.chat_sent, room.counts.pm_sent) == (6, 1)
    await detach(room, bus)


async def test_nothing_is_sent_before_the_join_and_everything_after():
    room, bus, _seen = make_room()
    conn = await attach(room)
    await room.say("early")
    await asyncio.sleep(0.1)
    assert conn.sent == [] and room.status()["outbox_depth"] == 1
    join_burst(room, [])
    for _ in range(100):
        if conn.sent:
            break
        await asyncio.sleep(0.01)
    assert conn.sent == [("chatMsg", {"msg": "early", "meta": {}})]
    await detach(room, bus)


async def test_antiflood_channel_option_slows_us_when_our_rank_is_low():
    room, bus, _seen = make_room()
    await attach(room)
    join_burst(room, [])
    feed(room, "rank", 1)
    feed(room, "channelOpts", {"chat_antiflood": True,
                               "chat_antiflood_params": {"burst": 4, "sustained": 1}})
    room.pump.apply_limits()
    assert (room.outbox.burst, room.outbox.rate) == (3, 0.8)
    feed(room, "rank", 3)
    room.pump.apply_limits()
    assert (room.outbox.burst, room.outbox.rate) == (15, 8.0)
    await detach(room, bus)


async def test_malformed_frames_are_published_and_logged_once(caplog):
    caplog.set_level(logging.DEBUG, logger="daz.cytube.intake")
    room, bus, seen = make_room()
    await attach(room)
    for _ in range(3):
        feed(room, "addUser", "not an object")
    await settle(room, bus)
    assert sum(1 for e in seen if isinstance(e, ev.UserJoined)) == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING
                and "malformed addUser" in r.getMessage()]
    assert len(warnings) == 1 and "expected an object" in warnings[0].getMessage()
    counted = room.metrics.events_received.labels(type="addUser")._value.get()
    assert counted == 3
    await detach(room, bus)


async def test_emit_is_refused_politely_when_not_joined(caplog):
    room, bus, _seen = make_room()
    conn = await attach(room)
    await room.emit("queue", {"id": "x"})
    assert conn.sent == [] and "not joined" in caplog.text
    join_burst(room, [])
    await room.emit("queue", {"id": "x"})
    assert conn.sent == [("queue", {"id": "x"})]
    await detach(room, bus)


async def test_received_events_are_counted_per_type_with_unknown_types_capped_as_other():
    from daz.metrics import MAX_EVENT_TYPES

    room, bus, _seen = make_room()
    await attach(room)
    received = room.metrics.events_received
    for _ in range(3):
        feed(room, "usercount", 5)
    for i in range(MAX_EVENT_TYPES + 5):
        feed(room, f"madeUpEvent{i}", {})
    feed(room, "madeUpEvent0", {})  # a type counted under its own name stays so
    feed(room, f"madeUpEvent{MAX_EVENT_TYPES + 2}", {})  # past the cap: "other", every time
    await settle(room, bus)
    assert received.labels(type="usercount")._value.get() == 3
    assert received.labels(type="madeUpEvent0")._value.get() == 2
    labelled = {s.labels["type"] for m in room.metrics.registry.collect()
                if m.name == "daz_events_received" for s in m.samples
                if s.name.endswith("_total")}
    assert len(labelled) == MAX_EVENT_TYPES + 1  # the capped names and "other"
    others = received.labels(type="other")._value.get()
    assert others == (MAX_EVENT_TYPES + 5) - (MAX_EVENT_TYPES - 1) + 1
    assert room.counts.events_received == 3 + MAX_EVENT_TYPES + 5 + 2  # the room counts all
    await detach(room, bus)


async def test_frames_keep_their_order_when_a_blocking_subscriber_pushes_back():
    """Frames go to the bus at once while nothing waits, and through the inbox while a block
    lane is full; either way every frame arrives, in the order received."""
    room, bus, _ = make_room()
    seen: list = []
    gate = asyncio.Event()

    async def record(event):
        if isinstance(event, ev.ChatMessage):
            if not gate.is_set():
                await gate.wait()
            seen.append(event.msg)

    bus.subscribe("cytube.event.*", record, owner="slow", overflow="block", max_queue=5)
    await attach(room)
    await asyncio.sleep(0)  # the dispatch task is running
    inbox_used = 0
    for i in range(60):
        feed(room, "chatMsg", {"username": "u", "msg": f"m{i}", "meta": {}, "time": i + 1})
        inbox_used = max(inbox_used, len(room.intake.inbox))
        if i % 7 == 0:
            await asyncio.sleep(0)
        if i == 30:
            gate.set()
    await settle(room, bus)
    assert inbox_used > 0  # back-pressure was really applied
    assert seen == [f"m{i}" for i in range(60)]
    await detach(room, bus)


async def test_a_frame_never_overtakes_one_the_dispatcher_is_still_publishing():
    room, bus, _ = make_room()
    seen: list = []
    turns = asyncio.Semaphore(0)

    async def record(event):
        if isinstance(event, ev.ChatMessage):
            await turns.acquire()  # one event handled per release
            seen.append(event.msg)

    bus.subscribe("cytube.event.*", record, owner="slow", overflow="block", max_queue=5)
    await attach(room)
    await asyncio.sleep(0)

    def chat(i):
        feed(room, "chatMsg", {"username": "u", "msg": f"m{i}", "meta": {}, "time": i + 1})

    chat(0)
    await asyncio.sleep(0.01)  # m0 is in the handler, the lane is empty
    for i in range(1, 7):
        chat(i)  # m1..m5 fill the lane; m6 waits in the dispatcher for space
    await asyncio.sleep(0.01)
    assert not room.intake.inbox
    turns.release()  # m0 done, m1 taken: space, and the dispatcher is woken to queue m6 ...
    await asyncio.sleep(0)
    chat(7)  # ... but m7 arrives first: it must wait behind m6
    for _ in range(8):
        turns.release()
    await settle(room, bus)
    assert seen == [f"m{i}" for i in range(8)]
    await detach(room, bus)
