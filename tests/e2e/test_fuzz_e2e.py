"""Hostile input through a live bot (issue 6 §3, fuzzing), split from test_faults_e2e.py to
keep files small.

Frames are fed to the room's frame entry point (``room.intake.on_frame``, what the socket.io
client calls for every received frame), which is where a real server's bytes arrive after
decoding (malformed bytes below that, on a real websocket: test_packet_fuzz_e2e.py). Every
registered command gets hostile arguments from a bot admin (so admin-only and cooldown checks
do not stop them). Checked: no handler or command raised, nothing the bot queued
or sent is longer than the server's 320-character limit, every valid chat line mixed in is in
daz_core_events exactly once, and the room still works afterwards.
"""
from __future__ import annotations

import itertools
import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daz.cytube.events import EVENT_TYPES
from daz.events import CommandExecuted, MessageSent
from tests.e2e.harness import BOT_NAME, running_bot, wait_until
from tests.e2e.support import CHANNEL, flush_all, plugins, wait_for_line

ADMIN = "fuzzadmin"
STEADY = "steady-valid-user"
MAX_LINE = 320  # the server cuts chat and PMs here (JavaScript string length: UTF-16 units)
# A login refusal or a kick ends the session by design (covered by the connection tests); fed
# at random they would only make the room reconnect or give up in the middle of the run.
SESSION_ENDERS = {"login", "kick"}
EVENT_NAMES = sorted(set(EVENT_TYPES) - SESSION_ENDERS)

HOSTILE_TEXTS = [
    "", "\x00", "a\x00b", "\ud800", "x\udfffy", "/kick everyone", "/ban bob", "'", '"', '"\'"',
    "<script>alert(1)</script>", "&amp;&lt;&#0;", "\u202e\u200b\ufeff", "@" * 30,
    "word " * 2000, "x" * 100_000, "http://169.254.169.254/latest.png", "-1", "99999999999999",
    "NaN", "#0", "@ADMIN", "disable ping", "cancel 1", "ＡＢＣ", "🙂" * 400,
]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def nested(depth: int) -> object:
    value: object = "bottom"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-2**80, max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(HOSTILE_TEXTS), st.just(nested(300)))
payloads = st.recursive(
    leaves, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                    st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=15)
FIELDS = ["username", "msg", "time", "meta", "name", "rank", "media", "uid", "item", "after",
          "from", "to", "currentTime", "paused", "afk", "id", "title", "seconds", "type",
          "success", "error", "reason", "count", "users", "profile"]
shaped = st.dictionaries(st.sampled_from(FIELDS), payloads, max_size=8)
frames = st.tuples(
    st.one_of(st.sampled_from(EVENT_NAMES), st.text(max_size=30),
              st.sampled_from(["x" * 5000, "\ud800", "", "chatMsg\x00"])),
    st.one_of(shaped, payloads, st.lists(shaped, max_size=50)))


class Recorder:
    def __init__(self, bus):
        self.sent: list[MessageSent] = []
        self.commands: list[CommandExecuted] = []
        bus.subscribe("daz.room.sent", self._sent, owner="test-recorder", overflow="block")
        bus.subscribe("daz.command.executed", self._command, owner="test-recorder",
                      overflow="block")

    async def _sent(self, event: MessageSent) -> None:
        self.sent.append(event)

    async def _command(self, event: CommandExecuted) -> None:
        self.commands.append(event)


