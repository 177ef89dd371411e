"""Who is a bot admin, in a real channel (issue 10 item 7), and where refusals go (item 8).

An ``admin_users`` name is an admin only while that person is in the room, logged in to a
registered account (rank >= 1), and only under CyTube's own name comparison. The Kelvin-sign
"Kate" cannot log in to a real CyTube (names are ASCII), so she arrives as a broken or hostile
server would send her: a raw ``addUser`` and ``chatMsg``.
"""
from __future__ import annotations

import time

from tests.e2e.harness import running_bot, wait_until
from tests.e2e.support import CHANNEL, bot_lines, flush_all, plugins, pm_texts

KELVIN_KATE = "\u212aate"  # str.lower() turns it into "kate"
ONLY = ["sql", "eventfilter", "basics", "greeter"]


async def test_only_the_logged_in_admin_in_the_room_may_switch_commands(fake_server, migrated_dsn,
                                                                         tmp_path):
    server = fake_server
    async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins(), only=ONLY,
                           admin_users=["Kate"]) as bot:
        registry = bot.app.plugins.commands
        # "kate" is not a registered account here, so a guest can take the name.
        impostor = await server.user("kate")
        assert server.channel(CHANNEL).find("kate").rank == 0
        await impostor.chat("!command disable ping")
        await wait_until(lambda: pm_texts(server, "kate"), 10, "the refusal PM")
        assert pm_texts(server, "kate") == ["!command is for bot admins only."]
        assert registry.resolve("ping").enabled
        await impostor.leave()

        channel = server.channel(CHANNEL)
        server.broadcast(channel, "addUser", {"name": KELVIN_KATE, "rank": 3, "profile": {},
                                              "meta": {"afk": False, "muted": False}})
        server.broadcast(channel, "chatMsg", {"username": KELVIN_KATE,
                                              "msg": "!command disable ping", "meta": {},
                                              "time": int(time.time() * 1000)})
        # The refusal PM cannot reach a name the server does not know; the audit log shows it.
        refused = await wait_until(lambda: attempts_of(bot, KELVIN_KATE), 10, "her attempt")
        assert refused == [(False, "admin: !command is for bot admins only.")]
        assert registry.resolve("ping").enabled

        server.add_account("Kate", "katepw1")
        server.set_channel_rank(CHANNEL, "Kate", 2)
        kate = await server.user("Kate")
        await kate.chat("!command disable ping")
        await wait_until(lambda: not registry.resolve("ping").enabled, 10, "ping switched off")
        assert bot_lines(server)[-1] == "!ping is off."
        await kate.leave()


async def attempts_of(bot, username: str) -> list[tuple[bool, str]]:
    await flush_all(bot)
    rows = await bot.db.fetch("SELECT success, error_message FROM daz_eventfilter_history"
                              " WHERE username = $1 ORDER BY id", username)
    return [(r["success"], r["error_message"]) for r in rows]


async def test_a_refused_subcommand_is_answered_by_pm_never_in_public(fake_server, migrated_dsn,
                                                                      tmp_path):
    server = fake_server
    greetings = tmp_path / "greetings.txt"
    greetings.write_text("general: GREET {user}\n")
    config = plugins(greeter={"greetings_file": str(greetings)})
    async with running_bot(server, migrated_dsn, tmp_path, plugins=config, only=ONLY) as bot:
        bob = await server.user("bob")
        await bob.chat("!greeter test")
        await bob.chat("!ping")  # a barrier: answered after the refusal was sent
        await wait_until(lambda: "pong" in bot_lines(server), 10, "pong")
        await wait_until(lambda: pm_texts(server, "bob"), 10, "the refusal PM")
        assert pm_texts(server, "bob") == ["!greeter test is for bot admins only."]
        # bob's arrival may be greeted (a real join); nothing about the refusal is said in public
        assert [line for line in bot_lines(server) if line != "GREET bob"] == ["pong"]
        assert await attempts_of(bot, "bob") == [
            (False, "refused: !greeter test is for bot admins only."), (True, "")]
        await bob.leave()
