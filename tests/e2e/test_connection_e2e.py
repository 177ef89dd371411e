"""The connection layer against the fake CyTube server over real sockets: a Room built directly
with a Bus (no database). Join, chat both ways, restarts, dead connections, refusals, flood
limits, many rooms at once."""
from __future__ import annotations

import asyncio
import contextlib

import pytest

from daz.bus import Bus
from daz.config import RoomConfig
from daz.cytube import events as ev
from daz.cytube import lifecycle as lifecycle_module
from daz.cytube.intake import INBOX_LIMIT
from daz.cytube.outgoing_text import SLASH_GUARD
from daz.cytube.room import Room
from daz.events import MessageSent, RoomConnected, RoomDisconnected, RoomJoined
from daz.metrics import Metrics
from tests.e2e.harness import wait_until
from tests.fakes.cytube import FakeCytubeServer

BOT, PW = "dazbot", "dazbot-pw"


@pytest.fixture
async def server():
    fake = FakeCytubeServer()
    await fake.start()
    fake.add_account(BOT, PW)
    fake.set_channel_rank("testchan", BOT, 2)
    try:
        yield fake
    finally:
        await fake.stop()


class Recorder:
    def __init__(self, bus: Bus):
        self.events: list = []
        bus.subscribe("*", self._record, owner="recorder", overflow="block")

    async def _record(self, event) -> None:
        self.events.append(event)

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


@contextlib.asynccontextmanager
async def running_room(server_url: str, *, channel="testchan", username=BOT, password=PW,
                       join=True, **extra):
    bus = Bus()
    recorder = Recorder(bus)
    config = RoomConfig(channel=channel, username=username, password=password, enabled=True,
                        server_url=server_url, **extra)
    room = Room(config, bus, metrics=Metrics())
    await room.start()
    try:
        if join:
            await wait_until(lambda: room.status()["joined"], 10, "the room to join")
        yield room, recorder
    finally:
        await room.stop()
        await bus.close()


def chats(recorder: Recorder) -> list[ev.ChatMessage]:
    return recorder.of(ev.ChatMessage)


async def test_connects_logs_in_and_sees_the_users(server):
    alice = await server.user("alice")
    async with running_room(server.base_url) as (room, rec):
        assert room.state.is_present("alice") and room.state.is_present(BOT)
        assert room.bot_name == BOT and room.state.bot_rank == 2
        status = room.status()
        assert status["connected"] and status["logged_in"] and status["gave_up"] is None
        await wait_until(lambda: rec.of(RoomJoined), 5, "RoomJoined published")
        connected, joined = rec.of(RoomConnected), rec.of(RoomJoined)
        assert len(connected) == 1 and len(joined) == 1 and not joined[0].reconnect
        assert rec.events.index(connected[0]) < rec.events.index(joined[0])
        await alice.leave()
        await wait_until(lambda: not room.state.is_present("alice"), 5, "alice to leave")
        assert room.metrics.room_connected.labels(room="testchan")._value.get() == 1


async def test_receives_live_chat_and_replies_through_the_outbox(server):
    alice = await server.user("alice")
    async with running_room(server.base_url) as (room, rec):
        await alice.chat("hello <bot> & friends")
        line = await wait_until(lambda: [c for c in chats(rec) if c.username == "alice"], 5)
        assert line[0].text == "hello <bot> & friends"
        assert not line[0].replayed and not line[0].own and not line[0].ignored
        await room.say("hi alice")
        await room.pm("alice", "a secret")
        await alice.wait_for("chatMsg", lambda p: p["username"] == BOT and p["msg"] == "hi alice")
        await alice.wait_for("pm", lambda p: p["username"] == BOT and p["msg"] == "a secret")
        await wait_until(lambda: len(rec.of(MessageSent)) == 2, 5, "MessageSent twice")
        own = await wait_until(lambda: [c for c in chats(rec) if c.own], 5, "our own echo")
        assert own[0].text == "hi alice" and own[0].ignored
        pm_echo = await wait_until(lambda: [p for p in rec.of(ev.PrivateMessage) if p.own], 5)
        assert pm_echo[0].to == "alice"
        assert server.pms_to("alice") == [(BOT, "a secret")]
        assert not room.outbox.in_flight  # both lines were answered by their echo