async def test_hostile_frames_and_commands_break_nothing(fake_server, migrated_dsn, tmp_path,
                                                         caplog):
    server = fake_server
    caplog.set_level(logging.WARNING)
    config = plugins(gallery={"rate_limit_seconds": 0})
    async with running_bot(server, migrated_dsn, tmp_path, plugins=config,
                           admin_users=[ADMIN]) as bot:
        room = bot.room
        feed = room.intake.on_frame  # the frame entry point the socket client calls
        recorder = Recorder(bot.bus)
        clock = itertools.count(4_000_000_000_000)  # CyTube ms times far from the real ones
        valid: list[str] = []

        def steady_line() -> None:
            text = f"valid line {len(valid)}"
            valid.append(text)
            feed("chatMsg", {"username": STEADY, "msg": text, "meta": {}, "time": next(clock)})

        def admin_here() -> None:  # an admin counts only while in the room, logged in
            feed("addUser", {"name": ADMIN, "rank": 3, "profile": {"image": "", "text": ""},
                             "meta": {"afk": False, "muted": False}})

        # 1. Every command, every hostile argument, from an admin, in chat and by PM.
        admin_here()
        names = sorted(entry.name for entry in bot.commands.all())
        assert {"ping", "help", "tell", "seen"} <= set(names)
        for name in names:
            for i, text in enumerate(HOSTILE_TEXTS):
                line = f"!{name} {text}"
                if i % 3:
                    feed("chatMsg", {"username": ADMIN, "msg": line, "meta": {},
                                     "time": next(clock)})
                else:
                    feed("pm", {"username": ADMIN, "msg": line, "to": BOT_NAME, "meta": {},
                                "time": next(clock)})
            steady_line()
        await bot.settle(30)

        # 2. Random frames, with a valid chat line after each.
        @settings(max_examples=250, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(frames)
        def any_frame(frame) -> None:
            feed(*frame)  # documented never to raise; hypothesis reports it if it does
            steady_line()

        any_frame()
        await flush_all(bot, 30)
        for name in ("greeter", "tell"):
            await bot.plugin(name).idle()
        await bot.settle(30)

        # Nothing raised anywhere.
        assert not [c for c in recorder.commands if c.outcome == "error"], \
            [(c.command, c.detail) for c in recorder.commands if c.outcome == "error"]
        assert not bot.bus.stats.errors and not bot.bus.stats.timeouts, bot.bus.stats
        statuses = bot.plugins.status()
        assert all(not s["failed"] and not s["errors"] for s in statuses.values()), statuses
        tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith("daz")]
        assert not tracebacks, [(r.name, r.getMessage()[:200]) for r in tracebacks]
        assert len(recorder.commands) >= len(names) * len(HOSTILE_TEXTS) * 0.9

        # Nothing longer than the server takes, queued or sent; no line is a server command.
        lines = [m.text for m in recorder.sent] + [m.text for m in room.outbox.queue] \
            + [m.text for m in room.outbox.in_flight]
        assert lines
        assert max(utf16_len(text) for text in lines) <= MAX_LINE
        assert not [m.text for m in recorder.sent if m.text.startswith("/")]

        # Every valid line, once, in the event log.
        rows = await bot.db.fetch(
            "SELECT message, count(*) AS n FROM daz_core_events WHERE username = $1"
            " AND event_type = 'cytube.event.chatMsg' GROUP BY message", STEADY)
        assert {r["message"]: r["n"] for r in rows} == dict.fromkeys(valid, 1)

        # The room still works with a real person in it.
        # Undo what fuzzed frames legitimately set: sane channel options again (a fuzzed
        # antiflood may allow one line a minute), no pause from a fuzzed cooldown of up to 60 s.
        feed("channelOpts", dict(server.channel(CHANNEL).options))
        admin_here()  # a fuzzed userlist or userLeave may have taken the admin out
        feed("chatMsg", {"username": ADMIN, "msg": "!command enable ping", "meta": {},
                         "time": next(clock)})  # "!command disable ping" was one of the tries
        await wait_until(lambda: bot.commands.resolve("ping").enabled, 5, "ping on again")
        room.outbox.clear("hostile replies are not the point")
        room.outbox.paused_until = 0.0
        alice = await server.user("alice")
        await wait_until(lambda: room.state.is_present("alice"), 10, "alice seen")
        await alice.chat("!ping")
        await wait_for_line(server, lambda line: line == "pong", "pong after the fuzzing",
                            channel=CHANNEL, timeout=15)
        await alice.leave()
