"""Many rooms in one process (issue 13, item 5): one ``daz run`` holding ROOMS rooms.

The fake CyTube server runs in this process with its connect limit lifted (and daz's pacing to
it off: the pacing is what a real server needs, at 1 connect per 10 s per address). Every room
gets light background traffic (a line every ``BACKGROUND_EVERY`` seconds); a few users spread
over the rooms send ``!ping`` one after another for ``WINDOW`` seconds, while /metrics is
scraped and the stats plugin writes every 10 s, the two things that once froze the loop.
Figures: time until every room is joined, RSS, the process's CPU share, and the ``!ping``
round trip (chat line sent → the bot's ``pong`` at the server) p50/p99/max, also per 10 s
slice, since the goal is p99 < 50 ms at every moment, not on average.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import aiohttp

from bench.common import percentile, report, run, scratch_database, test_dsn
from bench.daz_process import BOT_NAME, DazProcess, free_port, prepare_server, write_config
from daz.sandbox.fake_cytube import FakeCytubeServer

ROOMS = int(os.environ.get("DAZ_BENCH_ROOMS", "1000"))
PINGERS = 20
WINDOW = 60.0
BACKGROUND_EVERY = 10.0
SLICE = 10.0
GAP = 0.35  # between pings: each pinger's room is asked every 7 s (!ping's cooldown is 5 s)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def background(server: FakeCytubeServer, channels: list[str], stop: asyncio.Event):
    """One line per room every BACKGROUND_EVERY seconds, spread evenly."""
    gap = BACKGROUND_EVERY / len(channels)
    n = 0
    while not stop.is_set():
        await server.whisper(channels[n % len(channels)], f"background line {n}")
        n += 1
        await asyncio.sleep(gap)


async def scrape(port: int, stop: asyncio.Event, took: list[float],
                 spans: list[tuple[float, float]], wall0: float) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            await asyncio.sleep(15)
            started = time.perf_counter()
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                await response.read()
            took.append(time.perf_counter() - started)
            spans.append((started - wall0, time.perf_counter() - wall0))


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    dsn = await scratch_database(test_dsn(), "daz_bench_many_rooms")
    channels = [f"many{i:04d}" for i in range(ROOMS)]
    server = FakeCytubeServer(connect_burst=100_000, connect_refill_per_s=10_000)
    await server.start()
    prepare_server(server, channels)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port = free_port()
        config = write_config(work / "config.json", server.base_url, dsn, channels, port,
                              core={"join_pacing": {"interval_seconds": 0},
                                    "database": {"dsn": dsn, "max_connections": 20}},
                              plugins={"stats": {"interval_seconds": 10}})
        daz = DazProcess(config, work / "data", port, work / "daz.log")
        daz.start()
        try:
            joined = await daz.wait_healthy(timeout=900)
            pingers = [await server.user(f"pinger{i}", channel=channels[i * ROOMS // PINGERS])
                       for i in range(PINGERS)]
            stop = asyncio.Event()
            scrapes: list[float] = []
            spans: list[tuple[float, float]] = []  # scrapes, in seconds since wall0
            cpu0, wall0 = cpu_seconds(daz.proc.pid), time.monotonic()
            side = [asyncio.create_task(background(server, channels, stop)),
                    asyncio.create_task(scrape(port, stop, scrapes, spans,
                                               time.perf_counter()))]
            samples: list[tuple[float, float]] = []  # (when, round trip)
            n = unanswered = 0
            perf0 = time.perf_counter()
            while time.monotonic() - wall0 < WINDOW:
                user = pingers[n % PINGERS]
                channel = user.channel
                before = server.chat_from(channel, BOT_NAME).count("pong")
                sent = time.perf_counter()
                await user.chat("!ping")
                while server.chat_from(channel, BOT_NAME).count("pong") <= before:
                    if time.perf_counter() - sent > 10:
                        unanswered += 1
                        break
                    await asyncio.sleep(0.001)
                samples.append((sent - perf0, time.perf_counter() - sent))
                n += 1
                await asyncio.sleep(GAP)
            cpu = (cpu_seconds(daz.proc.pid) - cpu0) / (time.monotonic() - wall0)
            rss = daz.rss_mib()
            stop.set()
            await asyncio.gather(*side, return_exceptions=True)
            health = await daz.health()
        finally:
            await daz.stop()
            await server.stop()
    times = [rt for _, rt in samples]
    during = [rt for when, rt in samples
              if any(a - 0.05 <= when <= b for a, b in spans)]
    outside = [rt for when, rt in samples
               if not any(a - 0.05 <= when <= b for a, b in spans)]
    slices = {}
    for when, rt in samples:
        slices.setdefault(int(when // SLICE), []).append(rt)
    worst_slice = max(percentile(v, 99) for v in slices.values())
    joined_rooms = sum(1 for r in (health.get("rooms") or {}).values() if r.get("joined"))
    print(f"  {ROOMS} rooms, one daz process; {PINGERS} pingers, a background line per room "
          f"every {BACKGROUND_EVERY:.0f} s, /metrics every 15 s, stats writes every 10 s")
    report("time until every room joined (/health 200)", joined, "s", f"{ROOMS} rooms")
    report("rooms joined at the end", joined_rooms, "rooms", f"of {ROOMS}")
    report("RSS of the daz process", rss, "MiB", "target < 300 MiB")
    report("CPU of the daz process, share of one core", cpu * 100, "%", "light load")
    report("!ping round trip p50", percentile(times, 50) * 1000, "ms", f"{len(times)} pings")
    report("!ping round trip p99", percentile(times, 99) * 1000, "ms", "target < 50 ms")
    report("!ping round trip p99, worst 10 s slice", worst_slice * 1000, "ms",
           "target < 50 ms at every moment")
    report("!ping round trip max", max(times) * 1000, "ms", "")
    report("!ping p99 while /metrics renders", percentile(during, 99) * 1000, "ms",
           f"{len(during)} pings; outside: p99 {percentile(outside, 99) * 1000:.0f} ms, "
           f"max {max(outside) * 1000:.0f} ms")
    report("!ping unanswered within 10 s", unanswered, "pings", "must be 0")
    report("/metrics scrape, slowest", max(scrapes) * 1000 if scrapes else float("nan"), "ms",
           f"{len(scrapes)} scrapes; rendered off the event loop")


if __name__ == "__main__":
    run(main())
