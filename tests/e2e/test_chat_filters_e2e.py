"""The whole bot in a channel with CyTube's default chat filters on (as every new channel is):
commands read what people typed, and everything the bot says reads as it meant it."""
import re

import asyncpg

from daz.cytube.outgoing_text import meant_text
from tests.e2e.harness import BOT_NAME, running_bot, wait_until

CHANNEL = "testchan"
PLUGINS = {
    "greeter": {"delay_min_seconds": 0, "delay_max_seconds": 0, "skip_probability": 0,
                "use_greeting_engine": False, "channel_cooldown_seconds": 0},
    "tell": {"join_delay_seconds": 0},
    "gallery": {"enable_health_check": False},
}
ONLY = ["eventfilter", "sql", "usertracker", "greeter", "tell", "basics", "mediatracker",
        "gallery"]
FORMATTING = re.compile(r"<(code|strong|em|s|span)\b")


class MeantLines:
    """What the bot's plugins asked the room to say, before anything touched it."""

    def __init__(self, room):
        self.chat: list[str] = []
        self.pms: dict[str, list[str]] = {}
        say, pm = room.say, room.pm

        async def recorded_say(text, **kwargs):
            self.chat.append(text)
            await say(text, **kwargs)

        async def recorded_pm(to, text, **kwargs):
            self.pms.setdefault(to.lower(), []).append(text)
            await pm(to, text, **kwargs)

        room.say, room.pm = recorded_say, recorded_pm


def words(lines) -> list[str]:
    return " ".join(lines).split()


def bot_chat(fake_server) -> list[str]:
    return [meant_text(text) for text in fake_server.shown_chat_from(CHANNEL, BOT_NAME)]


def bot_pms_to(fake_server, name: str) -> list[str]:
    return [meant_text(text) for to, text in fake_server.shown_pms_from(BOT_NAME)
            if to.lower() == name.lower()]


async def said(fake_server, predicate, what: str) -> str:
    return await wait_until(lambda: next((t for t in bot_chat(fake_server) if predicate(t)), None),
                            10, what)


async def pm_said(fake_server, to: str, predicate, what: str) -> str:
    return await wait_until(lambda: next((t for t in bot_pms_to(fake_server, to) if predicate(t)),
                                         None), 10, what)


