"""``daz run`` on a database whose big tables still lack indexes: the bot joins and logs chat
while the builds wait and run (CREATE INDEX CONCURRENTLY), /health says what is pending, and
every line is stored exactly once. The builds are held up on purpose by an old open
transaction, as a long report query elsewhere would hold them."""
from __future__ import annotations

import asyncio

import aiohttp
import asyncpg

from daz.db import online
from tests.e2e.harness import running_bot, wait_until
from tests.e2e.support import CHANNEL, flush_all, plugins

HELD = ("idx_chat_channel_user_time", "idx_events_chatmsg_text_unique")


async def test_the_bot_serves_while_big_tables_are_indexed(fake_server, migrated_dsn, tmp_path,
                                                            monkeypatch):
    setup = await asyncpg.connect(migrated_dsn)
    old_reader = await asyncpg.connect(migrated_dsn)
    try:
        await setup.execute("INSERT INTO daz_chat_log (username, message, channel, timestamp)"
                            " SELECT 'old' || g, 'x', $1, now() FROM generate_series(1, 500) g",
                            CHANNEL)
        await setup.execute("INSERT INTO daz_core_events (event_type, channel_name, timestamp,"
                            " raw_data) VALUES ('cytube.event.mediaUpdate', $1, now(), '{}')",
                            CHANNEL)
        for name in HELD:
            await setup.execute(f"DROP INDEX {name}")
        # The chat key is back as Go had it: chat is never without one while the new one builds.
        await setup.execute("CREATE UNIQUE INDEX idx_events_chatmsg_unique ON daz_core_events"
                            " (channel_name, message_time, username)"
                            " WHERE event_type = 'cytube.event.chatMsg'")
        monkeypatch.setattr(online, "BIG_TABLE_BYTES", 0)  # every table with rows is "big"
        reader = old_reader.transaction(isolation="repeatable_read")
        await reader.start()
        await old_reader.fetchval("SELECT count(*) FROM daz_chat_log")  # holds the builds

        async with running_bot(fake_server, migrated_dsn, tmp_path / "data", web=True,
                               plugins=plugins()) as bot:
            # Joined and serving; the builds are still waiting for the old reader.
            async with aiohttp.ClientSession() as http:
                async with http.get(bot.web.base_url + "/health") as r:
                    indexes = (await r.json())["indexes"]
            assert indexes["building"] and set(HELD) <= set(indexes["pending"])
            alice = await fake_server.user("alice")
            lines = [f"line {n} while indexing" for n in range(5)]
            for line in lines:
                # Apart in time: until the new chat key is valid, the Go key (channel, ms time,
                # sender) still refuses a second line one person says in the same millisecond
                # (docs/upgrading-from-go.md).
                await alice.chat(line)
                await asyncio.sleep(0.005)
            await flush_all(bot)
            await wait_until(lambda: setup.fetchval(
                "SELECT count(*) = 5 FROM daz_chat_log WHERE username = 'alice'"), 10,
                "alice's lines logged during the builds")
            assert await online.index_state(setup, HELD[0]) != "valid"

            await reader.commit()
            await wait_until(lambda: not bot.index_builds.status()["building"], 60,
                             "the background builds")
            assert bot.index_builds.status() == {"pending": [], "building": False, "failed": {}}
            for name in HELD:
                assert await online.index_state(setup, name) == "valid"
            assert await online.index_state(setup, "idx_events_chatmsg_unique") == "missing"
            await alice.chat("after the builds")
            await flush_all(bot)
            await wait_until(lambda: setup.fetchval(
                "SELECT count(*) = 6 FROM daz_chat_log WHERE username = 'alice'"), 10,
                "the line after the builds")
        stored = await setup.fetch(
            "SELECT message, count(*) FROM daz_core_events WHERE username = 'alice'"
            " AND event_type = 'cytube.event.chatMsg' GROUP BY message")
        assert {r["message"]: r["count"] for r in stored} == {
            **dict.fromkeys(lines, 1), "after the builds": 1}
    finally:
        await old_reader.close()
        await setup.close()
