"""A tiny hostile "CyTube" server for packet-level fuzzing: it speaks just enough engine.io 4 /
socket.io 5 over a websocket to get a client joined, then sends whatever bytes the test asks,
as text frames, binary frames or raw websocket frames of any opcode.

    server = await HostileCytube().start()
    room config: server_url=server.url
    session = await server.next_joined()         # the room connected and sent joinChannel
    await session.send_text('42["chatMsg", ...')  # one websocket text frame, as given
    await session.send_frame(b"\\xff\\xfe", 0x1)   # a text frame that is not UTF-8

The handshake (engine.io open packet ``0{...}``, the client's ``40``, our ``40{"sid"}``) and the
join (``42["joinChannel"...]`` answered with one history line and the userlist) are valid, so
everything after it is exactly the hostile part. Pings are off (a 60 s interval).
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json

from aiohttp import WSMsgType, web

OPEN = {"upgrades": [], "pingInterval": 60_000, "pingTimeout": 60_000, "maxPayload": 10**8}
USERLIST = [{"name": "alice", "rank": 1, "profile": {"image": "", "text": ""},
             "meta": {"afk": False, "muted": False}}]


def event_packet(name: str, payload) -> str:
    return "42" + json.dumps([name, payload])


class Session:
    """One websocket connection from the client."""

    def __init__(self, number: int, ws: web.WebSocketResponse):
        self.number = number
        self.ws = ws
        self.joined = asyncio.Event()
        self.closed = asyncio.Event()
        self.received: list[str] = []

    async def send_text(self, text: str) -> bool:
        return await self._send(self.ws.send_str(text))

    async def send_binary(self, data: bytes) -> bool:
        return await self._send(self.ws.send_bytes(data))

    async def send_frame(self, payload: bytes, opcode: int) -> bool:
        """A websocket frame exactly as given (aiohttp's writer frames it, nothing checks it)."""
        writer = self.ws._writer
        return await self._send(writer.send_frame(payload, opcode))

    async def _send(self, coro) -> bool:
        if self.closed.is_set() or self.ws.closed:
            coro.close()
            return False
        try:
            await coro
            return True
        except (ConnectionError, RuntimeError, OSError):
            return False


class HostileCytube:
    def __init__(self, channel: str = "testchan"):
        self.channel = channel
        self.sessions: list[Session] = []
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._numbers = itertools.count(1)
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def current(self) -> Session | None:
        return self.sessions[-1] if self.sessions else None

    async def start(self) -> HostileCytube:
        app = web.Application()
        app.router.add_get("/socketconfig/{channel}.json", self._socketconfig)
        app.router.add_get("/socket.io/", self._engineio)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.25)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        for session in self.sessions:
            with contextlib.suppress(Exception):
                await session.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def next_joined(self, after: Session | None = None, timeout: float = 10.0) -> Session:
        """The first joined session newer than ``after``."""
        async def wait() -> Session:
            while True:
                for session in self.sessions:
                    if (after is None or session.number > after.number) and \
                            session.joined.is_set():
                        return session
                self._changed.clear()
                await self._changed.wait()
        return await asyncio.wait_for(wait(), timeout)

    def _notify(self) -> None:
        self._changed.set()

    async def _socketconfig(self, request: web.Request) -> web.Response:
        return web.json_response({"servers": [{"url": self.url, "secure": False}]})

    async def _engineio(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("transport") != "websocket":
            return web.Response(status=400, text="websocket only")
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        session = Session(next(self._numbers), ws)
        self.sessions.append(session)
        await ws.send_str("0" + json.dumps({"sid": f"eio{session.number}", **OPEN}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                session.received.append(msg.data)
                await self._answer(session, msg.data)
        finally:
            session.closed.set()
            self._notify()
        return ws

    async def _answer(self, session: Session, data: str) -> None:
        if data.startswith("40"):  # socket.io connect to "/"
            await session.send_text("40" + json.dumps({"sid": f"sio{session.number}"}))
        elif data.startswith("42"):
            try:
                name = json.loads(data[2:])[0]
            except (ValueError, IndexError, TypeError):
                return
            if name == "joinChannel":
                # One line of history (replayed), then the userlist that ends the join burst.
                await session.send_text(event_packet("chatMsg", {
                    "username": "alice", "msg": "history line", "meta": {}, "time": 1000}))
                await session.send_text(event_packet("userlist", USERLIST))
                session.joined.set()
                self._notify()
