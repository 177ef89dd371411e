"""Server restarts are not new plays (issue 10 item 4).

A restarted CyTube reloads the channel from its saved state: the
playlist comes back with new uids and the current item continues a few seconds behind where it
was. The fake server's ``restart()`` does exactly that; the bot's socket is cut, it reconnects
and gets the reloaded channel. One real play must stay one row and one count, however many
restarts it lives through; playing the item again from its start is still a new play.
"""
from __future__ import annotations

import asyncio

import pytest

from tests.e2e.harness import running_bot, wait_until
from tests.e2e.support import CHANNEL, flush_all, plugins
from tests.fakes.cytube import FakeCytubeServer

ONLY = ["sql", "mediatracker", "analytics"]
SONG = {"id": "dQw4w9WgXcQ", "title": "A long song", "seconds": 600, "type": "yt"}
OTHER = {"id": "other12345a", "title": "Another", "seconds": 300, "type": "yt"}


@pytest.fixture
async def playing_server():
    """Timed items tick, advance and resume by themselves, as on the real server."""
    server = FakeCytubeServer(auto_playback=True, lead_in=0.2, update_interval=0.5)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def plays(bot) -> list[tuple[str, bool]]:
    await flush_all(bot)
    rows = await bot.db.fetch("SELECT media_id, ended_at IS NULL AS open"
                              " FROM daz_mediatracker_plays ORDER BY id")
    return [(r["media_id"], r["open"]) for r in rows]


async def counts(bot, media_id: str) -> tuple[int, int, int]:
    """(stats play_count, library play_count, plays on the dashboard's hourly figures)."""
    await flush_all(bot)
    stats = await bot.db.fetchval("SELECT play_count FROM daz_mediatracker_stats"
                                  " WHERE media_id = $1", media_id)
    library = await bot.db.fetchval("SELECT play_count FROM daz_mediatracker_library"
                                    " WHERE media_id = $1", media_id)
    hourly = await bot.db.fetchval("SELECT coalesce(sum(media_plays), 0)"
                                   " FROM daz_analytics_hourly")
    return stats, library, hourly


async def restart_and_rejoin(server, bot) -> None:
    before = bot.room.status()["reconnects"]
    await server.restart(down_for=0.3)
    await wait_until(lambda: bot.room.status()["reconnects"] > before
                     and bot.room.status()["joined"], 20, "the bot back after the restart")
    await bot.settle()


async def test_a_restart_mid_play_continues_the_same_play(playing_server, migrated_dsn,
                                                          tmp_path):
    server = playing_server
    await server.set_playlist(CHANNEL, [{"media": OTHER}, {"media": SONG}])
    song_uid = server.channel(CHANNEL).playlist[1].uid
    async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins(),
                           only=ONLY) as bot:
        await server.play(CHANNEL, song_uid)
        await server.media_update(CHANNEL, 314)  # someone skipped ahead; it plays on from here
        await wait_until(lambda: bot.room.state.current_time > 314.4, 10, "playback ticking")
        assert await plays(bot) == [(SONG["id"], True)]

        for _ in range(2):  # one real play counted 3 times on the dashboard, before the fix
            await restart_and_rejoin(server, bot)
            channel = server.channel(CHANNEL)
            assert [e.uid for e in channel.playlist] == [0, 1]  # renumbered by the reload
            assert 290 < channel.current_time < 314.5  # a few seconds behind, each time
            assert bot.room.state.current_uid == 1
            resumed_at = channel.current_time
            await wait_until(lambda: bot.room.state.current_time > resumed_at + 0.4, 10,
                             "the item playing on after the restart")
        assert await plays(bot) == [(SONG["id"], True)]
        assert await counts(bot, SONG["id"]) == (1, 1, 1)
        row = await bot.db.fetchrow("SELECT metadata FROM daz_mediatracker_plays")
        assert row["metadata"]["uid"] == 1  # the play follows the item's new uid

        # Played again from its start: a new play, counted.
        await server.play(CHANNEL, 1)
        await wait_until(lambda: bot.room.state.current_time <= 0, 10, "the replay's lead-in")
        await asyncio.sleep(0.2)
        assert await plays(bot) == [(SONG["id"], False), (SONG["id"], True)]
        assert await counts(bot, SONG["id"]) == (2, 2, 2)


async def test_a_restart_during_the_next_item_starts_no_extra_play(playing_server, migrated_dsn,
                                                                    tmp_path):
    server = playing_server
    await server.set_playlist(CHANNEL, [{"media": SONG}, {"media": OTHER}])
    uids = [e.uid for e in server.channel(CHANNEL).playlist]
    async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins(),
                           only=ONLY) as bot:
        await server.play(CHANNEL, uids[0])
        await server.media_update(CHANNEL, 100)
        await server.play(CHANNEL, uids[1])  # the next item: a new play
        await server.media_update(CHANNEL, 60)
        await wait_until(lambda: bot.room.state.current_time > 60.2, 10, "playback ticking")
        await restart_and_rejoin(server, bot)
        assert await plays(bot) == [(SONG["id"], False), (OTHER["id"], True)]
        assert await counts(bot, OTHER["id"]) == (1, 1, 2)
