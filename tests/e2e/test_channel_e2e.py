"""The whole bot in a channel (issue 4, "How it is checked"): simulated people join, leave,
rejoin within seconds, change rank, chat commands, spam, queue media; the bot reconnects and is
restarted. Asserted: the rows of usertracker, mediatracker, analytics and eventfilter, and what
people see. Real sockets (fake CyTube server), real PostgreSQL, the real App."""
from __future__ import annotations

import asyncio
import collections

from daz.clock import FakeClock
from daz.commands import CommandContext
from daz.plugins.base import Plugin, command
from daz.plugins.manager import available_plugins
from tests.e2e.harness import BOT_NAME, running_bot, wait_until
from tests.e2e.support import (
    CHANNEL,
    bot_lines,
    flush_all,
    plugins,
    pm_texts,
    server_members,
    sessions_match_server,
    settle_quiet,
    wait_for_line,
)
from tests.fakes.cytube import FakeCytubeServer

CHANNEL_PLUGINS = ["sql", "retry", "eventfilter", "usertracker", "mediatracker", "analytics",
                   "basics", "tell"]


class ModTools(Plugin):
    """A test plugin with a rank-gated command (no built-in command needs a rank)."""

    name = "modtools"

    @command("modonly", min_rank=2, usage="!modonly", description="for moderators")
    async def modonly(self, ctx: CommandContext) -> None:
        await ctx.reply(f"ok {ctx.username}")


def with_modtools() -> dict:
    return {**available_plugins(), "modtools": ModTools}


def video(n: int, seconds: int = 120) -> dict:
    return {"id": f"vid{n:05d}", "title": f"Video {n}", "seconds": seconds, "type": "yt"}


# ---------------------------------------------------------------------------- presence


async def test_sessions_follow_joins_leaves_rejoins_ranks_and_a_server_restart(
        fake_server, migrated_dsn, tmp_path):
    server = fake_server
    early = await server.user("early")  # present before the bot: seen through the userlist
    async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins(),
                           only=CHANNEL_PLUGINS) as bot:
        db = bot.db
        await wait_until(lambda: sessions_match_server(db, server), 10, "sessions at join")
        early_row = await db.fetchrow(
            "SELECT joined_at, observed_at_join FROM daz_user_tracker_sessions"
            " WHERE username = 'early' AND is_active")
        assert early_row["observed_at_join"] is True

        bob = await server.user("bob")
        await wait_until(lambda: sessions_match_server(db, server), 10, "bob's session")
        # Leave and come back within a second, three times.
        for _ in range(3):
            await bob.leave()
            bob = await server.user("bob")
        await wait_until(lambda: sessions_match_server(db, server), 10, "after the flaps")
        await bot.settle()
        bob_rows = await db.fetch(
            "SELECT is_active, left_at FROM daz_user_tracker_sessions WHERE username = 'bob'"
            " ORDER BY id")
        assert len(bob_rows) == 4
        assert [r["is_active"] for r in bob_rows] == [False, False, False, True]
        assert all(r["left_at"] is not None for r in bob_rows[:3])
        history = await db.fetch(
            "SELECT event_type FROM daz_user_tracker_history WHERE username = 'bob' ORDER BY id")
        assert [r["event_type"] for r in history] == ["join", "leave"] * 3 + ["join"]

        # Rank changes: a history row each, the session's rank follows, !modonly follows it.
        await server.set_rank(CHANNEL, "bob", 2)
        await wait_until(lambda: db.fetchval(
            "SELECT rank = 2 FROM daz_user_tracker_sessions WHERE username = 'bob'"
            " AND is_active"), 10, "bob's new rank stored")
        rank_rows = await db.fetch(
            "SELECT metadata FROM daz_user_tracker_history WHERE username = 'bob'"
            " AND event_type = 'rank'")
        assert len(rank_rows) == 1

        # The server restarts: every socket is cut; the bot reconnects, people come back.
        await server.restart(down_for=0.3)
        await wait_until(lambda: bot.room.status()["reconnects"] >= 1
                         and bot.room.status()["joined"], 20, "the bot back in the room")
        early = await server.user("early")
        bob = await server.user("bob")
        await wait_until(lambda: sessions_match_server(db, server), 10, "sessions after restart")
        await flush_all(bot)
        assert await sessions_match_server(db, server)
        # The bot's own session was closed by the disconnect and a new one opened.
        own = await db.fetch("SELECT is_active FROM daz_user_tracker_sessions"
                             " WHERE lower(username) = lower($1) ORDER BY id", BOT_NAME)
        assert [r["is_active"] for r in own][-1] is True and len(own) >= 2
        # RoomState is the server's truth again.
        assert set(bot.room.state.users) == server_members(server)
        await bob.leave()
        await wait_until(lambda: sessions_match_server(db, server), 10, "bob gone")
        await early.leave()


