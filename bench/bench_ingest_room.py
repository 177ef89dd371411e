"""Ingest through one Room: the fake CyTube server floods a socket with chat as fast as it can.

Figures: events/s through the whole room path (socket.io → parse → RoomState → marking → bus →
a no-op subscriber), per-event latency from the server handing the frame to its socket writer
until the subscriber runs (p50/p99), RSS; and, in the same run against the same server, a bare
python-socketio client that only counts frames: the ceiling of the socket layer on this machine.
The fake server runs in a process of its own (``bench/flood_server.py``), so its cost is not in
these figures; the latency stamps are ``time.perf_counter()`` (CLOCK_MONOTONIC, one clock for
every process of the machine). The event loop here is uvloop when it is installed (the ``fast``
extra, which ``daz run`` uses too); the output says which loop each side ran.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import socketio

from bench.common import (
    report,
    rss_mib,
    run,
    sized,
    summary,
    wait_joined,
)
from bench.flood_server import FloodServer, loop_name
from daz.bus import Bus
from daz.config import RoomConfig
from daz.cytube.room import Room

EVENTS = sized(30_000, 3_000)
WINDOW = 256  # frames the server may have queued for the socket at once
PACED = sized(2_000, 200)  # frames sent one at a time, for the latency of an idle room


async def flood(server: FloodServer, sid: str, count: int, window: int = WINDOW) -> None:
    await server.call("flood", sid=sid, count=count, window=window, text="hello there, bot",
                      stamp=True)


async def bare_client(server: FloodServer) -> float:
    done = asyncio.Event()
    received = 0
    first = last = 0.0

    client = socketio.AsyncClient(reconnection=False)

    def on_chat(payload) -> None:
        nonlocal received, first, last
        received += 1
        if received == 1:
            first = time.perf_counter()
        last = time.perf_counter()
        if received == EVENTS:
            done.set()

    client.on("chatMsg", on_chat)
    await client.connect(server.base_url, transports=["websocket"])
    sid = client.get_sid("/")
    started = time.perf_counter()
    producer = asyncio.create_task(flood(server, sid, EVENTS))
    await asyncio.wait_for(done.wait(), 300)
    await producer
    elapsed = last - started
    await client.disconnect()
    return EVENTS / elapsed


async def room_ingest(server: FloodServer) -> dict:
    bus = Bus()
    done = asyncio.Event()
    latencies: list[float] = []
    handled = 0
    wanted = EVENTS
    last_frame = 0.0

    async def noop(event) -> None:
        nonlocal handled
        handled += 1
        sent = event.payload.get("t") if isinstance(event.payload, dict) else None
        if sent is not None:
            latencies.append(time.perf_counter() - sent)
        if handled == wanted:
            done.set()

    bus.subscribe("cytube.event.chatMsg", noop, owner="noop", overflow="block",
                  max_queue=10_000)
    config = RoomConfig(channel="benchchan", username="dazbot", password="pw", enabled=True,
                        server_url=server.base_url)
    room = Room(config, bus)
    handle_frame = room.intake.on_frame

    def timed_frame(name, payload) -> None:  # when the room had the frame, before the bus
        nonlocal last_frame
        handle_frame(name, payload)
        last_frame = time.perf_counter()

    room.intake.on_frame = timed_frame  # the lifecycle hands this to each new socket
    await room.start()
    await wait_joined(room, 10)
    frames_before = room.intake.seq
    sid = room.lifecycle.conn.sio.get_sid("/")
    started = time.perf_counter()
    producer = asyncio.create_task(flood(server, sid, EVENTS))
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - started
    await producer
    received = (room.intake.seq - frames_before) / (last_frame - started)
    loaded = summary(latencies)
    # Idle: one frame in flight at a time.
    latencies.clear()
    handled, wanted = 0, PACED
    done.clear()
    await flood(server, sid, PACED, window=1)
    await asyncio.wait_for(done.wait(), 60)
    idle = summary(latencies)
    await room.stop()
    await bus.close()
    return {"rate": EVENTS / elapsed, "received": received,
            "p50": loaded["p50"] * 1000, "p99": loaded["p99"] * 1000,
            "idle_p50": idle["p50"] * 1000, "idle_p99": idle["p99"] * 1000}


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    server = FloodServer()
    await server.start()
    await server.call("account", name="dazbot", password="pw")
    try:
        print(f"{EVENTS:,} chatMsg frames from the fake CyTube server to one socket; server: its "
              f"own process, {server.loop}; client and bus: this process, {loop_name()}")
        reference = await bare_client(server)
        result = await room_ingest(server)
    finally:
        await server.stop()
    report("bare python-socketio client receive", reference, "events/s",
           "socket layer ceiling, same run")
    report("Room frames received (parsed, state applied)", result["received"], "events/s",
           f"{result['received'] / reference:.0%} of the bare client")
    report("Room → bus → no-op subscriber", result["rate"], "events/s",
           f"{result['rate'] / reference:.0%} of the bare client")
    report("latency under flood p50 (hand-off → handler)", result["p50"], "ms",
           f"includes up to {WINDOW} frames queued at the server")
    report("latency under flood p99", result["p99"], "ms")
    report("latency idle p50 (one frame in flight)", result["idle_p50"], "ms")
    report("latency idle p99 (one frame in flight)", result["idle_p99"], "ms")
    report("RSS after run", rss_mib(), "MiB")


if __name__ == "__main__":
    run(main())
