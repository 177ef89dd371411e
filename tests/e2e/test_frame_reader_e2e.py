"""The lean websocket reader (daz/cytube/frame_reader.py) against a real python-socketio server:
frames reach the handler inline and in order, a handler that raises does not stop the reading,
and a disconnect the server sends (a socket.io DISCONNECT packet, which makes socket.io close
engine.io from inside the reader) ends the session instead of hanging it."""
from __future__ import annotations

import asyncio

import socketio
from aiohttp import web

from daz.cytube.connection import Connection
from daz.cytube.frame_reader import InlineFrameClient
from tests.e2e.harness import wait_until


async def start_server(on_ready):
    sio = socketio.AsyncServer(async_mode="aiohttp", logger=False, engineio_logger=False)

    @sio.on("ready")
    async def ready(sid, *_):
        await on_ready(sio, sid)

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_frames_in_order_a_raising_handler_survived_a_server_disconnect_ends_it():
    async def flood_then_disconnect(sio, sid):
        for i in range(500):
            await sio.emit("chatMsg", {"msg": f"line {i}"}, to=sid)
        await sio.disconnect(sid)

    runner, url = await start_server(flood_then_disconnect)
    seen: list[str] = []

    def on_frame(event, payload):
        if payload["msg"] == "line 7":
            raise RuntimeError("a handler bug")  # logged by Connection, the reading goes on
        seen.append(payload["msg"])

    conn = Connection(url, on_frame, name="reader-test")
    try:
        await conn.open()
        assert isinstance(conn.sio.eio, InlineFrameClient)
        await conn.emit("ready")
        await asyncio.wait_for(conn.closed.wait(), 10)
        assert seen == [f"line {i}" for i in range(500) if i != 7]
        assert "disconnected" in conn.close_reason
        await wait_until(lambda: conn.sio.eio.state == "disconnected", 5, "engine.io to stop")
        assert conn.bad_packets == 0  # the DISCONNECT packet was handled, not choked on
    finally:
        await conn.close()
        await runner.cleanup()


async def test_a_client_side_close_while_frames_stream_in_ends_cleanly():
    async def stream(sio, sid):
        for i in range(100_000):
            await sio.emit("chatMsg", {"msg": f"line {i}"}, to=sid)
            if i % 100 == 0:
                await asyncio.sleep(0)

    runner, url = await start_server(stream)
    seen: list[str] = []
    conn = Connection(url, lambda event, payload: seen.append(payload["msg"]), name="reader-test")
    try:
        await conn.open()
        await conn.emit("ready")
        await wait_until(lambda: len(seen) > 1000, 10, "the stream")
        await asyncio.wait_for(conn.close("test over"), 10)
        assert conn.closed.is_set() and conn.sio.eio.state != "connected"
        assert seen == [f"line {i}" for i in range(len(seen))]
    finally:
        await runner.cleanup()