# ---------------------------------------------------------------------------- commands


async def test_commands_keep_quotes_and_apostrophes_refuse_low_ranks_and_cooldown_spam(
        fake_server, migrated_dsn, tmp_path):
    server = fake_server
    async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins(),
                           only=CHANNEL_PLUGINS + ["modtools"],
                           plugin_classes=with_modtools()) as bot:
        db = bot.db
        alice = await server.user("alice")
        carol = await server.user("carol")

        # Quotes group words, apostrophes are ordinary characters: nothing is lost.
        await alice.chat("!tell bob \"don't forget\" it's late")
        confirm = await wait_for_line(server, lambda line: line.startswith("OK, I'll tell bob"),
                                      "the tell confirmation")
        assert "here" in confirm
        stored = await db.fetchval("SELECT message FROM daz_tell_messages WHERE to_user = 'bob'")
        assert stored == "\"don't forget\" it's late"
        await flush_all(bot)
        args = await db.fetchval("SELECT args FROM daz_eventfilter_history"
                                 " WHERE command = 'tell' AND username = 'alice'")
        assert args == ["bob", "don't forget", "it's", "late"]

        # HTML-escaped by the server, unescaped before parsing: & < > ' " arrive intact.
        await carol.chat("!tell dave <b>fish & chips</b> at Joe's")  # alice is cooling down
        await wait_for_line(server, lambda line: line.startswith("OK, I'll tell dave"),
                            "second tell")
        assert await db.fetchval("SELECT message FROM daz_tell_messages WHERE to_user = 'dave'") \
            == "<b>fish & chips</b> at Joe's"

        # A rank-gated command from rank 1: one short PM, no chat reply; after a rank change
        # (RoomState follows setUserRank) the same command runs.
        mark = carol.mark()
        await carol.chat("!modonly")
        refusal = await carol.wait_for("pm", lambda p: p.get("username") == BOT_NAME,
                                       since=mark)
        assert "needs rank 2" in refusal["msg"] and len(refusal["msg"]) < 80
        await server.set_rank(CHANNEL, "carol", 2)
        await wait_until(lambda: bot.room.state.rank_of("carol") == 2, 5, "carol's rank")
        await carol.chat("!modonly")
        await wait_for_line(server, lambda line: line == "ok carol", "the moderator command")

        # Cooldown spam: ten !ping in a row → one pong, one refusal PM, not ten.
        pms_before = len(pm_texts(server, "alice"))
        for _ in range(10):
            await alice.chat("!ping")
        await wait_until(lambda: len(pm_texts(server, "alice")) > pms_before, 10,
                         "the cooldown notice")
        await flush_all(bot)
        await settle_quiet(0.5)
        assert bot_lines(server).count("pong") == 1
        notices = pm_texts(server, "alice")[pms_before:]
        assert len(notices) == 1 and "wait" in notices[0]
        outcomes = await db.fetch(
            "SELECT success, error_message FROM daz_eventfilter_history"
            " WHERE command = 'ping' AND username = 'alice' ORDER BY id")
        assert len(outcomes) == 10
        assert sum(r["success"] for r in outcomes) == 1
        assert all(r["error_message"].startswith("cooldown") for r in outcomes if not r["success"])
        # Every attempt is recorded (the refused !modonly too), asynchronously in batches.
        modonly = await db.fetch("SELECT success FROM daz_eventfilter_history"
                                 " WHERE command = 'modonly' ORDER BY id")
        assert [r["success"] for r in modonly] == [False, True]

        # A PM command is answered by PM; an unknown command gets no answer at all.
        mark = alice.mark()
        await alice.pm(BOT_NAME, "!uptime")
        reply = await alice.wait_for("pm", lambda p: p.get("username") == BOT_NAME, since=mark)
        assert reply["msg"].startswith("Up ")
        lines_before = len(bot_lines(server))
        pms_before = len(pm_texts(server, "alice"))
        await alice.chat("!nosuchcommand with args")
        await flush_all(bot)
        await settle_quiet()
        assert len(bot_lines(server)) == lines_before
        assert len(pm_texts(server, "alice")) == pms_before
        await alice.leave()
        await carol.leave()


# ---------------------------------------------------------------------------- media


async def mirror_uids(db) -> list[str]:
    rows = await db.fetch("SELECT uid FROM daz_mediatracker_queue WHERE channel = $1"
                          " ORDER BY position", CHANNEL)
    return [r["uid"] for r in rows]


def server_uids(server) -> list[str]:
    return [str(e.uid) for e in server.channel(CHANNEL).playlist]


