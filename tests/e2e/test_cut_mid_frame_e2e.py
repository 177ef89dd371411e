"""The CyTube connection dies in the middle of a websocket frame (issue 6 §3).

The bot reaches the fake server only through a FrameCutProxy (discovery and socket.io both: the
server's /socketconfig advertises the proxy). While the server writes a 3,000-item playlist
frame (~600 kB) the proxy forwards its header and half its payload, then ends the stream, as a
server process dying mid-write leaves its clients. The proxy then refuses connections for a
while, during which the room changes (someone leaves, someone arrives, the playlist moves on).
Checked: the bot retries with growing delays (backoff, not a hot loop), rejoins, its RoomState
matches the server (users, playlist order, current item), and the history replayed on the join
(a !ping, a !tell) gets no reaction: no second pong, no greeting or tell again.
"""
from __future__ import annotations

import asyncio
import logging

from tests.e2e.harness import BOT_NAME, BOT_PASSWORD, running_bot, wait_until
from tests.e2e.support import (
    CHANNEL,
    RESYNC_ONLY,
    assert_nothing_repeated,
    before_a_resync,
    plugins,
    pongs,
    room_matches_server,
)
from tests.fakes.frame_cut_proxy import FrameCutProxy

BIG_FRAME = 100_000  # bytes of payload; only the 3,000-item playlist frame is this large


def playlist(prefix: str, n: int) -> list[dict]:
    return [{"id": f"{prefix}{i}", "title": f"{prefix.upper()}{i}" * 20, "seconds": 60,
             "type": "yt"} for i in range(n)]


async def retry_delays_while(bot, condition, timeout: float) -> list[float]:
    """The distinct backoff delays the room chose while ``condition()`` holds (sampled)."""
    delays: list[float] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while condition():
        delay = bot.room.last_retry_delay
        if delay and (not delays or delay != delays[-1]):
            delays.append(delay)
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.01)
    return delays


async def test_killed_mid_frame_reconnects_with_backoff_and_resyncs_without_repeats(
        fake_server, migrated_dsn, tmp_path, caplog):
    server = fake_server
    caplog.set_level(logging.WARNING)
    proxy = await FrameCutProxy("127.0.0.1", server.port).start()
    proxy_url = f"http://127.0.0.1:{proxy.port}"
    server.advertised_url = proxy_url
    room = {"id": CHANNEL, "channel": CHANNEL, "username": BOT_NAME, "password": BOT_PASSWORD,
            "enabled": True, "server_url": proxy_url}
    await server.set_playlist(CHANNEL, playlist("v", 5))
    await server.play(CHANNEL, server.channel(CHANNEL).playlist[0].uid)
    config = plugins(greeter={"reconnect_grace_seconds": 1, "rejoin_window_minutes": 1})
    try:
        async with running_bot(server, migrated_dsn, tmp_path, plugins=config, rooms=[room],
                               only=RESYNC_ONLY) as bot:
            assert proxy.connections >= 2  # discovery and the socket both went through it
            alice, dave, lines_before = await before_a_resync(server, bot)

            # The cut: half of the big playlist frame reaches the bot, then the stream ends.
            cut = proxy.cut_mid_frame(BIG_FRAME)
            await server.set_playlist(CHANNEL, playlist("w", 3000))
            info = await asyncio.wait_for(cut, 10)
            assert info["payload"] > BIG_FRAME and 0 < info["forwarded"] < info["payload"]
            await proxy.block()  # and the server stays unreachable for a few attempts
            await wait_until(lambda: not bot.room.status()["connected"], 10, "the loss seen")
            assert len(bot.room.state.order) != 3000  # the half frame was not taken as a list

            # Meanwhile the room moves on without the bot.
            await dave.leave()
            erin = await server.user("erin")
            channel = server.channel(CHANNEL)
            await server.play(CHANNEL, channel.playlist[7].uid)
            await server.queue_media(CHANNEL, {"id": "new1", "title": "New", "seconds": 30,
                                               "type": "yt"})
            delays = await retry_delays_while(
                bot, lambda: bot.room.status()["reconnects"] < 3, timeout=15)
            assert bot.room.status()["reconnects"] >= 3, bot.room.status()
            # Equal-jitter exponential backoff: each failed attempt waits longer than the last.
            assert len(delays) >= 2 and delays == sorted(delays) and delays[-1] > delays[0], \
                delays
            assert not bot.room.status()["joined"] and bot.room.lifecycle.gave_up is None

            await proxy.unblock()
            await wait_until(lambda: room_matches_server(bot, server), 20, "state re-synced")
            assert "dave" not in bot.room.state.users and "erin" in bot.room.state.users
            assert len(bot.room.state.order) == 3001

            # Nothing repeated: the replayed !ping and !tell, and erin (in the join-time
            # userlist, so not an arrival the bot saw) get no reaction.
            await assert_nothing_repeated(server, bot, lines_before)
            tracebacks = [r for r in caplog.records if r.exc_info and r.name.startswith("daz")]
            assert not tracebacks, [(r.name, r.getMessage()[:200]) for r in tracebacks]

            # And it still answers.
            await alice.chat("!ping")
            await wait_until(lambda: pongs(server) == 2, 10, "pong after the re-sync")
            for user in (alice, erin):
                await user.leave()
    finally:
        await proxy.stop()
