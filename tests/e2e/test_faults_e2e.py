"""Faults, in the whole bot (issue 6 §3): the database going away under chat, the CyTube server
restarting, a hung plugin handler. Each test is bounded by timeouts on every wait. Elsewhere:
killed mid-frame (test_cut_mid_frame_e2e.py), hostile frames and commands (test_fuzz_e2e.py,
test_packet_fuzz_e2e.py), shutdown by signal (test_shutdown_e2e.py)."""
from __future__ import annotations

import asyncio
import logging

import asyncpg

from daz.cytube.events import ChatMessage
from daz.plugins.base import Plugin, on
from daz.plugins.manager import available_plugins
from daz.sandbox.fake_chat import MIN_ANTIFLOOD
from tests.e2e.harness import BOT_NAME, running_bot, wait_until
from tests.e2e.support import (
    CHANNEL,
    RESYNC_ONLY,
    assert_nothing_repeated,
    before_a_resync,
    plugins,
    room_matches_server,
    sessions_match_server,
    wait_for_line,
)
from tests.fakes.tcp_proxy import TcpProxy

OTHER = "otherchan"


async def chat_rows(dsn: str, channel: str = CHANNEL) -> list[tuple[str, str]]:
    """(username, message) of every chatMsg row, read straight from PostgreSQL."""
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT username, message FROM daz_core_events WHERE channel_name = $1"
            " AND event_type = 'cytube.event.chatMsg' AND username NOT IN ($2, '[server]')",
            channel, BOT_NAME)
    finally:
        await conn.close()
    return [(r["username"], r["message"]) for r in rows]


async def chat_round_robin(users, lines_each: int, tag: str) -> list[tuple[str, str]]:
    """Every user says ``lines_each`` lines, taking turns. Returns (name, text) in order.

    Between rounds a pause of a little over the fake server's sustained flood interval: after
    the steady chat of an outage each user is past the throttle's burst, and a faster line is
    dropped by the server. (Not for the event log: one sender's different lines in the same
    millisecond are distinct rows, the chat key includes the text.)"""
    said = []
    for i in range(lines_each):
        if i:
            await asyncio.sleep(1.2 / MIN_ANTIFLOOD["sustained"])
        for user in users:
            text = f"{tag} {user.name} {i}"
            await user.chat(text)
            said.append((user.name, text))
    for user in users:
        await user.sync()
    return said