async def test_media_changes_playlist_edits_and_a_4000_item_playlist(fake_server, migrated_dsn,
                                                                     tmp_path):
    server = fake_server
    async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins(),
                           only=CHANNEL_PLUGINS) as bot:
        db = bot.db
        alice = await server.user("alice")

        # A 4,000-item playlist arrives in one frame: mirrored exactly, in order.
        await server.set_playlist(CHANNEL, [video(i) for i in range(4000)])

        async def mirrored() -> bool:
            return await mirror_uids(db) == server_uids(server)

        await wait_until(mirrored, 20, "the 4,000-item mirror")
        assert bot.room.state.order == [e.uid for e in server.channel(CHANNEL).playlist]
        assert await db.fetchval("SELECT count(*) FROM daz_mediatracker_library") == 4000
        assert await db.fetchval("SELECT count(*) FROM daz_mediatracker_library"
                                 " WHERE play_count > 0") == 0  # queueing is not playing

        # Edits by uid: queue after an item, delete, move to the front.
        uids = [e.uid for e in server.channel(CHANNEL).playlist]
        added = await server.queue_media(CHANNEL, video(9000, seconds=1), after=uids[10],
                                         queueby="alice")
        await server.delete_media(CHANNEL, uids[0])
        await server.delete_media(CHANNEL, uids[3999])
        await server.move_media(CHANNEL, uids[500], "prepend")
        await server.move_media(CHANNEL, added, uids[2])
        await wait_until(mirrored, 10, "the edited mirror")
        assert len(await mirror_uids(db)) == 3999

        # Media changes: one play each. The short one plays to its end (completed).
        await server.play(CHANNEL, added)
        await asyncio.sleep(1.0)
        await server.media_update(CHANNEL, 0.98)
        await server.play(CHANNEL, uids[1])
        await server.media_update(CHANNEL, 5)
        await wait_until(lambda: db.fetchval("SELECT count(*) = 2 FROM daz_mediatracker_plays"),
                         10, "two plays")
        await bot.settle()
        first = await db.fetchrow("SELECT media_id, completed, ended_at, queued_by"
                                  " FROM daz_mediatracker_plays ORDER BY id LIMIT 1")
        assert first["media_id"] == "vid09000" and first["ended_at"] is not None
        assert first["completed"] is True and first["queued_by"] == "alice"

        # !np names what plays now.
        await alice.chat("!np")
        np = await wait_for_line(server, lambda line: line.startswith("Now playing:"), "!np")
        assert "Video 1" in np

        # The connection dies: the server repeats setCurrent/changeMedia on rejoin. That is
        # the same play, not a new one; the playlist is re-synced from the server.
        await server.kill_connections()
        await wait_until(lambda: bot.room.status()["reconnects"] >= 1
                         and bot.room.status()["joined"], 20, "the bot back")
        await server.queue_media(CHANNEL, video(9001), queueby="bob")
        await wait_until(mirrored, 10, "the mirror after the reconnect")
        await flush_all(bot)
        assert await db.fetchval("SELECT count(*) FROM daz_mediatracker_plays") == 2
        assert await db.fetchval("SELECT count(*) FROM daz_mediatracker_plays"
                                 " WHERE ended_at IS NULL") == 1

        # The same item again is a new play (a replay from the start).
        await server.play(CHANNEL, added)
        await wait_until(lambda: db.fetchval("SELECT count(*) = 3 FROM daz_mediatracker_plays"),
                         10, "the replay")
        await flush_all(bot)
        stats = {r["media_id"]: r["play_count"] for r in await db.fetch(
            "SELECT media_id, play_count FROM daz_mediatracker_stats WHERE channel = $1",
            CHANNEL)}
        assert stats == {"vid09000": 2, "vid00001": 1}
        library = {r["media_id"]: r["play_count"] for r in await db.fetch(
            "SELECT media_id, play_count FROM daz_mediatracker_library WHERE play_count > 0")}
        assert library == {"vid09000": 2, "vid00001": 1}
        assert await db.fetchval("SELECT sum(media_plays) FROM daz_analytics_hourly"
                                 " WHERE channel = $1", CHANNEL) == 3
        await alice.leave()


# ---------------------------------------------------------------------------- bot restart


