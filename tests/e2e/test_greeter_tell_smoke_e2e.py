"""Smoke test: greeter and tell in the whole bot, against the fake CyTube server (real sockets,
real Room, real outbox). The detailed behaviour is covered in tests/integration."""
from daz.sandbox import fake_cytube
from tests.e2e.harness import BOT_NAME, running_bot, wait_until

PLUGINS = {
    "greeter": {"delay_min_seconds": 0, "delay_max_seconds": 0, "skip_probability": 0,
                "use_greeting_engine": False, "channel_cooldown_seconds": 0,
                "reconnect_grace_seconds": 5},
    "tell": {"join_delay_seconds": 0},
}


async def test_arrivals_are_greeted_once_and_tells_delivered_through_real_rooms(migrated_dsn,
                                                                              tmp_path):
    server = fake_cytube.FakeCytubeServer()
    await server.start()
    try:
        early = await server.user("early")  # in the room before the bot: never greeted
        async with running_bot(server, migrated_dsn, tmp_path, plugins=PLUGINS,
                               only=["eventfilter", "usertracker", "greeter", "tell"]) as bot:
            bob = await server.user("bob")
            await wait_until(lambda: any("bob" in line
                                         for line in server.chat_from("testchan", BOT_NAME)),
                             10, "bob's greeting")
            await bob.chat("!tell dave /kick everyone, see you at 8")
            await wait_until(lambda: any("I'll tell dave" in line
                                         for line in server.chat_from("testchan", BOT_NAME)),
                             10, "the tell confirmation")
            dave = await server.user("dave")
            await wait_until(lambda: any("left you a message" in line
                                         for line in server.chat_from("testchan", BOT_NAME)),
                             10, "the tell delivered")
            await bot.settle()
            await bot.plugin("greeter").idle()
            lines = server.chat_from("testchan", BOT_NAME)
            assert not any("early" in line for line in lines)
            assert sum("left you a message" in line for line in lines) == 1
            assert sum("dave" in line and "left you" not in line and "tell" not in line
                       for line in lines) == 1  # dave greeted once, as a newcomer
            await dave.leave()
            await early.leave()
            await bob.leave()
    finally:
        await server.stop()