async def chat_steadily(users, tag: str, seconds: float, lines_per_second: float,
                        said: list[tuple[str, str]]) -> None:
    """The users take turns saying one line each ``1 / lines_per_second`` s for ``seconds``
    (well under the server's flood limits, so nothing is dropped); every line goes to ``said``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    i = 0
    while loop.time() < end:
        user = users[i % len(users)]
        text = f"{tag} {user.name} {i}"
        await user.chat(text)
        said.append((user.name, text))
        i += 1
        await asyncio.sleep(1 / lines_per_second)
    for user in users:
        await user.sync()


async def come_and_go(server, walkers: dict[str, list[str]], count: int) -> None:
    """``count`` people join one after another; every other one leaves again at once.
    ``walkers`` gets what each did (the history usertracker must end up with)."""
    for i in range(count):
        name = f"walker{i}"
        walker = await server.user(name)
        walkers[name] = ["join"]
        if i % 2:
            await walker.leave()
            walkers[name].append("leave")
        await asyncio.sleep(0.2)


async def database_reported_down(bot) -> None:
    ok, details = await bot.health()
    assert not ok
    assert any(p.startswith("database") for p in details["problems"]), details["problems"]
    assert details["database"]["ok"] is False
    assert details["state"] == "running" and details["rooms"][CHANNEL]["joined"], details


# ---------------------------------------------------------------------------- database gone

OUTAGE_SECONDS = 30.0  # issue 6 §3


async def test_database_gone_under_chat_loses_nothing_and_health_says_so(
        fake_server, migrated_dsn, tmp_path, caplog):
    """PostgreSQL unreachable for 30 s (the proxy cuts every connection and refuses new ones)
    while four people chat at a steady 4 lines/s: the writer fails, events wait in memory, then
    in the spill file past core_event_queue_size (16 here, so ~100 lines overflow), and are
    written in order once the database answers. Health reports the database all along; the
    bot neither crashes nor stops answering commands."""
    server = fake_server
    caplog.set_level(logging.WARNING)
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    config = plugins(sql={"core_event_batch_size": 4, "core_event_max_batch": 8,
                          "core_event_queue_size": 16, "write_timeout_seconds": 2})
    try:
        async with running_bot(server, proxy.dsn_for(migrated_dsn), tmp_path, plugins=config,
                               only=["sql", "retry", "eventfilter", "basics", "usertracker",
                                     "analytics"]) as bot:
            users = [await server.user(f"talker{i}") for i in range(4)]
            pinger = await server.user("pinger")
            said = await chat_round_robin(users, 3, "before")
            await wait_until(lambda: chat_rows(migrated_dsn), 10, "first rows")

            # People come and go while the database goes: joins and leaves are in flight (some
            # still being written) when the connections are cut, and more happen during it.
            walkers: dict[str, list[str]] = {}
            churn = asyncio.create_task(come_and_go(server, walkers, 8))
            await wait_until(lambda: walkers, 5, "the first walker in")
            await proxy.block()
            loop = asyncio.get_running_loop()
            outage_ends = loop.time() + OUTAGE_SECONDS
            chatter = asyncio.create_task(
                chat_steadily(users, "during", OUTAGE_SECONDS - 1, 4, said))
            try:
                # Checked every couple of seconds for the whole outage, not once.
                checks = 0
                while loop.time() < outage_ends - 1:
                    await database_reported_down(bot)
                    assert bot.room.status()["connected"] and not chatter.done()
                    if checks == 2:  # the room still works: commands need no database
                        await pinger.chat("!ping")
                        said.append(("pinger", "!ping"))
                        await wait_for_line(server, lambda line: line == "pong",
                                            "pong while the database is gone")
                    checks += 1
                    await asyncio.sleep(2)
                assert checks >= 10
                await asyncio.wait_for(chatter, 10)
                await asyncio.wait_for(churn, 10)
            finally:
                chatter.cancel()
                churn.cancel()
            status = bot.plugin("sql").status()
            assert status["spilled"] > 0 and not status["db_ok"], status
            await database_reported_down(bot)
            await asyncio.sleep(max(0.0, outage_ends - loop.time()))

            await proxy.unblock()
            # Same steady pace after: the server's flood limit still counts the lines before.
            await chat_steadily(users, "after", 2, 4, said)
            assert sum(server.dropped_from(CHANNEL, u.name) for u in (*users, pinger)) == 0
            assert len([s for s in said if s[1].startswith("during")]) >= 100

            async def all_logged() -> bool:
                return sorted(await chat_rows(migrated_dsn)) == sorted(said)

            await wait_until(all_logged, 20, "every chat line written once")

            async def healthy() -> bool:
                return (await bot.health())[0]

            await wait_until(healthy, 10, "healthy again")
            # usertracker held the joins and leaves of the outage and writes them in order once
            # the database answers (retried every held_retry_seconds at most, so possibly after
            # the chat lines above): one active session for exactly who is there, every join and
            # leave once. Until its queue is empty a walker who came and went during the outage
            # is in neither table, and the sessions alone already look right.
            tracker = bot.plugin("usertracker")
            await wait_until(lambda: not tracker.held.holding(), 20,
                             "usertracker's held writes applied")
            check = await asyncpg.connect(migrated_dsn, timeout=5)
            try:
                await wait_until(lambda: sessions_match_server(check, server), 20,
                                 "sessions equal to the server's members")
                rows = await check.fetch(
                    "SELECT username, event_type FROM daz_user_tracker_history"
                    " WHERE username LIKE 'walker%' ORDER BY id")
            finally:
                await check.close()
            logged: dict[str, list[str]] = {}
            for r in rows:
                logged.setdefault(r["username"], []).append(r["event_type"])
            assert logged == walkers
            status = bot.plugin("sql").status()
            assert status["db_ok"] and status["failed"] == 0 and status["in_spill_file"] == 0
            # The outage is logged as warnings; no handler failed on it.
            errors = [r for r in caplog.records
                      if r.name.startswith("daz") and r.levelno >= logging.ERROR]
            assert not errors, [(r.name, r.getMessage()[:200]) for r in errors]
            for user in (*users, pinger):
                await user.leave()
    finally:
        await proxy.stop()


# ---------------------------------------------------------------------------- CyTube faults


async def test_server_restart_resyncs_without_repeats(fake_server, migrated_dsn, tmp_path):
    server = fake_server
    config = plugins(greeter={"reconnect_grace_seconds": 1, "rejoin_window_minutes": 1})
    await server.set_playlist(CHANNEL, [{"id": f"v{i}", "title": f"T{i}", "seconds": 60,
                                         "type": "yt"} for i in range(5)])
    await server.play(CHANNEL, server.channel(CHANNEL).playlist[0].uid)
    async with running_bot(server, migrated_dsn, tmp_path, plugins=config,
                           only=RESYNC_ONLY) as bot:
        alice, dave, lines_before = await before_a_resync(server, bot)

        # The server restarts (down for a moment): reconnect with backoff, full re-sync. (Dying
        # in the middle of a frame: test_cut_mid_frame_e2e.py.)
        await server.restart(down_for=0.5)
        await wait_until(lambda: bot.room.status()["reconnects"] >= 1
                         and bot.room.status()["joined"], 20, "rejoined after the restart")
        alice, dave = await server.user("alice"), await server.user("dave")
        await server.queue_media(CHANNEL, {"id": "new1", "title": "New", "seconds": 30,
                                           "type": "yt"})
        await wait_until(lambda: room_matches_server(bot, server), 10, "state re-synced")
        reconnects = bot.room.status()["reconnects"]
        assert reconnects <= 5  # backoff, not a hot loop, while the server was down

        # Nothing repeated: no second pong for the replayed !ping, no greeting or tell again.
        await assert_nothing_repeated(server, bot, lines_before)
        for user in (alice, dave):
            await user.leave()


# ---------------------------------------------------------------------------- hung handler


class Hangs(Plugin):
    """A plugin whose handler never returns on a line containing "hang" (until released)."""

    name = "hangs"

    async def setup(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    @on(ChatMessage)
    async def chat(self, event: ChatMessage) -> None:
        if "hang" in event.text:
            self.entered.set()
            await self.release.wait()


def two_rooms(server_url: str) -> list[dict]:
    return [{"id": name, "channel": name, "username": BOT_NAME, "password": "dazbot-pw",
             "enabled": True, "server_url": server_url} for name in (CHANNEL, OTHER)]


async def test_a_hung_handler_is_reported_and_stalls_nothing_else(fake_server, migrated_dsn,
                                                                  tmp_path):
    server = fake_server
    async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins(),
                           rooms=two_rooms(server.base_url),
                           only=["sql", "eventfilter", "basics", "hangs"],
                           plugin_classes={**available_plugins(), "hangs": Hangs}) as bot:
        bot.bus.slow_after = 0.5  # report sooner than the default 5 s
        hangs = bot.plugin("hangs")
        alice = await server.user("alice")
        carol = await server.user("carol", channel=OTHER)
        try:
            await alice.chat("please hang now")
            await asyncio.wait_for(hangs.entered.wait(), 5)
            # Same room, other plugins: answered. Other room: answered.
            await alice.chat("!ping")
            await wait_for_line(server, lambda line: line == "pong", "pong in the hung room")
            await carol.chat("!ping")
            await wait_for_line(server, lambda line: line == "pong", "pong in the other room",
                                channel=OTHER)
            # Logged for the hung room too: the sql plugin has its own lane.
            await alice.chat("logged anyway")
            await wait_until(lambda: bot.db.fetchval(
                "SELECT count(*) FROM daz_core_events WHERE message = 'logged anyway'"), 10,
                "the line after the hang logged")

            async def reported():
                _ok, details = await bot.health()
                return [s for s in details["slow_handlers"] if s["plugin"] == "hangs"]

            slow = await wait_until(reported, 10, "the hung handler reported")
            assert slow[0]["room"] == CHANNEL
            # The watchdog logs and counts it once (metrics: daz_handler_slow_total).
            await wait_until(lambda: bot.bus.stats.slow["hangs"] >= 1, 5, "the slow count")
            assert not [s for s in bot.bus.slow_handlers() if s["plugin"] != "hangs"]
        finally:
            hangs.release.set()
        await alice.leave()
        await carol.leave()
