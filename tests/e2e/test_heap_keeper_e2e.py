"""The heap keeper inside a running daz (`daz run` keeps the heap): it counts the app's rooms
(held, still joining) and /health reports its figures under ``heap``."""
from __future__ import annotations

import gc

import aiohttp

from bench.daz_process import free_port
from tests.e2e.harness import running_bot, wait_until


async def test_health_reports_the_heap_keeper_counting_the_rooms(fake_server, migrated_dsn,
                                                                 tmp_path):
    rooms = [{"id": ch, "channel": ch, "username": "dazbot", "password": "dazbot-pw",
              "enabled": True, "server_url": fake_server.base_url} for ch in ("heapa", "heapb")]
    for room in rooms:
        fake_server.set_channel_rank(room["channel"], "dazbot", 2)
    # A third room whose server does not answer: it keeps trying, so it counts as joining.
    rooms.append({**rooms[0], "id": "nowhere", "channel": "nowhere",
                  "server_url": f"http://127.0.0.1:{free_port()}"})
    threshold = gc.get_threshold()
    async with running_bot(fake_server, migrated_dsn, tmp_path, only=[], rooms=rooms, web=True,
                           keep_heap=True, join=False) as bot:
        await wait_until(lambda: bot.heap.rooms() == (3, 1), 15, "two of the three rooms joined")
        assert bot.heap.check() is False and bot.heap.per_room is None  # one still joining
        bot.heap.max_postpone = 0.0  # it has tried long enough: the share is learnt anyway
        assert bot.heap.check() is False and bot.heap.per_room is not None
        await wait_until(lambda: bot.heap.paced_collections >= 1, 10, "a paced collection")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{bot.web.port}/health") as response:
                assert response.status == 503  # the third room is not joined
                heap = (await response.json())["heap"]
        assert heap["rooms_held"] == 3 and heap["rooms_joining"] == 1
        assert heap["complete_collections"] == 1  # the one at start, before the rooms
        assert heap["per_room_blocks"] is not None and heap["base_blocks"] > 0
        assert heap["heap_blocks"] < heap["complete_at_blocks"]
        assert heap["paced_collections"] >= 1 and 0 < heap["pace_seconds"] <= 1.0
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0  # stopping gave the test process its collector back
    assert gc.get_threshold() == threshold
