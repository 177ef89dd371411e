"""``!ping`` round trip inside the process, idle and under 2,000 chat events/s of background load.

The path as the bot runs it, minus the socket: a ``chatMsg`` frame parsed into a typed event,
published on the bus (the room's ordered lane), the real plugin manager delivering it to
eventfilter (parse, rank/cooldown check, command task) and basics answering ``pong`` to the
room. The clock stops when the reply is handed to the room (what the outbox would send). Every
plugin that is on by default is loaded, as ``daz run`` loads them (``available_plugins()`` and
each plugin's ``enabled_by_default``): the sql event log, the trackers, gallery, greeter, tell
and the rest, writing to a real PostgreSQL on their normal timers. The background load goes
through the same bus and room lane. Target: p99 < 10 ms under 2,000 chat events/s.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import aiohttp

from bench.common import (
    percentile,
    report,
    rss_mib,
    run,
    scratch_database,
    sized,
    test_dsn,
)
from daz.bus import Bus
from daz.clock import Clock
from daz.config import load_config
from daz.cytube.events import parse_event
from daz.cytube.rooms import Rooms
from daz.db.migrate import migrate
from daz.db.pool import Database
from daz.metrics import Metrics
from daz.plugins.manager import PluginManager, available_plugins
from tests.fakes.room import RecordingRoom

PINGS = sized(400, 60)
GAP = 0.02  # seconds between one pong and the next ping
LOAD_RATE = 2000  # background chat events per second
TICK = 0.01  # the load is published in small bursts, as socket reads deliver frames


class TimedRoom(RecordingRoom):
    """Notes when a reply is handed to the room; the benchmark waits on it."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.replied = asyncio.Event()
        self.replied_at = 0.0

    async def say(self, text: str, *, user_input: bool = True) -> None:
        if text == "pong":
            self.replied_at = time.perf_counter()
            self.replied.set()
        else:
            self.said.append(text)


_seq = itertools.count(1)


def chat(room, username: str, msg: str):
    payload = {"username": username, "msg": msg, "meta": {}, "time": int(time.time() * 1000)}
    return parse_event("chatMsg", payload, room_id=room.id, channel=room.channel,
                       seq=next(_seq))


async def background(bus: Bus, room, stop: asyncio.Event, sent: list[int]) -> None:
    """LOAD_RATE chat lines per second from 50 people, in bursts every TICK."""
    per_tick = int(LOAD_RATE * TICK)
    loop = asyncio.get_running_loop()
    next_tick = loop.time()
    n = 0
    while not stop.is_set():
        for _ in range(per_tick):
            await bus.publish(chat(room, f"viewer{n % 50}", f"lol that scene {n}"))
            n += 1
        sent[0] = n
        next_tick += TICK
        await asyncio.sleep(max(0.0, next_tick - loop.time()))


async def pings(bus: Bus, room: TimedRoom, count: int) -> list[float]:
    out = []
    for _i in range(count):
        room.replied.clear()
        event = chat(room, f"pinger{next(_seq)}", "!ping")  # a new user: no cooldown
        started = time.perf_counter()
        await bus.publish(event)
        await asyncio.wait_for(room.replied.wait(), 10)
        out.append((room.replied_at - started) * 1000)
        await asyncio.sleep(GAP)
    return out


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    dsn = await scratch_database(test_dsn(), "daz_bench_ping")
    db = Database(dsn, max_size=6)
    await db.start()
    await migrate(db.pool)
    config = load_config(None, env={}, overrides={"channel": "benchchan"})
    room = TimedRoom(room_id="benchchan", channel="benchchan", bot_name="dazbot")
    metrics = Metrics()
    bus = Bus(metrics=metrics)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    data_dir = tempfile.TemporaryDirectory()
    manager = PluginManager(config=config, bus=bus, rooms=Rooms([room]), db=db, http=http,
                            clock=Clock(), metrics=metrics, data_dir=Path(data_dir.name))
    await manager.start(manager.select(available_plugins()))  # the defaults, as `daz run`
    running = [name for name, s in manager.status().items() if s["running"]]
    failed = {name: s["failed"] for name, s in manager.status().items() if not s["running"]}
    print(f"  plugins loaded ({len(running)}): {', '.join(running)}"
          + (f"; FAILED to start: {failed}" if failed else ""))
    print(f"  PostgreSQL: {test_dsn().rsplit('@', 1)[-1]}")

    await pings(bus, room, 50)  # warm-up: imports, prepared statements, caches
    idle = await pings(bus, room, PINGS)
    report("!ping round trip, idle, p50", percentile(idle, 50), "ms", "target p99 < 10")
    report("!ping round trip, idle, p99", percentile(idle, 99), "ms", "target < 10")

    stop = asyncio.Event()
    sent = [0]
    load = asyncio.create_task(background(bus, room, stop, sent))
    await asyncio.sleep(1.0)  # the load is running before we measure
    started, sent_before = time.perf_counter(), sent[0]
    loaded = await pings(bus, room, PINGS)
    rate = (sent[0] - sent_before) / (time.perf_counter() - started)
    stop.set()
    await load
    await bus.drain(60)
    report("background chat load carried", rate, "events/s", f"target {LOAD_RATE:,}")
    report("!ping round trip, under load, p50", percentile(loaded, 50), "ms", "target p99 < 10")
    report("!ping round trip, under load, p99", percentile(loaded, 99), "ms", "target < 10")
    report("!ping round trip, under load, max", max(loaded), "ms")
    status = manager.status()
    errors = sum(s["errors"] for s in status.values())
    dropped = sum(v for v in (metrics.registry.get_sample_value(
        "daz_events_dropped_total", {"subscriber": name}) for name in status) if v)
    handled = ", ".join(f"{name} {s['handled']:,}" for name, s in status.items())
    print(f"  events handled: {handled}")
    print(f"  handler errors: {errors}; events dropped by slow subscribers: {dropped:.0f}")
    report("RSS after run", rss_mib(), "MiB")
    await manager.stop()  # the sql plugin's writer flushes what it holds
    logged = await db.pool.fetchval("SELECT count(*) FROM daz_core_events")
    published = sent[0] + 50 + 2 * PINGS  # background lines, warm-up and measured pings
    print(f"  rows in daz_core_events after stop: {logged:,} (chat lines published: "
          f"{published:,})")
    await bus.close()
    await http.close()
    await db.close()
    data_dir.cleanup()


if __name__ == "__main__":
    run(main())
