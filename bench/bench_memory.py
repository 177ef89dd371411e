"""Memory: RSS of daz idle with 1 and with 20 rooms, and through 1,000,000 events.

Idle: a real ``daz run`` process (every default plugin, web server on) joined to 1 or 20
channels on the fake CyTube server, RSS read from /proc after it has been idle for a few
seconds. The fake server runs in this process, so the figure is daz's alone.

1,000,000 events: too slow through the socket (the whole path is CPU-bound, see
bench_e2e_ingest), so the frames are fed in this process to the room's frame intake,
``Room.intake.on_frame`` (the very call the socket reader makes: parse → RoomState → marks →
bus → every plugin → PostgreSQL), keeping at most WINDOW frames waiting. The room is really
joined to the fake server first. This feed outruns the database writer, so the sql plugin sends
what its memory queue cannot hold to its spill file and replays it; the events/s figure is
until the last row is committed. RSS of this process (bot + idle fake server) is sampled every
100,000 events; growth after the first 100,000 is what unbounded state would show.
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

from bench.common import QUICK, report, rss_mib, run, scratch_database, sized, test_dsn, wait_joined
from bench.daz_process import DazProcess, free_port, prepare_server, write_config
from daz.app import App
from daz.config import load_config
from daz.sandbox.fake_cytube import FakeCytubeServer

EVENTS = int(os.environ.get("DAZ_BENCH_MEMORY_EVENTS", sized(1_000_000, 30_000)))
SAMPLE_EVERY = sized(100_000, 10_000)
WINDOW = 1000
IDLE_SECONDS = sized(5, 1)
CHANNEL = "memchan"
FIRST_TIME = 1_800_000_000_000


async def idle_rss(server: FakeCytubeServer, dsn: str, channels: list[str],
                   work: Path) -> tuple[float, float]:
    port = free_port()
    config = write_config(work / f"config-{len(channels)}.json", server.base_url, dsn,
                          channels, port)
    daz = DazProcess(config, work / f"data-{len(channels)}", port, work / "daz.log")
    daz.start()
    try:
        await daz.wait_healthy()
        await asyncio.sleep(IDLE_SECONDS)
        return daz.rss_mib(), daz.rss_mib("VmHWM")
    finally:
        await daz.stop()


def frame(i: int) -> tuple[str, dict]:
    if i % 20 == 19:
        return "mediaUpdate", {"currentTime": (i % 3600) / 10, "paused": False}
    return "chatMsg", {"username": f"user{i % 200}", "msg": f"message {i}, with some words",
                       "meta": {}, "time": FIRST_TIME + i}


async def million(server: FakeCytubeServer, dsn: str, work: Path) -> dict:
    prepare_server(server, [CHANNEL])
    config = load_config(write_config(work / "config-inproc.json", server.base_url, dsn,
                                      [CHANNEL], 0), env={})
    app = App(config, data_dir=work / "data-inproc")
    await app.start()
    samples: list[tuple[int, float, float]] = []
    try:
        room = next(iter(app.rooms))
        await wait_joined(room)
        await asyncio.sleep(1)
        samples.append((0, rss_mib(), 0.0))
        inbox = room.intake.inbox
        started = time.perf_counter()
        for i in range(EVENTS):
            while len(inbox) >= WINDOW:
                await asyncio.sleep(0)
            room.intake.on_frame(*frame(i))
            if (i + 1) % SAMPLE_EVERY == 0:
                samples.append((i + 1, rss_mib(), time.perf_counter() - started))
                print(f"  {i + 1:>9,} events  RSS {samples[-1][1]:7.1f} MiB  "
                      f"{(i + 1) / samples[-1][2]:,.0f} events/s", flush=True)
        await app.bus.drain(300)
        sql = app.plugins.get("sql")
        await sql.eventlog.wait_idle(300)
        elapsed = time.perf_counter() - started
        stored = await app.db.fetchval(
            "SELECT count(*) FROM daz_core_events WHERE channel_name = $1"
            " AND message_time >= $2", CHANNEL, FIRST_TIME)
        sent_chat = sum(1 for i in range(EVENTS) if i % 20 != 19)
        return {"samples": samples, "rate": EVENTS / elapsed, "lost_chat": sent_chat - stored,
                "final": rss_mib(), "spilled": sql.eventlog.status()["spilled"]}
    finally:
        await app.stop()


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    dsn = await scratch_database(test_dsn(), "daz_bench_memory")
    channels20 = [f"memchan{i:02d}" for i in range(20)]
    server = FakeCytubeServer(connect_burst=1000, connect_refill_per_s=1000)
    await server.start()
    prepare_server(server, channels20 + [CHANNEL])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            one, one_peak = await idle_rss(server, dsn, [CHANNEL], work)
            print(f"  daz run idle: 1 room {one:.1f} MiB (peak {one_peak:.1f})")
            twenty = None
            if not QUICK:  # one daz process less in a quick run
                twenty, twenty_peak = await idle_rss(server, dsn, channels20, work)
                print(f"  daz run idle: 20 rooms {twenty:.1f} MiB (peak {twenty_peak:.1f})")
            result = await million(server, dsn, work)
    finally:
        await server.stop()
    report("RSS idle, 1 room (daz run)", one, "MiB", "every default plugin, web on")
    if twenty is not None:
        report("RSS idle, 20 rooms (daz run)", twenty, "MiB",
               f"{(twenty - one) / 19:.2f} MiB per extra room")
    samples = result["samples"]
    base = samples[0][1]
    first = samples[1][1] if len(samples) > 1 else base
    report(f"RSS before the {EVENTS:,} events (in-process)", base, "MiB",
           "bot + idle fake server in one process")
    report(f"RSS after {samples[1][0] if len(samples) > 1 else 0:,} events", first, "MiB",
           "queues and caches filled")
    report(f"RSS after {EVENTS:,} events", samples[-1][1], "MiB",
           f"growth after the first {SAMPLE_EVERY:,}: {samples[-1][1] - first:+.1f} MiB")
    report("events/s through intake → bus → all plugins → DB", result["rate"], "events/s",
           "in-process, no socket")
    report("lost chat events (rows vs sent)", result["lost_chat"], "events", "must be 0")
    report("events spilled to disk by the event log", result["spilled"], "events",
           "the database was writing all along: back-pressure, not the spill file")


if __name__ == "__main__":
    run(main())