async def test_a_bot_restart_keeps_sessions_single_and_counts_nothing_twice(
        fake_server, migrated_dsn, tmp_path):
    server = fake_server
    config = dict(plugins=plugins(), only=CHANNEL_PLUGINS)
    said: dict[str, list[str]] = collections.defaultdict(list)

    async def talk(user, n: int, tag: str) -> None:
        for i in range(n):
            text = f"{user.name} {tag} line {i}"
            await user.chat(text)
            said[user.name].append(text)
            # Distinct CyTube ms times: two lines of one sender in one millisecond are a known
            # loss (test_same_millisecond_lines_of_one_sender_are_both_logged).
            await asyncio.sleep(0.01)
        await user.sync()

    alice = await server.user("alice")  # here before the bot: not a join it saw
    async with running_bot(server, migrated_dsn, tmp_path / "one", **config) as bot:
        bob = await server.user("bob")  # a real join
        await talk(alice, 8, "first")
        await talk(bob, 5, "first")
        await alice.chat("!ping")
        said["alice"].append("!ping")
        await wait_for_line(server, lambda line: line == "pong", "pong")
        await flush_all(bot)
        before = await bot.db.fetch("SELECT username, joined_at FROM daz_user_tracker_sessions"
                                    " WHERE is_active AND username IN ('alice', 'bob')")
    # Stopped: its sessions closed (its own) or kept (people still in the room).

    async with running_bot(server, migrated_dsn, tmp_path / "two", **config) as bot:
        db = bot.db
        # The new process saw the last 15 lines replayed on join; none of them counts.
        await wait_until(lambda: sessions_match_server(db, server), 10, "sessions resynced")
        after = await db.fetch("SELECT username, joined_at FROM daz_user_tracker_sessions"
                               " WHERE is_active AND username IN ('alice', 'bob')")
        assert sorted(map(tuple, after)) == sorted(map(tuple, before))  # kept, not reopened
        carol = await server.user("carol")
        await talk(alice, 3, "second")
        await talk(carol, 4, "second")
        await flush_all(bot)
        await settle_quiet(0.4)  # an analytics flush tick after the drained state
        await flush_all(bot)

        users = {r["username"]: r["total_messages"] for r in await db.fetch(
            "SELECT username, total_messages FROM daz_analytics_user_stats WHERE channel = $1",
            CHANNEL)}
        assert users == {name: len(lines) for name, lines in said.items()}
        hourly = await db.fetchrow(
            "SELECT sum(message_count) AS messages, sum(joins) AS joins,"
            " sum(commands_used) AS commands FROM daz_analytics_hourly WHERE channel = $1",
            CHANNEL)
        assert hourly["messages"] == sum(len(lines) for lines in said.values())
        assert hourly["joins"] == 2  # bob and carol; alice and the bot are not joins
        assert hourly["commands"] == 1
        daily = await db.fetchrow("SELECT sum(total_messages) AS messages, max(unique_users)"
                                  " AS people FROM daz_analytics_daily WHERE channel = $1",
                                  CHANNEL)
        assert daily["messages"] == hourly["messages"] and daily["people"] == 3
        # Each live line is in the event log once, although the second bot saw 15 replayed.
        logged = await db.fetch(
            "SELECT username, message, count(*) AS n FROM daz_core_events"
            " WHERE event_type = 'cytube.event.chatMsg' AND username NOT IN ($1, '[server]')"
            " GROUP BY username, message", BOT_NAME)
        assert all(r["n"] == 1 for r in logged), [dict(r) for r in logged if r["n"] > 1]
        assert {(r["username"], r["message"]) for r in logged} == \
            {(name, text) for name, lines in said.items() for text in lines}
        for user in (alice, bob, carol):
            await user.leave()
        await wait_until(lambda: sessions_match_server(db, server), 10, "everyone gone")


async def test_same_millisecond_lines_of_one_sender_are_both_logged(migrated_dsn, tmp_path):
    # The server's clock stands still, so both lines carry the same CyTube time, as two lines
    # of one burst handled within one millisecond do on the real server (time: Date.now()).
    server = FakeCytubeServer(clock=FakeClock())
    await server.start()
    try:
        async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins(),
                               only=["sql", "analytics"]) as bot:
            alice = await server.user("alice")
            await alice.chat("first thought")
            await alice.chat("second thought")
            await alice.sync()
            await flush_all(bot)
            both = ["first thought", "second thought"]
            assert await alice_lines(bot, "daz_core_events") == both
            assert await alice_lines(bot, "daz_chat_log") == both
            # On the way back in, the server replays both lines (same time, same text): each
            # is still logged once.
            sql = bot.plugin("sql")
            skipped = sql.status()["duplicates_skipped"]
            await server.kill_connections()
            await wait_until(lambda: bot.room.status()["reconnects"] >= 1
                             and bot.room.status()["joined"], 20, "daz back in the room")
            await wait_until(lambda: sql.status()["duplicates_skipped"] >= skipped + 2, 10,
                             "the replayed lines seen")
            await flush_all(bot)
            assert await alice_lines(bot, "daz_core_events") == both
            assert await alice_lines(bot, "daz_chat_log") == both
    finally:
        await server.stop()


async def alice_lines(bot, table: str) -> list[str]:
    where = " AND event_type = 'cytube.event.chatMsg'" if table == "daz_core_events" else ""
    rows = await bot.db.fetch(f"SELECT message FROM {table} WHERE username = 'alice'{where}"
                              " ORDER BY id")
    return [r["message"] for r in rows]
