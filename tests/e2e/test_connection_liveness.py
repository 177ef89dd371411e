"""Liveness: a connection that goes silent without closing (half-open TCP: the network between
us and the server stops delivering) is detected within pingInterval + pingTimeout and the room
reconnects. A tiny socket.io server with short ping settings stands in for CyTube (the fake
server keeps CyTube's 25 s + 120 s; engine.io takes whole seconds), behind a proxy the test can
freeze."""
from __future__ import annotations

import asyncio
import contextlib

import socketio
from aiohttp import web

from daz.bus import Bus
from daz.config import RoomConfig
from daz.cytube.room import Room
from daz.events import RoomDisconnected, RoomJoined
from tests.e2e.harness import wait_until


class FreezingProxy:
    """Forwards TCP both ways until frozen; frozen, it holds every connection open and passes
    nothing (what a dead route or a sleeping NAT looks like)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.frozen = False
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader, writer) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src, dst) -> None:
        with contextlib.suppress(Exception):
            while data := await src.read(65536):
                while self.frozen:  # hold it: the sender sees no error, the receiver nothing
                    await asyncio.sleep(0.05)
                dst.write(data)
                await dst.drain()
        with contextlib.suppress(Exception):
            dst.close()

    async def stop(self) -> None:
        self.frozen = False
        for writer in self._writers:
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def start_tiny_cytube(ping_interval: float, ping_timeout: float, *,
                            answer_login: bool = True):
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=ping_interval,
                               ping_timeout=ping_timeout, logger=False, engineio_logger=False)
    public = {"url": ""}
    logins: list[str] = []
    public["logins"] = logins

    @sio.on("joinChannel")
    async def join(sid, data):
        await sio.emit("userlist", [{"name": "alice", "rank": 1}], to=sid)

    @sio.on("login")
    async def login(sid, data):
        logins.append(sid)
        if answer_login:
            await sio.emit("login", {"success": True, "name": data["name"]}, to=sid)

    async def socketconfig(request):
        return web.json_response({"servers": [{"url": public["url"], "secure": False}]})

    app = web.Application()
    app.router.add_get("/socketconfig/{channel}.json", socketconfig)
    sio.attach(app)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, runner.addresses[0][1], public


async def test_a_silent_half_open_connection_is_detected_and_replaced():
    runner, port, public = await start_tiny_cytube(ping_interval=1, ping_timeout=1)
    proxy = FreezingProxy(port)
    await proxy.start()
    public["url"] = f"http://127.0.0.1:{proxy.port}"
    bus = Bus()
    seen: list = []

    async def record(event):
        seen.append(event)

    bus.subscribe("daz.room.*", record, owner="test")
    room = Room(RoomConfig(channel="testchan", username="dazbot", password="pw", enabled=True,
                           server_url=public["url"]), bus)
    room.backoff.base = 0.1
    try:
        await room.start()
        await wait_until(lambda: room.status()["joined"], 10, "the first join")
        await asyncio.sleep(2.5)  # several ping rounds pass: a healthy link stays up
        assert room.status()["joined"] and not [e for e in seen
                                                if isinstance(e, RoomDisconnected)]
        proxy.frozen = True
        await wait_until(lambda: [e for e in seen if isinstance(e, RoomDisconnected)], 10,
                         "the silence to be noticed")
        proxy.frozen = False
        await wait_until(lambda: len([e for e in seen if isinstance(e, RoomJoined)]) == 2, 10,
                         "the rejoin")
        assert [e.reconnect for e in seen if isinstance(e, RoomJoined)] == [False, True]
    finally:
        await room.stop()
        await bus.close()
        await proxy.stop()
        await runner.cleanup()


async def test_a_login_that_is_never_answered_is_retried_on_a_new_socket():
    runner, port, public = await start_tiny_cytube(ping_interval=25, ping_timeout=20,
                                                   answer_login=False)
    public["url"] = f"http://127.0.0.1:{port}"
    bus = Bus()
    room = Room(RoomConfig(channel="testchan", username="dazbot", password="pw", enabled=True,
                           server_url=public["url"]), bus)
    room.join_timeout = 0.5
    room.backoff.base = 0.1
    try:
        await room.start()
        await wait_until(lambda: len(public["logins"]) >= 2, 10, "a second login attempt")
        assert public["logins"][0] != public["logins"][1]  # on a fresh socket
        assert "not joined after" in (room.status()["last_error"] or "")
        assert not room.status()["joined"] and room.status()["gave_up"] is None
    finally:
        await room.stop()
        await bus.close()
        await runner.cleanup()
