"""Connects paced to CyTube's per-address rule (cytube.join_pacer)."""
from __future__ import annotations

import asyncio
import time

from daz.cytube.join_pacer import JoinPacer


async def test_a_burst_then_one_per_interval_first_come_first_served():
    pacer = JoinPacer(burst=2, interval_seconds=0.2)
    stop = asyncio.Event()
    order: list[str] = []

    async def join(room: str) -> None:
        assert await pacer.turn("https://cytu.be", room, stop)
        order.append(room)

    started = time.monotonic()
    tasks = [asyncio.create_task(join(f"r{i}")) for i in range(4)]
    await asyncio.sleep(0.05)
    assert order == ["r0", "r1"]
    assert pacer.status()["cytu.be"]["queue"] == ["r2", "r3"]  # what /health shows
    await asyncio.gather(*tasks)
    assert order == ["r0", "r1", "r2", "r3"]
    assert time.monotonic() - started >= 0.35  # two more tokens, 0.2 s apart


async def test_other_servers_have_buckets_of_their_own_and_a_refusal_empties_one():
    pacer = JoinPacer(burst=1, interval_seconds=60)
    stop = asyncio.Event()
    assert await pacer.turn("https://a.example", "a", stop)
    assert await pacer.turn("https://b.example", "b", stop)
    pacer.refused("https://c.example")
    waiting = asyncio.create_task(pacer.turn("https://c.example", "c", stop))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    stop.set()  # a room that stops while waiting leaves the queue at once
    assert await asyncio.wait_for(waiting, 1) is False
    assert pacer.status()["c.example"]["waiting"] == 0


async def test_interval_zero_means_no_pacing():
    pacer = JoinPacer(burst=1, interval_seconds=0)
    stop = asyncio.Event()
    for i in range(20):
        assert await pacer.turn("https://cytu.be", f"r{i}", stop)