async def test_replayed_history_is_never_marked_live(server):
    alice = await server.user("alice")
    for text in ("!ping", "old news", "!roll 6"):
        await alice.chat(text)
    async with running_room(server.base_url) as (_room, rec):
        await alice.chat("fresh")
        await wait_until(lambda: any(c.text == "fresh" for c in chats(rec)), 5)
        by_text = {c.text: c for c in chats(rec) if c.username == "alice"}
        assert all(by_text[t].replayed for t in ("!ping", "old news", "!roll 6"))
        assert not by_text["fresh"].replayed
        joined_at = rec.events.index(rec.of(RoomJoined)[0])
        assert all(rec.events.index(by_text[t]) < joined_at for t in ("!ping", "old news"))


async def test_a_leading_slash_from_user_text_does_not_run_a_command(server):
    alice = await server.user("alice")
    async with running_room(server.base_url) as (room, _rec):
        await room.say("/afk")  # user_input defaults to True
        await room.say("/clear", user_input=True)
        await alice.wait_for("chatMsg", lambda p: p["username"] == BOT and "clear" in p["msg"])
        assert server.chat_from("testchan", BOT) == [SLASH_GUARD + "/afk", SLASH_GUARD + "/clear"]
        assert not room.state.user(BOT).afk
        assert not alice.received("clearchat") and not alice.received("setAFK")
        await room.say("/afk", user_input=False)  # the bot's own command does run
        await alice.wait_for("setAFK", lambda p: p["name"] == BOT and p["afk"])


async def test_survives_a_server_restart_and_says_so(server):
    async with running_room(server.base_url) as (room, rec):
        await server.restart(down_for=0.3)
        await wait_until(lambda: len(rec.of(RoomJoined)) == 2, 20, "the second join")
        gone = rec.of(RoomDisconnected)
        assert len(gone) == 1 and gone[0].will_retry
        assert rec.of(RoomJoined)[1].reconnect and rec.of(RoomConnected)[1].reconnect
        assert room.status()["reconnects"] >= 1 and room.status()["joined"]
        assert room.metrics.reconnects.labels(room="testchan")._value.get() >= 1
        bob = await server.user("bob")
        await room.say("back again")
        await bob.wait_for("chatMsg", lambda p: p["username"] == BOT and p["msg"] == "back again")


async def test_lines_said_while_offline_are_held_and_sent_after_rejoining(server):
    async with running_room(server.base_url) as (room, _rec):
        restart = asyncio.create_task(server.restart(down_for=1.5))
        await wait_until(lambda: not room.status()["joined"], 5, "the room to notice")
        for i in range(3):
            await room.say(f"held {i}")
        assert room.status()["outbox_depth"] == 3
        await restart
        await wait_until(lambda: server.chat_from("testchan", BOT) == ["held 0", "held 1",
                                                                        "held 2"], 20)


async def test_stop_flushes_what_is_queued_then_leaves(server):
    bob = await server.user("bob")
    async with running_room(server.base_url) as (room, rec):
        for i in range(25):
            await room.say(f"bye {i}")
    assert server.chat_from("testchan", BOT) == [f"bye {i}" for i in range(25)]
    await bob.wait_for("userLeave", lambda p: p["name"] == BOT)
    assert not room.connected and rec.of(RoomDisconnected)[-1].will_retry is False


async def test_a_connection_cut_without_any_event_is_noticed_and_rejoined(server):
    async with running_room(server.base_url) as (_room, rec):
        await server.kill_connections()
        await wait_until(lambda: len(rec.of(RoomJoined)) == 2, 20, "rejoin after a cut")
        assert rec.of(RoomDisconnected)[0].will_retry


async def test_a_bad_password_stops_the_room_instead_of_looping(server):
    async with running_room(server.base_url, password="wrong", join=False) as (room, rec):
        await wait_until(lambda: room.status()["gave_up"], 10, "the room to give up")
        await asyncio.sleep(1.5)  # would be several attempts if it retried
        status = room.status()
        assert "Invalid username/password combination" in status["gave_up"]
        assert status["reconnects"] == 0 and len(rec.of(RoomConnected)) == 1
        assert not status["joined"] and not status["connected"]
        gone = rec.of(RoomDisconnected)
        assert len(gone) == 1 and not gone[0].will_retry
        await room.say("anyone?")
        assert room.status()["outbox_depth"] == 0  # refused, not queued forever


async def test_a_guest_taking_a_registered_name_gives_up(server):
    async with running_room(server.base_url, password="", join=False) as (room, _rec):
        await wait_until(lambda: room.status()["gave_up"], 10)
        assert "That username is registered." in room.status()["gave_up"]


