"""End-to-end ingest: fake CyTube server → daz (the real App, every default plugin on) →
``daz_core_events`` in a fresh PostgreSQL database.

The server floods the bot's socket with chat (50 speakers) as fast as the socket takes it; the
figure is chat frames sent ÷ time from the first frame until the last row is committed, and
lost events = frames sent − their rows in ``daz_core_events`` (must be 0). The flood is long
enough (150,000 frames) to outlast the event log's burst allowance (20,000 events in memory),
so the figure is the sustained rate, with the room reading its socket only as fast as the
database takes the events, not a burst absorbed in memory. Measured against,
in the same run and on the same machine: a bare python-socketio client that only counts
frames from the same server (the socket layer's ceiling) and a bare COPY of the same number of
rows into the same ``daz_core_events`` table (the database's ceiling for one writer).

The fake server runs in a process of its own (``bench/flood_server.py``), so the bot and the
bare client each have this process's core to themselves, as against a real CyTube server; the
event loop here is uvloop when it is installed (the ``fast`` extra, which ``daz run`` uses too),
and the output says which loop each side ran.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
import socketio

from bench.common import (
    Timer,
    bare_copy_rate,
    postgres_cpu_seconds,
    report,
    rss_mib,
    run,
    scratch_database,
    sized,
    test_dsn,
    wait_joined,
)
from bench.flood_server import FloodServer, loop_name
from daz.app import App
from daz.plugins.sql import eventrows
from tests.e2e.harness import BOT_NAME, BOT_PASSWORD, bot_config

EVENTS = sized(150_000, 10_000)
WINDOW = 256  # frames the server may have queued for one socket
CHANNEL = "benchchan"
FIRST_TIME = 1_800_000_000_000  # CyTube ms times of the flood; unique, so no dedup applies


async def flood(server: FloodServer, sid: str, count: int) -> dict:
    """Chat from 50 speakers, CyTube times ``FIRST_TIME + i``, as fast as the socket takes it;
    returns the server's answer (its ``cpu``: share of one core the server process used)."""
    return await server.call("flood", sid=sid, count=count, window=WINDOW, first_time=FIRST_TIME,
                      text="message number {i}, nothing to see here")


async def bare_client_rate(server: FloodServer) -> dict:
    done = asyncio.Event()
    received = 0

    def on_chat(payload) -> None:
        nonlocal received
        received += 1
        if received == EVENTS:
            done.set()

    client = socketio.AsyncClient(reconnection=False)
    client.on("chatMsg", on_chat)
    await client.connect(server.base_url, transports=["websocket"])
    try:
        cpu = time.process_time()
        with Timer() as t:
            sent = await flood(server, client.get_sid("/"), EVENTS)
            await asyncio.wait_for(done.wait(), 600)
        cpu = time.process_time() - cpu
    finally:
        await client.disconnect()
    return {"rate": EVENTS / t.seconds, "server_cpu": sent["cpu"], "cpu": cpu / t.seconds}


def bare_copy_records() -> list[tuple]:
    now = eventrows.stamp(time.time())
    return [(uuid.uuid4(), "cytube.event.chatMsg", CHANNEL, now, f"user{i % 50}",
             f"message number {i}, nothing to see here", FIRST_TIME + i, '{"msg": "x"}')
            for i in range(EVENTS)]


async def flood_rows(conn: asyncpg.Connection) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM daz_core_events WHERE channel_name = $1"
        " AND event_type = 'cytube.event.chatMsg' AND message_time >= $2",
        CHANNEL, FIRST_TIME)


async def wait_for_rows(conn: asyncpg.Connection, events: int = EVENTS,
                        stall_seconds: float = 10.0) -> int:
    """Until every flood row is committed, or the count has not moved for ``stall_seconds``."""
    stored, moved = 0, time.monotonic()
    while True:
        now_stored = await flood_rows(conn)
        if now_stored != stored:
            stored, moved = now_stored, time.monotonic()
        if stored >= events or time.monotonic() - moved > stall_seconds:
            return stored
        await asyncio.sleep(0.05)