async def test_commands_read_what_people_typed_and_replies_read_as_meant(
        fake_server, migrated_dsn, tmp_path):
    async with running_bot(fake_server, migrated_dsn, tmp_path, plugins=PLUGINS, only=ONLY) as bot:
        meant = MeantLines(bot.room)
        alice, bob, carol, dave = [await fake_server.user(name)
                                   for name in ("alice", "bob", "carol", "dave")]
        await bot.settle()

        # !tell to a name with underscores, a message with every marker in it
        message = "call me *maybe* at `8` _sharp_ ~~or not~~ [sp]ok[/sp]"
        await alice.chat(f"!tell cool_guy_99 {message}")
        await alice.wait_for("chatMsg", lambda p: p["msg"].startswith(  # the server filtered it
            "!tell cool<em>guy</em>99 call me <strong>maybe</strong> at <code>8</code>"))
        await said(fake_server, lambda t: t.startswith("OK, I'll tell cool_guy_99 in chat"),
                   "the tell stored for cool_guy_99")
        await bob.pm(BOT_NAME, "!tell cool_guy_99 psst_this_is_secret_")
        await pm_said(fake_server, "bob", lambda t: "I'll tell cool_guy_99 by PM" in t,
                      "the PM tell stored")
        # names that cannot be CyTube names are refused, and the refusal shows them as typed
        await carol.chat("!tell a*b*c hi")
        await said(fake_server, lambda t: t.startswith('"a*b*c" isn\'t a CyTube username'), "a*b*c")
        await dave.chat("!tell `bob` hi")
        await said(fake_server, lambda t: t.startswith('"`bob`" isn\'t a CyTube username'), "`bob`")
        conn = await asyncpg.connect(migrated_dsn)
        try:
            rows = await conn.fetch("SELECT to_user, message, is_pm FROM daz_tell_messages"
                                    " ORDER BY id")
        finally:
            await conn.close()
        assert [tuple(r) for r in rows] == [("cool_guy_99", message, False),
                                            ("cool_guy_99", "psst_this_is_secret_", True)]

        # cool_guy_99 arrives: greeted by name, both messages delivered as they were typed
        guy = await fake_server.user("cool_guy_99")
        await said(fake_server, lambda t: t.startswith("cool_guy_99: alice left you a message")
                   and t.endswith(message), "the tell delivered in chat")
        await pm_said(fake_server, "cool_guy_99",
                      lambda t: t.startswith("bob left you a message")
                      and t.endswith(": psst_this_is_secret_"), "the tell delivered by PM")
        await said(fake_server, lambda t: "cool_guy_99" in t and "left you" not in t
                   and "tell" not in t, "the greeting")
        await guy.chat("hi all")
        await bot.settle()
        await guy.leave()
        await bot.settle()

        # !seen, in chat and by PM
        await alice.chat("!seen cool_guy_99")
        await said(fake_server, lambda t: t.startswith("cool_guy_99 was last seen"), "!seen")
        await bob.pm(BOT_NAME, "!seen cool_guy_99")
        await pm_said(fake_server, "bob", lambda t: t.startswith("cool_guy_99 was last seen"),
                      "!seen by PM")
        answers = bot_chat(fake_server) + bot_pms_to(fake_server, "bob")
        assert not any("haven't seen" in t for t in answers)

        # !help by PM lists !gallery_lock and !gallery_unlock as they are spelled
        await carol.chat("!help")
        help_text = await pm_said(fake_server, "carol", lambda t: t.startswith("Commands:"),
                                  "!help")
        assert "!gallery_lock" in help_text and "!gallery_unlock" in help_text

        # !np of a title with markers in it, and its link (CyTube-style youtu.be) with underscores
        uid = await fake_server.queue_media(CHANNEL, {"id": "ab_cd_ef_gh", "type": "yt",
                                                 "title": "*Best* of `2024` _live_",
                                                 "seconds": 600})
        await fake_server.play(CHANNEL, uid)
        await bot.settle()
        await dave.chat("!np")
        np = await said(fake_server, lambda t: t.startswith("Now playing:"), "!np")
        assert "*Best* of `2024` _live_" in np
        assert "https://youtu.be/ab_cd_ef_gh" in np

        # Every line the bot sent reads, after the filters, as what it meant; none is formatted
        room = bot.room
        await wait_until(lambda: room.outbox.depth == 0 and not room.outbox.in_flight, 10,
                         "the outbox empty")
        assert words(bot_chat(fake_server)) == words(meant.chat)
        for name, lines in meant.pms.items():
            assert words(bot_pms_to(fake_server, name)) == words(lines), name
        sent_html = [line["msg"] for line in fake_server.channel(CHANNEL).chat_log
                     if line["username"] == BOT_NAME]
        sent_html += [pm["msg"] for pm in fake_server.pm_log if pm["from"] == BOT_NAME]
        assert len(sent_html) >= 12 and not any(FORMATTING.search(m) for m in sent_html)
        assert any("<a href=" in m for m in sent_html)  # the !np link is still a link


async def test_a_channel_whose_owner_removed_the_filters(fake_server, migrated_dsn, tmp_path):
    await fake_server.set_chat_filters(CHANNEL, [])
    async with running_bot(fake_server, migrated_dsn, tmp_path, plugins=PLUGINS,
                           only=["eventfilter", "tell"]) as bot:
        alice = await fake_server.user("alice")
        await bot.settle()
        await alice.chat("!tell cool_guy_99 *hi*")
        await alice.wait_for("chatMsg", lambda p: p["msg"] == "!tell cool_guy_99 *hi*")  # as typed
        line = await said(fake_server, lambda t: t.startswith("OK, I'll tell cool_guy_99"),
                          "stored")
        assert "cool_guy_99" in line
