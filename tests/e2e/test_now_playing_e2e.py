"""!np in a channel (issue 10 item 8): the title, and the item's page for media types that have
one, built from type and id as CyTube links it; never the raw media id."""
from __future__ import annotations

from tests.e2e.harness import running_bot, wait_until
from tests.e2e.support import CHANNEL, bot_lines, plugins, wait_for_line

EMBED = '<iframe src="https://example.com/embed/123" width="640" height="360"></iframe>'


async def now_playing(server, alice, seen: int) -> str:
    await alice.chat("!np")
    return await wait_for_line(server, lambda line: line.startswith("Now playing:")
                               and bot_lines(server).index(line) >= seen, "!np")


async def tracking(bot, server, uid: int) -> None:
    """Until the bot has seen playlist item ``uid`` start playing (what !np reads), however
    slowly a loaded machine delivers the media change."""
    media_id = next(e for e in server.channel(CHANNEL).playlist if e.uid == uid).media["id"]

    def playing() -> bool:
        play = bot.plugin("mediatracker").plays.get(bot.room.id)
        return play is not None and play.open and play.media_id == media_id
    await wait_until(playing, 10, f"the bot tracking {media_id} as playing")


async def test_np_names_the_title_and_links_the_page(fake_server, migrated_dsn, tmp_path):
    server = fake_server
    config = plugins(mediatracker={})
    async with running_bot(server, migrated_dsn, tmp_path, plugins=config,
                           only=["sql", "eventfilter", "mediatracker"]) as bot:
        stream = await server.queue_media(CHANNEL, {"id": "somestreamer", "type": "tw",
                                                    "title": "Twitch.tv - somestreamer"})
        await server.play(CHANNEL, stream)
        await tracking(bot, server, stream)  # the bot has seen it before anyone asks
        alice = await server.user("alice")
        line = await now_playing(server, alice, 0)
        assert line.startswith("Now playing: Twitch.tv - somestreamer"
                               " [https://twitch.tv/somestreamer] ")

        embed = await server.queue_media(CHANNEL, {"id": EMBED, "type": "cu", "seconds": 90,
                                                   "title": "My custom embed"})
        await server.play(CHANNEL, embed)
        await tracking(bot, server, embed)
        bob = await server.user("bob")  # alice's !np is cooling down
        line = await now_playing(server, bob, len(bot_lines(server)))
        assert line.startswith("Now playing: My custom embed 0:")
        assert "cu:" not in line and "[" not in line and line.endswith("/ 1:30")
        await alice.leave()
        await bob.leave()