async def through_daz(server: FloodServer, dsn: str, *, events: int = EVENTS,
                      nats_url: str = "") -> dict:
    """``nats_url``: with the Kryten bridge on, publishing every event there."""
    await server.call("account", name=BOT_NAME, password=BOT_PASSWORD)
    await server.call("rank", channel=CHANNEL, name=BOT_NAME, rank=2)
    config = bot_config(server.base_url, dsn, channel=CHANNEL)
    config.core.nats.url = nats_url
    with tempfile.TemporaryDirectory() as data_dir:
        app = App(config, data_dir=Path(data_dir), web=False)
        await app.start()
        try:
            room = next(iter(app.rooms))
            await wait_joined(room)
            plugins = sorted(app.plugins.loaded)
            sid = (await server.call("sid", channel=CHANNEL, name=BOT_NAME))["sid"]
            eventlog = app.plugins.get("sql").eventlog
            conn = await asyncpg.connect(dsn)
            peak_inbox = peak_waiting = 0

            async def watch_inbox() -> None:  # frames received but not yet on the bus
                nonlocal peak_inbox, peak_waiting
                while True:
                    peak_inbox = max(peak_inbox, len(room.intake.inbox))
                    peak_waiting = max(peak_waiting, eventlog.status()["in_memory"])
                    await asyncio.sleep(0.01)

            watcher = asyncio.create_task(watch_inbox())
            try:
                cpu, pg_cpu = time.process_time(), postgres_cpu_seconds()
                with Timer() as t:
                    sent = await flood(server, sid, events)
                    stored = await wait_for_rows(conn, events)
                cpu = time.process_time() - cpu
                pg_after = postgres_cpu_seconds()
                pg_cpu = None if pg_cpu is None or pg_after is None else pg_after - pg_cpu
            finally:
                watcher.cancel()
                await conn.close()
            status = eventlog.status()
            rss = rss_mib()
            bridge = app.bridge.status() if app.bridge is not None else None
        finally:
            await app.stop()
    return {"rate": events / t.seconds, "lost": events - stored, "plugins": plugins,
            "rss": rss, "status": status, "peak_inbox": peak_inbox, "peak_waiting": peak_waiting,
            "server_cpu": sent["cpu"], "cpu": cpu / t.seconds, "seconds": t.seconds,
            "pg_cpu": pg_cpu, "bridge": bridge}


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    dsn = await scratch_database(test_dsn(), "daz_bench_e2e_ingest")
    server = FloodServer()
    await server.start()
    try:
        bare = await bare_client_rate(server)
        socket_rate = bare["rate"]
        result = await through_daz(server, dsn)  # migrates the fresh database at start
        copy_rate = await bare_copy_rate(dsn, bare_copy_records())
    finally:
        await server.stop()
    print(f"  {EVENTS:,} chatMsg frames, 50 speakers; plugins on: {', '.join(result['plugins'])}")
    print(f"  fake server: its own process, {server.loop}; bot and bare client: this process, "
          f"{loop_name()}")
    report("bare python-socketio client receive", socket_rate, "events/s",
           "socket layer ceiling, same server, same run")
    report("  its CPU, share of one core (this process)", bare["cpu"] * 100, "%",
           f"fake server process: {bare['server_cpu']:.0%} of a core while it sent")
    report("bare COPY into daz_core_events", copy_rate, "rows/s",
           "database ceiling, one COPY, same table, same run")
    report("fake CyTube → daz (all plugins) → daz_core_events", result["rate"], "events/s",
           f"{result['rate'] / socket_rate:.0%} of the bare client, "
           f"{result['rate'] / copy_rate:.0%} of bare COPY")
    report("  daz's CPU, share of one core (this process)", result["cpu"] * 100, "%",
           f"fake server process: {result['server_cpu']:.0%} of a core while it sent")
    if result["pg_cpu"] is not None:
        report("  PostgreSQL's CPU per event", result["pg_cpu"] / EVENTS * 1e6, "µs",
               f"{result['pg_cpu'] / result['seconds']:.0%} of a core, all its processes")
    report("lost events (rows vs frames sent)", result["lost"], "events", "must be 0")
    status = result["status"]
    report("events spilled to disk", status["spilled"], "events",
           "0 expected: the database was writing all along")
    report("batches copied straight in / staged", status["direct_batches"], "batches",
           f"{status['staged_batches']} staged, {status['direct_refused']} direct refused")
    report("peak event log memory queue", result["peak_waiting"], "events",
           "burst allowance 20,000; then back-pressure to the socket")
    report("peak room inbox (received, not yet on the bus)", result["peak_inbox"], "events",
           "the socket is not read while 1,000 wait")
    report("RSS of the process after the flood", result["rss"], "MiB",
           "bot + bare client (the server has its own process)")


if __name__ == "__main__":
    run(main())
