"""Shared helpers of the whole-bot end-to-end tests (channel, people, faults).

Plugin configs here only shorten timers (flush intervals, delays) so the tests are quick; the
behaviour under test is the shipped one.
"""
from __future__ import annotations

import asyncio
import copy
from typing import Any

from tests.e2e.harness import BOT_NAME, wait_until

CHANNEL = "testchan"

# Every timer that would make a test wait, shortened.
FAST_PLUGINS: dict[str, dict] = {
    "sql": {"core_event_flush_ms": 50},
    "eventfilter": {"history_flush_seconds": 0.2},
    "usertracker": {"activity_flush_seconds": 0.3},
    "analytics": {"flush_seconds": 0.3},
    "retry": {"poll_interval_seconds": 0.5, "first_poll_seconds": 0.2},
    "stats": {"interval_seconds": 5},
    "greeter": {"delay_min_seconds": 0, "delay_max_seconds": 0, "skip_probability": 0,
                "use_greeting_engine": False, "channel_cooldown_seconds": 0,
                "reconnect_grace_seconds": 3, "rejoin_window_minutes": 1},
    "tell": {"join_delay_seconds": 0},
    "gallery": {"enable_health_check": False},
}


def plugins(**overrides: dict) -> dict[str, dict]:
    """FAST_PLUGINS with per-plugin sections merged over it."""
    out = copy.deepcopy(FAST_PLUGINS)
    for name, section in overrides.items():
        out.setdefault(name, {}).update(section)
    return out


def bot_lines(server, channel: str = CHANNEL, bot: str = BOT_NAME) -> list[str]:
    """Public chat lines of the bot that the server delivered."""
    return server.chat_from(channel, bot)


def pm_texts(server, to: str, sender: str = BOT_NAME) -> list[str]:
    return [text for who, text in server.pms_to(to) if who.lower() == sender.lower()]


async def wait_for_line(server, predicate, what: str, *, timeout: float = 10.0,
                        channel: str = CHANNEL, bot: str = BOT_NAME) -> str:
    found = await wait_until(
        lambda: next((line for line in bot_lines(server, channel, bot) if predicate(line)), None),
        timeout, what)
    return found


async def flush_all(bot, timeout: float = 10.0) -> None:
    """Everything the bot holds in memory, written: bus drained, batched writers flushed."""
    await bot.settle(timeout)
    for name in ("eventfilter",):
        plugin = bot.plugin(name)
        if plugin is not None:
            await plugin.history.flush()
    for name in ("usertracker", "analytics"):
        plugin = bot.plugin(name)
        if plugin is not None:
            await plugin.flush()
    sql = bot.plugin("sql")
    if sql is not None:
        assert await sql.eventlog.wait_idle(timeout), sql.status()


async def fetch(bot_or_db, query: str, *args: Any) -> list:
    db = getattr(bot_or_db, "db", bot_or_db)
    return await db.fetch(query, *args)


async def active_sessions(db, channel: str = CHANNEL) -> dict[str, int]:
    """lower(username) → number of active sessions."""
    rows = await db.fetch(
        "SELECT lower(username) AS name, count(*) AS n FROM daz_user_tracker_sessions"
        " WHERE channel = $1 AND is_active GROUP BY lower(username)", channel)
    return {r["name"]: r["n"] for r in rows}


def server_members(server, channel: str = CHANNEL) -> set[str]:
    return {m.name.lower() for m in server.channel(channel).members.values() if m.name}


async def sessions_match_server(db, server, channel: str = CHANNEL) -> bool:
    active = await active_sessions(db, channel)
    return all(n == 1 for n in active.values()) and set(active) == server_members(server, channel)


async def chat_lines_logged(db, channel: str = CHANNEL) -> list[tuple[str, str]]:
    """(username, message) of chatMsg rows in daz_core_events, in time order."""
    rows = await db.fetch(
        "SELECT username, message FROM daz_core_events WHERE channel_name = $1"
        " AND event_type = 'cytube.event.chatMsg' ORDER BY message_time, id", channel)
    return [(r["username"], r["message"]) for r in rows]


async def settle_quiet(seconds: float = 0.3) -> None:
    """A short pause for things that are *not* expected to happen (a second reply, a greeting)
    to have had their chance; the assertion after it checks they did not."""
    await asyncio.sleep(seconds)


def pongs(server, channel: str = CHANNEL) -> int:
    return bot_lines(server, channel).count("pong")


async def room_matches_server(bot, server, channel: str = CHANNEL) -> bool:
    """The bot's RoomState agrees with the server: joined, same users, same playlist order,
    same current item."""
    state = bot.room.state
    fake = server.channel(channel)
    return (bot.room.status()["joined"]
            and set(state.users) == server_members(server, channel)
            and state.order == [e.uid for e in fake.playlist]
            and state.current_uid == fake.current_uid)


# The plugins and timings of the resync tests (a server restart, a stream cut mid-frame).
RESYNC_ONLY = ["sql", "eventfilter", "basics", "usertracker", "mediatracker", "greeter", "tell"]


async def before_a_resync(server, bot):
    """What a resync must not repeat: alice leaves dave a tell, dave arrives and is told, and
    alice's !ping (which the server replays on every join) is answered once; both are greeted.
    Returns (alice, dave, the bot's lines so far)."""
    alice = await server.user("alice")
    await alice.chat("!tell dave welcome back")
    await wait_for_line(server, lambda line: line.startswith("OK, I'll tell dave"), "stored")
    dave = await server.user("dave")
    await wait_for_line(server, lambda line: line.startswith("dave: alice left you"), "told")
    await alice.chat("!ping")
    await wait_until(lambda: pongs(server) == 1, 10, "pong")
    await bot.settle()
    await bot.plugin("greeter").idle()
    assert await bot.db.fetchval("SELECT count(*) FROM daz_greeter_history") == 2
    return alice, dave, bot_lines(server)


async def assert_nothing_repeated(server, bot, lines_before: list[str]) -> None:
    """After a resync: no second pong for the replayed !ping, no greeting or tell again."""
    await bot.settle()
    await bot.plugin("greeter").idle()
    await bot.plugin("tell").idle()
    await settle_quiet(0.5)
    assert pongs(server) == 1
    assert bot_lines(server) == lines_before
    assert await bot.db.fetchval("SELECT count(*) FROM daz_greeter_history") == 2
    assert await bot.db.fetchval("SELECT count(*) FROM daz_tell_messages"
                                 " WHERE sent_at IS NOT NULL") == 1


def unused_http_address() -> str:
    """An http:// address on loopback where nothing listens (a port bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"
