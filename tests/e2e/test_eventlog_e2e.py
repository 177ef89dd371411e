"""The whole bot against the fake CyTube server: every chat line is logged once although the
server replays its history at every join, and PMs both ways reach daz_private_messages."""
from __future__ import annotations

from tests.e2e.harness import BOT_NAME, running_bot, wait_until


async def test_chat_is_logged_once_across_join_replays_and_pms_both_ways(
        fake_server, migrated_dsn, tmp_path):
    server = fake_server
    alice = await server.user("alice")
    await alice.chat("said before daz came")  # reaches daz only as join-time history
    async with running_bot(server, migrated_dsn, tmp_path, only=["sql"],
                           plugins={"sql": {"core_event_flush_ms": 10}}) as bot:
        db = bot.app.db
        await alice.chat("said while daz is here")
        await alice.pm(BOT_NAME, "psst daz")
        await bot.room.pm("alice", "hello alice")
        await wait_until(lambda: db.fetchval("SELECT count(*) FROM daz_private_messages"
                                             " WHERE event_type = 'cytube.event.pm.sent'"),
                         10, "our PM logged")

        # The connection dies; on the way back in the server replays the same history.
        await server.kill_connections()
        await wait_until(lambda: bot.room.status()["reconnects"] >= 1
                         and bot.room.status()["joined"], 20, "daz back in the room")
        alice = await server.user("alice")
        await alice.chat("said after the reconnect")
        await wait_until(lambda: db.fetchval("SELECT count(*) FROM daz_chat_log"
                                             " WHERE message = 'said after the reconnect'"),
                         10, "the last line logged")
        await bot.settle()
        await bot.plugin("sql").eventlog.wait_idle(10)

        chat = [r["message"] for r in await db.fetch(
            "SELECT message FROM daz_core_events WHERE event_type = 'cytube.event.chatMsg'"
            " AND username = 'alice' ORDER BY id")]
        assert chat == ["said before daz came", "said while daz is here",
                        "said after the reconnect"]
        assert [r["message"] for r in await db.fetch(
            "SELECT message FROM daz_chat_log WHERE username = 'alice' ORDER BY id")] == chat
        pms = sorted(tuple(r) for r in await db.fetch(
            "SELECT event_type, from_user, to_user, message FROM daz_private_messages"))
        assert pms == [("cytube.event.pm", "alice", BOT_NAME, "psst daz"),
                       ("cytube.event.pm.sent", BOT_NAME, "alice", "hello alice")]
        joins = await db.fetchval("SELECT count(*) FROM daz_user_activity"
                                  " WHERE event_type = 'cytube.event.addUser'"
                                  " AND username = 'alice'")
        assert joins >= 1
        status = bot.plugin("sql").status()
        assert status["failed"] == 0 and status["duplicates_skipped"] >= 2
