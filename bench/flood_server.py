"""The fake CyTube server in a process of its own, flooding a socket with chat on command.

The socket benchmarks measure daz and a bare python-socketio client against this process, so
neither shares a core or an event loop with the server (as against a real CyTube server).

Run as a script it prints ``READY <base url> <loop>`` and then reads one JSON command per line
on stdin, answering one JSON line on stdout:

    {"op": "account", "name": ..., "password": ...}           -> {"ok": true}
    {"op": "rank", "channel": ..., "name": ..., "rank": 2}     -> {"ok": true}
    {"op": "sid", "channel": ..., "name": ...}                 -> {"sid": ... or null}
    {"op": "flood", "sid": ..., "count": n, "window": 256, "first_time": ms,
     "text": "... {i} ...", "stamp": false}
        -> {"sent": n, "seconds": s, "cpu": share of one core the server process used}

A flood sends ``chatMsg`` frames from 50 speakers with CyTube times ``first_time + i``; with
``stamp`` each payload carries ``"t": time.perf_counter()`` at hand-off (CLOCK_MONOTONIC, the
same clock in every process of the machine), for latency. At most ``window`` frames wait in the
server's queue for that socket. In the benchmark process, :class:`FloodServer` drives it.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def loop_name() -> str:
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


class FloodServer:
    """Client side: starts ``bench/flood_server.py`` and sends it commands."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""
        self.loop = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).resolve()), cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 20)
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        parts = line.decode().split()
        if len(parts) != 3 or parts[0] != "READY":
            raise RuntimeError(f"flood server did not start: {line!r}")
        self.base_url, self.loop = parts[1], parts[2]

    async def call(self, op: str, timeout: float = 600, **args) -> dict:
        assert self.proc is not None
        self.proc.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("flood server exited")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"flood server: {reply['error']}")
        return reply

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.proc = None


# ---------------------------------------------------------------------- the server process

async def _flood(server, sid: str, count: int, window: int, first_time: int, text: str,
                 stamp: bool) -> dict:
    conn = server.connections[sid]
    outbox = conn.outbox
    # Woken by the socket's writer as each frame leaves, so a full window is waited out
    # without spinning (the server's CPU share then counts work only).
    space = asyncio.Event()

    def frame_sent(task_done=outbox.task_done) -> None:
        task_done()
        space.set()

    outbox.task_done = frame_sent
    perf = time.perf_counter
    started, cpu = perf(), time.process_time()
    try:
        for i in range(count):
            while outbox.qsize() >= window:
                space.clear()
                await space.wait()
            payload = {"username": f"user{i % 50}", "msg": text.format(i=i), "meta": {},
                       "time": first_time + i}
            if stamp:
                payload["t"] = perf()
            server.send(sid, "chatMsg", payload)
        await outbox.join()  # every frame handed to the socket
    finally:
        del outbox.task_done
    seconds = perf() - started
    return {"sent": count, "seconds": seconds, "cpu": (time.process_time() - cpu) / seconds}


async def _handle(server, cmd: dict) -> dict:
    op = cmd["op"]
    if op == "account":
        server.add_account(cmd["name"], cmd["password"])
        return {"ok": True}
    if op == "rank":
        server.set_channel_rank(cmd["channel"], cmd["name"], cmd["rank"])
        return {"ok": True}
    if op == "sid":
        found = [m.sid for m in server.channel(cmd["channel"]).members.values()
                 if m.name == cmd["name"]]
        return {"sid": found[0] if found else None}
    if op == "flood":
        return await _flood(server, cmd["sid"], int(cmd["count"]), int(cmd.get("window", 256)),
                            int(cmd.get("first_time", 1_800_000_000_000)),
                            cmd.get("text", "message number {i}, nothing to see here"),
                            bool(cmd.get("stamp", False)))
    return {"error": f"unknown op {op!r}"}


async def _serve() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from daz.sandbox.fake_cytube import FakeCytubeServer

    server = FakeCytubeServer()
    await server.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(f"READY {server.base_url} {loop_name()}", flush=True)
    try:
        while line := await reader.readline():
            try:
                reply = await _handle(server, json.loads(line))
            except Exception as exc:  # reported to the benchmark, which raises
                reply = {"error": repr(exc)}
            print(json.dumps(reply), flush=True)
    finally:
        await server.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve())
    else:
        uvloop.run(_serve())
