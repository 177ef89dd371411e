"""Bus dispatch: typed chat events published to N no-op plugin subscribers.

Measures the in-process cost of the bus alone (parsing included), the ceiling for everything
downstream of the socket.
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    Timer,
    report,
    rss_mib,
    run,
    sized,
)
from daz.bus import Bus
from daz.cytube.events import parse_event

EVENTS = sized(100_000, 10_000)


async def dispatch(subscribers: int) -> float:
    bus = Bus()
    handled = 0

    async def noop(event) -> None:
        nonlocal handled
        handled += 1

    for i in range(subscribers):
        bus.subscribe("cytube.event.*", noop, owner=f"plugin{i}", overflow="block",
                      max_queue=10_000)
    payloads = [{"username": f"user{i % 50}", "msg": "hello there", "meta": {}, "time": i}
                for i in range(EVENTS)]
    with Timer() as t:
        for i, payload in enumerate(payloads):
            await bus.publish(parse_event("chatMsg", payload, room_id="r", channel="c", seq=i))
            if i % 64 == 0:
                await asyncio.sleep(0)  # a socket read loop yields like this
        await bus.drain(120)
    await bus.close()
    assert handled == EVENTS * subscribers, "the bus lost events"
    return EVENTS / t.seconds


async def main() -> None:
    print(f"{EVENTS:,} chat events, parse + publish + deliver to no-op subscribers")
    for n in (1, 8):
        report(f"bus dispatch, {n} subscriber(s)", await dispatch(n), "events/s",
               "no network, no database")
    report("RSS after run", rss_mib(), "MiB")


if __name__ == "__main__":
    run(main())
