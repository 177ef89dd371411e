"""History backfill keeps its time (issue 10 item 5).

On every join CyTube replays its chat buffer (up to 15 lines, "with their original
time"). Lines in it that daz never stored, said while it was away, are stored once with the time
they were said, in every table and in the hourly analytics; lines already stored are not stored
or counted again, however often they are replayed.

The fake server runs on a clock three hours behind, so "when it was said" and "when daz rejoined"
are hours apart and land in different analytics hours.
"""
from __future__ import annotations

import time

from daz.clock import FakeClock
from tests.e2e.harness import running_bot, wait_until
from tests.e2e.support import CHANNEL, flush_all, plugins
from tests.fakes.cytube import FakeCytubeServer

ONLY = ["sql", "analytics"]


def hour_of(epoch: float) -> float:
    return epoch // 3600 * 3600


async def chat_rows(bot) -> dict[str, list[tuple[float, float]]]:
    """message → [(core timestamp, chat_log timestamp)] per stored line, as epoch seconds."""
    await flush_all(bot)
    rows = await bot.db.fetch(
        "SELECT e.message, extract(epoch FROM e.timestamp)::float8 AS core,"
        "   extract(epoch FROM c.timestamp)::float8 AS chat"
        " FROM daz_core_events e LEFT JOIN daz_chat_log c ON c.event_uid = e.event_uid"
        " WHERE e.event_type = 'cytube.event.chatMsg' AND e.username <> '[server]'"
        " ORDER BY e.id")
    out: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        out.setdefault(r["message"], []).append((r["core"], r["chat"]))
    return out


async def messages_per_hour(bot) -> dict[float, int]:
    await flush_all(bot)
    rows = await bot.db.fetch("SELECT extract(epoch FROM hour_start)::float8 AS hour,"
                              " message_count FROM daz_analytics_hourly WHERE channel = $1",
                              CHANNEL)
    return {r["hour"]: r["message_count"] for r in rows}


async def test_lines_said_while_away_are_stored_and_counted_once_when_said(migrated_dsn,
                                                                           tmp_path):
    clock = FakeClock(start=time.time() - 3 * 3600)
    server = FakeCytubeServer(clock=clock)
    await server.start()
    try:
        alice = await server.user("alice")
        config = plugins()
        async with running_bot(server, migrated_dsn, tmp_path, plugins=config,
                               only=ONLY) as bot:
            await alice.chat("while daz is here")
            await wait_until(lambda: chat_rows(bot), 10, "the live line stored")
            live_at = time.time()

        clock.advance(120)  # daz is away; two lines are said meanwhile
        said_away = clock.time()
        bob = await server.user("bob")
        await bob.chat("said while daz was away")
        await alice.chat("me too")

        async with running_bot(server, migrated_dsn, tmp_path, plugins=config,
                               only=ONLY) as bot:
            rejoined_at = time.time()
            rows = await wait_until(lambda: chat_rows_with(bot, "me too"), 10, "the backfill")
            # Reconnecting replays the same buffer again: nothing new may come of it.
            before = bot.room.status()["reconnects"]
            await server.kill_connections()
            await wait_until(lambda: bot.room.status()["reconnects"] > before
                             and bot.room.status()["joined"], 20, "the bot back")
            await bot.settle()
            rows = await chat_rows(bot)
            hours = await messages_per_hour(bot)
        await bob.leave()
        await alice.leave()
    finally:
        await server.stop()

    assert sorted(rows) == ["me too", "said while daz was away", "while daz is here"]
    assert all(len(stored) == 1 for stored in rows.values()), rows  # each line once
    for text in ("said while daz was away", "me too"):
        core, chat = rows[text][0]
        assert abs(core - said_away) < 0.01 and abs(chat - said_away) < 0.01, (text, core)
    core, chat = rows["while daz is here"][0]
    assert core <= live_at < rejoined_at and abs(core - chat) < 0.01
    assert hours == {hour_of(said_away): 2, hour_of(core): 1}


async def chat_rows_with(bot, text: str):
    rows = await chat_rows(bot)
    return rows if text in rows else None
