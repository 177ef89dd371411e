"""Huge rooms (issue 10 item 6): the join burst of a channel with 50,000 people or a 20,000-item
playlist is one websocket frame of several MiB, over aiohttp's default limit of 4 MiB. daz must
join such a room, and when a frame is over its own limit (``max_frame_mib``), say so instead of
"transport error"."""
from __future__ import annotations

import json

from tests.e2e.harness import BOT_NAME, BOT_PASSWORD, running_bot, wait_until
from tests.e2e.support import CHANNEL

AIOHTTP_DEFAULT_LIMIT = 4 * 1024 * 1024


def frame_size(payload) -> int:
    return len(json.dumps(payload, separators=(",", ":")).encode())


async def test_joins_a_room_of_fifty_thousand_people(fake_server, migrated_dsn, tmp_path):
    server = fake_server
    crowd = await server.add_crowd(CHANNEL, 50_000)
    # What the bot (rank 2) is sent: mods get the long form of every user.
    assert frame_size(server.channel(CHANNEL).userlist(2)) > AIOHTTP_DEFAULT_LIMIT
    async with running_bot(server, migrated_dsn, tmp_path, only=["sql"]) as bot:
        state = bot.room.state
        assert len(state.users) == 50_001
        assert state.user(crowd[-1]) is not None and state.is_present(BOT_NAME)
        assert bot.room.status()["reconnects"] == 0
        alice = await server.user("alice")  # the room keeps working after the huge frame
        await wait_until(lambda: bot.room.state.is_present("alice"), 10, "alice seen")
        await alice.leave()


async def test_joins_a_room_with_a_twenty_thousand_item_playlist(fake_server, migrated_dsn,
                                                                  tmp_path):
    server = fake_server
    items = [{"media": {"id": f"stream{n:05d}", "type": "tw", "seconds": 0,
                        "title": f"Twitch.tv - a long enough stream title number {n:05d}" * 2},
              "queueby": "alice"} for n in range(20_000)]
    await server.set_playlist(CHANNEL, items)
    assert frame_size(server.channel(CHANNEL).playlist_payload()) > AIOHTTP_DEFAULT_LIMIT
    async with running_bot(server, migrated_dsn, tmp_path, only=["sql"]) as bot:
        state = bot.room.state
        assert len(state.order) == 20_000
        assert state.playlist[state.order[-1]].media.id == "stream19999"
        assert bot.room.status()["reconnects"] == 0


async def test_a_frame_over_the_limit_is_named_as_the_reason(fake_server, migrated_dsn, tmp_path,
                                                             caplog):
    server = fake_server
    await server.add_crowd(CHANNEL, 20_000)
    size = frame_size(server.channel(CHANNEL).userlist(2))
    assert 1024 * 1024 < size < 64 * 1024 * 1024
    room = {"id": CHANNEL, "channel": CHANNEL, "username": BOT_NAME, "password": BOT_PASSWORD,
            "enabled": True, "server_url": server.base_url, "max_frame_mib": 1,
            "reconnect_attempts": 1}
    async with running_bot(server, migrated_dsn, tmp_path, only=[], rooms=[room],
                           join=False) as bot:
        status = await wait_until(lambda: bot.room.status().get("gave_up") and bot.room.status(),
                                  30, "the room to give up")
        assert not status["joined"]
    reason = status["last_error"]
    assert "message too big" in reason and "exceeds limit 1048576" in reason, reason
    assert "transport error" not in reason
    assert any("message too big" in r.getMessage() for r in caplog.records
               if r.name.startswith("daz.cytube"))