async def test_a_guest_delay_is_waited_out_on_the_same_socket():
    # Long enough that a loaded machine still logs the bot in inside the window.
    fake = FakeCytubeServer(guest_login_delay=4.0)
    await fake.start()
    try:
        first = await fake.user("guest1", ip="127.0.0.1")  # uses up the bot's IP's guest slot
        assert first.connected
        async with running_room(fake.base_url, username="guestbot", password="",
                                join=False) as (room, rec):
            await wait_until(lambda: room.status()["joined"], 15, "the delayed guest login")
            assert room.status()["reconnects"] == 0 and room.state.guest
            logins = rec.of(ev.LoginResult)
            assert [login.success for login in logins] == [False, True]
    finally:
        await fake.stop()


async def test_one_hundred_lines_arrive_in_order_without_a_single_drop(server):
    alice = await server.user("alice")
    async with running_room(server.base_url) as (room, rec):
        lines = [f"line {i:03d}" for i in range(100)]
        for line in lines:
            await room.say(line)
        await wait_until(lambda: len(server.chat_from("testchan", BOT)) >= 100, 30,
                         "100 lines delivered")
        assert server.chat_from("testchan", BOT) == lines
        assert server.dropped_from("testchan", BOT) == 0
        assert not [e for e in alice.events if e[0] == "cooldown"]
        await wait_until(lambda: len(rec.of(MessageSent)) == 100, 5)
        assert [m.text for m in rec.of(MessageSent)] == lines


async def test_a_server_cooldown_loses_nothing_and_repeats_nothing(server):
    """Channel antiflood is switched on while we are rank 1: the server drops some lines until
    the outbox has learned the new limit; every line still arrives exactly once, in order."""
    server.set_channel_rank("testchan", BOT, 1)
    async with running_room(server.base_url) as (room, _rec):
        await server.set_options("testchan", chat_antiflood=True,
                                 chat_antiflood_params={"burst": 2, "sustained": 5,
                                                        "cooldown": 1})
        await wait_until(lambda: room.state.antiflood == (2, 5.0), 5)
        room.outbox.set_limits(20, 10.0, 0.0)  # pretend we had not caught up: overrun it
        room.pump.apply_limits = lambda: None
        lines = [f"n{i}" for i in range(8)]
        for line in lines:
            await room.say(line)
        await wait_until(lambda: len(server.chat_from("testchan", BOT)) >= 8, 20)
        await asyncio.sleep(0.5)
        assert server.dropped_from("testchan", BOT) > 0  # the server did drop some
        assert server.chat_from("testchan", BOT) == lines  # yet each arrived once, in order
        assert room.outbox.resent == server.dropped_from("testchan", BOT)


async def test_a_duplicate_login_gets_one_slow_retry_then_the_room_gives_up(server):
    async with running_room(server.base_url, cooldown_minutes=0.02) as (room, rec):
        intruder = await server.user(BOT, password=PW)
        await wait_until(lambda: rec.of(RoomDisconnected), 5, "the kick")
        assert "Duplicate login" in rec.of(RoomDisconnected)[0].reason
        await wait_until(lambda: len(rec.of(RoomJoined)) == 2, 10, "the one slow retry")
        await intruder.wait_for("kick", lambda p: p["reason"] == "Duplicate login")
        await server.user(BOT, password=PW)  # it comes back: another bot uses this account
        await wait_until(lambda: room.status()["gave_up"], 10, "giving up")
        assert "kicked twice" in room.status()["gave_up"]


async def test_the_connect_rate_limit_is_respected(server, monkeypatch):
    monkeypatch.setattr(lifecycle_module, "RATE_LIMIT_WAIT", 1.5)
    limited = FakeCytubeServer(connect_burst=1, connect_refill_per_s=0.5)
    await limited.start()
    try:
        async with running_room(limited.base_url, password="", username="") as (room, rec):
            await limited.kill_connections()
            await wait_until(lambda: "Rate limit exceeded" in (room.status()["last_error"] or ""),
                             10, "a refused reconnect")
            await wait_until(lambda: len(rec.of(RoomJoined)) == 2, 15, "a later reconnect")
            assert limited.refused_connects >= 1
            assert room.last_retry_delay >= 1.5
    finally:
        await limited.stop()


async def test_reconnect_attempts_run_out_then_the_room_gives_up():
    async with running_room("http://127.0.0.1:1", join=False, reconnect_attempts=2) as (room,
                                                                                        _rec):
        room.backoff.base = 0.05
        await wait_until(lambda: room.status()["gave_up"], 15, "giving up")
        assert "after 2 failed reconnect attempt(s)" in room.status()["gave_up"]
        assert room.status()["reconnects"] == 2
        assert "127.0.0.1:1" in room.status()["last_error"]


