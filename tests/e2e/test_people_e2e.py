"""The plugins people talk to, in the whole bot (issue 5, "How it is checked"): greeter, tell,
gallery and ollama against the fake CyTube server and real PostgreSQL, including two daz
processes (two bot accounts) in one channel on one database."""
from __future__ import annotations

import contextlib

from daz.plugins.manager import available_plugins
from daz.plugins.ollama import Ollama
from tests.e2e.harness import BOT_NAME, running_bot, wait_until
from tests.e2e.support import CHANNEL, bot_lines, plugins, pm_texts, settle_quiet, wait_for_line
from tests.fakes.image_server import ImageServer
from tests.fakes.ollama import FakeOllama

SECOND_BOT = "dazbot2"


def greetings_file(tmp_path) -> str:
    path = tmp_path / "greetings.txt"
    path.write_text("general: GREET {user}\nfirst: FIRST {user}\n")
    return str(path)


def greetings_to(server, name: str, bot: str = BOT_NAME) -> list[str]:
    return [line for line in bot_lines(server, bot=bot)
            if line.split(" ", 1)[0] in ("GREET", "FIRST") and line.endswith(f" {name}")]


# ---------------------------------------------------------------------------- greeter


async def test_greeter_greets_real_arrivals_once(fake_server, migrated_dsn, tmp_path):
    server = fake_server
    early = await server.user("early")  # in the join-time userlist: never greeted
    config = plugins(greeter={"greetings_file": greetings_file(tmp_path),
                              "reconnect_grace_seconds": 1.0, "rejoin_window_minutes": 1})
    async with running_bot(server, migrated_dsn, tmp_path, plugins=config,
                           only=["sql", "eventfilter", "usertracker", "greeter"]) as bot:
        greeter = bot.plugin("greeter")
        bob = await server.user("bob")
        await wait_until(lambda: greetings_to(server, "bob"), 10, "bob's greeting")
        assert greetings_to(server, "bob") == ["FIRST bob"]  # never seen here before

        # A flap: gone and back within the rejoin window.
        await bob.leave()
        bob = await server.user("bob")
        await bot.settle()
        await greeter.idle()

        # The bot's connection dies; everyone comes back after the bot is in again.
        await server.kill_connections()
        await wait_until(lambda: bot.room.status()["reconnects"] >= 1
                         and bot.room.status()["joined"], 20, "the bot back")
        early = await server.user("early")
        bob = await server.user("bob")
        await settle_quiet(1.1)  # past the reconnect grace
        carol = await server.user("carol")  # a real arrival after the reconnect
        await wait_until(lambda: greetings_to(server, "carol"), 10, "carol's greeting")
        await bot.settle()
        await greeter.idle()

        assert greetings_to(server, "bob") == ["FIRST bob"]
        assert greetings_to(server, "early") == []
        assert greetings_to(server, BOT_NAME) == []
        assert not any(BOT_NAME in line for line in bot_lines(server))
        rows = await bot.db.fetch("SELECT username, greeting_type FROM daz_greeter_history"
                                  " ORDER BY id")
        assert [(r["username"], r["greeting_type"]) for r in rows] == \
            [("bob", "first_time"), ("carol", "first_time")]
        for user in (early, bob, carol):
            await user.leave()


# ---------------------------------------------------------------------------- tell


async def test_tell_is_delivered_once_on_join_and_by_pm_when_sent_by_pm(fake_server,
                                                                       migrated_dsn, tmp_path):
    server = fake_server
    async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins(),
                           only=["sql", "eventfilter", "usertracker", "tell"]) as bot:
        alice = await server.user("alice")
        await alice.chat("!tell dave see you at 8")
        await wait_for_line(server, lambda line: line.startswith("OK, I'll tell dave in chat"),
                            "stored")
        bob = await server.user("bob")  # alice's !tell is cooling down
        mark = bob.mark()
        await bob.pm(BOT_NAME, "!tell erin the secret plan")
        confirm = await bob.wait_for("pm", lambda p: p.get("username") == BOT_NAME, since=mark)
        assert confirm["msg"].startswith("OK, I'll tell erin by PM")

        dave = await server.user("dave")
        delivered = await wait_for_line(server,
                                        lambda line: line.startswith("dave: alice left you"),
                                        "the public delivery")
        assert delivered.endswith("see you at 8")
        erin = await server.user("erin")
        await wait_until(lambda: pm_texts(server, "erin"), 10, "the PM delivery")
        assert len(pm_texts(server, "erin")) == 1
        assert pm_texts(server, "erin")[0].endswith("the secret plan")
        assert not any("secret plan" in line for line in bot_lines(server))

        # Coming back, or speaking, never delivers again.
        await dave.leave()
        dave = await server.user("dave")
        await dave.chat("hello again")
        await erin.chat("hi")
        await bot.settle()
        await bot.plugin("tell").idle()
        await settle_quiet()
        assert sum(line.startswith("dave: alice left you") for line in bot_lines(server)) == 1
        assert len(pm_texts(server, "erin")) == 1
        rows = await bot.db.fetch("SELECT to_user, delivered, sent_at, is_pm"
                                  " FROM daz_tell_messages ORDER BY id")
        assert [(r["to_user"], r["delivered"], r["is_pm"]) for r in rows] == \
            [("dave", True, False), ("erin", True, True)]
        assert all(r["sent_at"] is not None for r in rows)
        for user in (alice, bob, dave, erin):
            await user.leave()


