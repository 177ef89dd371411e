"""!np in a channel (issue 10 item 8): the title, and the item's page for media types that have
one, built from type and id as CyTube links it; never the raw media id."""
from __future__ import annotations

from tests.e2e.harness import running_bot
from tests.e2e.support import CHANNEL, bot_lines, plugins, wait_for_line

EMBED = '<iframe src="https://example.com/embed/123" width="640" height="360"></iframe>'


async def now_playing(server, alice, seen: int) -> str:
    await alice.chat("!np")
    return await wait_for_line(server, lambda line: line.startswith("Now playing:")
                               and bot_lines(server).index(line) >= seen, "!np")


async def test_np_names_the_title_and_links_the_page(fake_server, migrated_dsn, tmp_path):
    server = fake_server
    config = plugins(mediatracker={})
    async with running_bot(server, migrated_dsn, tmp_path, plugins=config,
                           only=["sql", "eventfilter", "mediatracker"]) as bot:
        stream = await server.queue_media(CHANNEL, {"id": "somestreamer", "type": "tw",
                                                    "title": "Twitch.tv - somestreamer"})
        await server.play(CHANNEL, stream)
        await bot.settle()  # the bot has seen the media change before anyone asks
        alice = await server.user("alice")
        line = await now_playing(server, alice, 0)
        assert line.startswith("Now playing: Twitch.tv - somestreamer"
                               " [https://twitch.tv/somestreamer] ")

        embed = await server.queue_media(CHANNEL, {"id": EMBED, "type": "cu", "seconds": 90,
                                                   "title": "My custom embed"})
        await server.play(CHANNEL, embed)
        await bot.settle()
        bob = await server.user("bob")  # alice's !np is cooling down
        line = await now_playing(server, bob, len(bot_lines(server)))
        assert line.startswith("Now playing: My custom embed 0:")
        assert "cu:" not in line and "[" not in line and line.endswith("/ 1:30")
        await alice.leave()
        await bob.leave()