async def test_many_rooms_are_isolated_from_each_others_failures(server):
    async with contextlib.AsyncExitStack() as stack:
        dead, _ = await stack.enter_async_context(
            running_room("http://127.0.0.1:1", channel="deadchan", join=False))
        dead.backoff.base = 0.05
        refused, _ = await stack.enter_async_context(
            running_room(server.base_url, channel="otherchan", password="bad", join=False))
        good, rec = await stack.enter_async_context(running_room(server.base_url))
        bob = await server.user("bob")
        for i in range(20):
            await good.say(f"still here {i}")
        await wait_until(lambda: len(server.chat_from("testchan", BOT)) == 20, 10)
        await wait_until(lambda: refused.status()["gave_up"], 10)
        assert dead.status()["reconnects"] >= 2 and not dead.status()["gave_up"]
        assert good.status()["reconnects"] == 0
        await bob.chat("ping")
        await wait_until(lambda: any(c.text == "ping" for c in chats(rec)), 5)


async def test_hostile_frames_from_the_server_never_break_the_room(server):
    alice = await server.user("alice")
    async with running_room(server.base_url) as (room, rec):
        members = server.channel("testchan").members.values()
        bot_sid = next(m.sid for m in members if (m.name or "").lower() == BOT)
        for event, payload in [("userlist", "nope"), ("chatMsg", {"msg": ["x"]}),
                               ("addUser", {"name": "\x00" * 10, "rank": "NaN"}),
                               ("queue", {"item": {"uid": 1e309}, "after": "--1"}),
                               ("chatMsg", {"username": "eve", "msg": "x" * 100_000,
                                            "time": 1}),
                               ("setCurrent", [[[[[]]]]]), ("cooldown", "soon"),
                               ("", None), ("channelOpts", {"chat_antiflood": True,
                                                            "chat_antiflood_params": [1]})]:
            server.send(bot_sid, event, payload)
        await alice.chat("still works")
        await wait_until(lambda: any(c.text == "still works" for c in chats(rec)), 5)
        assert room.status()["joined"]
        assert any(e.malformed for e in rec.of(ev.CytubeEvent))
        await room.say("and I can talk")
        await alice.wait_for("chatMsg", lambda p: p["msg"] == "and I can talk")


def flood(server, count: int, first_time: int = 1_800_000_000_000) -> None:
    sid = next(m.sid for m in server.channel("testchan").members.values() if m.name == BOT)
    for i in range(count):
        server.send(sid, "chatMsg", {"username": "alice", "msg": f"flood {i}", "meta": {},
                                     "time": first_time + i})


async def test_a_lane_that_pushes_back_stops_the_socket_being_read_and_loses_nothing(server):
    async with running_room(server.base_url) as (room, rec):
        gate = asyncio.Event()
        got: list[str] = []

        async def slow_but_lossless(event) -> None:
            await gate.wait()
            got.append(event.msg)

        room.bus.subscribe("cytube.event.chatMsg", slow_but_lossless, owner="slow",
                           overflow="block", max_queue=100)
        count = 4 * INBOX_LIMIT
        flood(server, count)
        await wait_until(lambda: len(room.intake.inbox) >= INBOX_LIMIT, 10, "the inbox to fill")
        peak = 0
        for _ in range(25):  # the reader waits: the rest stays in TCP buffers and the server
            peak = max(peak, len(room.intake.inbox))
            await asyncio.sleep(0.02)
        assert peak <= INBOX_LIMIT + 2  # + the room's own events, if any
        assert room.status()["connected"]
        gate.set()
        await wait_until(lambda: len(got) == count, 30, "every line")
        assert got == [f"flood {i}" for i in range(count)]
        assert room.status()["connected"] and not rec.of(RoomDisconnected)


async def test_a_room_stops_promptly_while_its_reader_waits_for_the_bus(server):
    async with running_room(server.base_url) as (room, _rec):
        never = asyncio.Event()

        async def stuck(event) -> None:
            await never.wait()

        room.bus.subscribe("cytube.event.chatMsg", stuck, owner="stuck", overflow="block",
                           max_queue=10)
        flood(server, 2 * INBOX_LIMIT)
        await wait_until(lambda: room.intake.backlogged, 10, "the reader to wait")
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(room.stop(), 15)
        # (2 s of that is the room giving its dispatcher a chance to publish what is queued)
        assert asyncio.get_running_loop().time() - started < 4
        assert not room.status()["connected"]