@contextlib.asynccontextmanager
async def two_bots(server, dsn, tmp_path, *, only, config, plugin_classes=None):
    async with running_bot(server, dsn, tmp_path / "one", plugins=config, only=only,
                           plugin_classes=plugin_classes) as first:
        async with running_bot(server, dsn, tmp_path / "two", plugins=config, only=only,
                               username=SECOND_BOT, password="second-pw",
                               plugin_classes=plugin_classes) as second:
            yield first, second


def deliveries(server, name: str) -> list[str]:
    """Every tell delivery ``name`` got, from either bot, in chat or by PM."""
    out = [text for who, text in server.pms_to(name)
           if who in (BOT_NAME, SECOND_BOT) and "left you a message" in text]
    for bot in (BOT_NAME, SECOND_BOT):
        out += [line for line in bot_lines(server, bot=bot)
                if line.startswith(f"{name}: ") and "left you a message" in line]
    return out


async def test_two_bots_on_one_database_deliver_a_tell_once(fake_server, migrated_dsn,
                                                            tmp_path):
    server = fake_server
    async with two_bots(server, migrated_dsn, tmp_path, config=plugins(),
                        only=["eventfilter", "usertracker", "tell"]) as (one, two):
        alice = await server.user("alice")
        mark = alice.mark()
        await alice.pm(BOT_NAME, "!tell dave pm note")  # only the first bot stores it
        await alice.wait_for("pm", lambda p: p.get("username") == BOT_NAME, since=mark)
        for _ in range(3):
            dave = await server.user("dave")  # both bots see the join and race to deliver
            await wait_until(lambda: deliveries(server, "dave"), 10, "dave's message")
            await dave.leave()
        for bot in (one, two):
            await bot.settle()
            await bot.plugin("tell").idle()
        assert len(deliveries(server, "dave")) == 1
        await alice.leave()


async def test_two_bots_store_a_public_tell_once(fake_server, migrated_dsn, tmp_path):
    server = fake_server
    async with two_bots(server, migrated_dsn, tmp_path, config=plugins(),
                        only=["eventfilter", "usertracker", "tell"]) as (one, two):
        alice = await server.user("alice")
        await alice.chat("!tell frank public note")

        def confirmations() -> list[str]:  # whichever bot stored it answers; the other is silent
            return [line for bot in (BOT_NAME, SECOND_BOT) for line in bot_lines(server, bot=bot)
                    if line.startswith("OK, I'll tell frank")]

        await wait_until(confirmations, 10, "stored")
        for bot in (one, two):
            await bot.settle()
        await settle_quiet()
        assert len(confirmations()) == 1
        assert await one.db.fetchval("SELECT count(*) FROM daz_tell_messages") == 1
        frank = await server.user("frank")
        await wait_until(lambda: deliveries(server, "frank"), 10, "frank's message")
        for bot in (one, two):
            await bot.settle()
            await bot.plugin("tell").idle()
        await settle_quiet()
        assert len(deliveries(server, "frank")) == 1
        await frank.leave()
        await alice.leave()


# ---------------------------------------------------------------------------- gallery


async def test_gallery_stores_an_image_link_posted_in_chat(fake_server, migrated_dsn, tmp_path):
    server = fake_server
    async with contextlib.AsyncExitStack() as stack:
        images = await stack.enter_async_context(ImageServer())
        # The local image server is allowed by name (the fetcher vets every host before
        # collecting, and refuses loopback otherwise); the health checker is off.
        config = plugins(gallery={"unsafe_allow_hosts": [f"127.0.0.1:{images.port}"]})
        bot = await stack.enter_async_context(running_bot(
            server, migrated_dsn, tmp_path, plugins=config, only=["sql", "eventfilter",
                                                                  "gallery"]))
        alice = await server.user("alice")
        url = images.url("/cat.png")
        await alice.chat(f"look at this {url} and {images.url('/page.html')}")
        await wait_until(lambda: bot.db.fetchval(
            "SELECT count(*) FROM daz_gallery_images WHERE username = 'alice'"), 10, "the image")
        await bot.settle()
        rows = await bot.db.fetch("SELECT url, channel, state FROM daz_gallery_images")
        assert [(r["url"], r["channel"]) for r in rows] == [(url, CHANNEL)]
        await alice.leave()


# ---------------------------------------------------------------------------- ollama


def ollama_config(url: str) -> dict:
    return plugins(ollama={"enabled": True, "ollama_url": url, "model": "test-model",
                           "timeout": 5, "rate_limit_seconds": 0,
                           "channel_rate_limit_seconds": 0, "follow_up_enabled": False,
                           "aliases": ["daz"]})


async def test_ollama_answers_when_addressed_once_in_total_with_two_bots(
        fake_server, migrated_dsn, tmp_path):
    server = fake_server
    ollama = FakeOllama(reply="the model says hi")
    await ollama.start()
    classes = {**available_plugins(), "ollama": Ollama}
    try:
        async with two_bots(server, migrated_dsn, tmp_path, config=ollama_config(ollama.url),
                            only=["eventfilter", "ollama"], plugin_classes=classes) as (one, two):
            alice = await server.user("alice")
            await alice.chat("nice weather for ducks")  # not addressed: no reply
            await alice.chat("hey daz, how are you?")  # addresses both bots by their alias

            def replies() -> list[str]:
                return [line for bot in (BOT_NAME, SECOND_BOT)
                        for line in bot_lines(server, bot=bot) if line == "the model says hi"]

            await wait_until(replies, 10, "a model reply")
            for bot in (one, two):
                await bot.settle()
                await bot.plugin("ollama").quiesce()
            await settle_quiet()
            assert len(replies()) == 1
            assert await one.db.fetchval("SELECT count(*) FROM daz_ollama_responses") == 1
            await alice.leave()
    finally:
        await ollama.stop()
