"""The whole bot in a channel (issue 4, "How it is checked"): simulated people join, leave,
rejoin within seconds, change rank, chat commands, spam, queue media; the bot reconnects and is
restarted. Asserted: the rows of usertracker, mediatracker, analytics and eventfilter, and what
people see. Real sockets (fake CyTube server), real PostgreSQL, the real App."""
from __future__ import annotations

import asyncio

from daz.commands import CommandContext
from daz.plugins.base import Plugin, command
from daz.plugins.manager import available_plugins
from tests.e2e.harness import BOT_NAME, running_bot, wait_until
from tests.e2e.support import (CHANNEL, active_sessions, bot_lines, flush_all, pm_texts,
                               plugins, server_members, sessions_match_server, settle_quiet,
                               wait_for_line)

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
        confirm = await wait_for_line(server, lambda l: l.startswith("OK, I'll tell bob"),
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
        await wait_for_line(server, lambda l: l.startswith("OK, I'll tell dave"), "second tell")
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
        await wait_for_line(server, lambda l: l == "ok carol", "the moderator command")

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
