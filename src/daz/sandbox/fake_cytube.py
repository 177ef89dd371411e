"""A fake CyTube 3.86 server: python-socketio AsyncServer on aiohttp, behaving as
a live CyTube server was seen to behave. One instance per test, on port 0.

Every reaction to a frame or a control call is computed synchronously and queued per recipient
(``send``/``broadcast``), so what one action sends reaches every socket in one piece and in order,
as from the single-threaded real server. A writer task per socket drains its queue.

Beyond interface B: ``clock`` (monotonic()/millis(), e.g. daz.clock.FakeClock, drives the chat
throttle, guest delay and connect bucket), ``auto_playback`` (timed items tick, advance and
start by themselves like the real server; off by default so tests control media exactly),
``lead_in``, ``update_interval``, ``end_grace`` and ``usercount_interval`` (seconds).
"""
from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp import web

from daz.clock import Clock
from daz.sandbox import fake_control, fake_media, fake_users
from daz.sandbox.fake_channel import FakeChannel, Member
from daz.sandbox.fake_handlers import ClientEvents
from daz.sandbox.limits import ChatThrottle, TokenBucket
from daz.sandbox.serve import serve

log = logging.getLogger(__name__)

_DISCONNECT = object()          # outbox sentinel: drop this socket after what was queued
SYNC_EVENT = "fakeCytubeSync"   # test barrier, see _on_sync


@dataclass
class Account:
    name: str
    password: str
    global_rank: int = 1


@dataclass
class Connection:
    sid: str
    ip: str
    member: Member
    request: Any = None
    channel: str | None = None
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    writer: asyncio.Task | None = None
    gone: bool = False          # already taken out of its channel (duplicate login)


class FakeCytubeServer(fake_control.ControlMixin):
    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, history_size: int = 15,
                 max_chat_length: int = 320, guest_login_delay: float = 60.0,
                 connect_burst: int = 5, connect_refill_per_s: float = 0.1,
                 clock: Clock | None = None, auto_playback: bool = False,
                 lead_in: float = 3.0, update_interval: float = 5.0, end_grace: float = 2.0,
                 usercount_interval: float = 10.0):
        self.host = host
        self.port = port
        self.history_size = history_size
        self.max_chat_length = max_chat_length
        self.guest_login_delay = guest_login_delay
        self.connect_burst = connect_burst
        self.connect_refill_per_s = connect_refill_per_s
        self.clock = clock or Clock()
        self.auto_playback = auto_playback
        self.lead_in = lead_in
        self.update_interval = update_interval
        self.end_grace = end_grace
        self.usercount_interval = usercount_interval
        # What /socketconfig tells clients to connect to (default: base_url); a test puts a
        # proxy in front of the server by advertising the proxy's address.
        self.advertised_url: str | None = None
        self.accounts: dict[str, Account] = {}
        self.channels: dict[str, FakeChannel] = {}
        self.connections: dict[str, Connection] = {}
        self.pm_log: list[dict] = []
        self.refused_connects = 0
        # channel → logins that kicked the same account's older socket: two bots in one room
        self.duplicate_logins: dict[str, int] = {}
        self._connect_buckets: dict[str, TokenBucket] = {}
        self._guest_logins: dict[str, float] = {}
        self._ip_counter = itertools.count(1)
        self._simulated: list = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._sio: socketio.AsyncServer | None = None
        self._runner: web.AppRunner | None = None
        self._events = ClientEvents(self)

    # -------------------------------------------------------------- lifecycle
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._sio = socketio.AsyncServer(async_mode="aiohttp", async_handlers=False,
                                         cors_allowed_origins="*", logger=False,
                                         engineio_logger=False)
        self._events.register(self._sio)
        self._sio.on("connect", self._on_connect)
        self._sio.on("disconnect", self._on_disconnect)
        self._sio.on(SYNC_EVENT, self._on_sync)
        app = web.Application()
        app.router.add_get("/socketconfig/{channel}.json", self._socketconfig)
        self._sio.attach(app)
        self._runner, self.port = await serve(app, self.host, self.port, shutdown_timeout=0.25)
        log.debug("fake CyTube server listening on %s", self.base_url)  # daz sandbox prints it

    async def stop(self) -> None:
        for user in list(self._simulated):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(user.leave(), 1.0)
        self._simulated.clear()
        await self._shut_down()

    async def restart(self, down_for: float = 0.0, *, behind: float = 8.0) -> None:
        """Like the process dying and coming back (as a live server restarts): sockets cut,
        limits reset, and each channel reloaded from its saved state: the playlist with new
        uids, the current item continuing ``behind`` seconds before where it was, the chat
        history kept (replayed on join), ranks, options and MOTD kept."""
        positions = {name: fake_media.position_now(channel)
                     for name, channel in self.channels.items()}
        await self._shut_down()
        if down_for > 0:
            await asyncio.sleep(down_for)
        self._connect_buckets.clear()
        self._guest_logins.clear()
        for name, channel in self.channels.items():
            fake_media.reload(self, channel, positions[name] - behind)
        await self.start()

    async def kill_connections(self) -> None:
        """Cut every socket at the TCP level: the clients see the connection die, no event."""
        for conn in list(self.connections.values()):
            self._abort(conn)
        if self._sio is not None:
            await _close_engine_sockets(self._sio)

    async def _shut_down(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for channel in self.channels.values():
            channel.members.clear()
            channel.usercount_timer = None
            channel.playback_timer = None
        for conn in list(self.connections.values()):
            self._abort(conn)
        sio, runner = self._sio, self._runner
        self._sio = self._runner = None
        if sio is not None:
            await _close_engine_sockets(sio)
        if runner is not None:
            await runner.cleanup()
        for conn in list(self.connections.values()):
            if conn.writer is not None:
                conn.writer.cancel()
        self.connections.clear()

    def _abort(self, conn: Connection) -> None:
        transport = getattr(conn.request, "transport", None)
        if transport is not None:
            transport.abort()
        if conn.writer is not None:
            conn.writer.cancel()

    async def _socketconfig(self, request: web.Request) -> web.Response:
        url = self.advertised_url or self.base_url
        return web.json_response({"servers": [{"url": url, "secure": False}]})

    # ------------------------------------------------------------ connections
    async def _on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        request = environ.get("aiohttp.request")
        ip = _client_ip(getattr(request, "remote", None) or "127.0.0.1",
                        environ.get("HTTP_X_FORWARDED_FOR", ""))
        bucket = self._connect_buckets.get(ip)
        if bucket is None:
            bucket = self._connect_buckets[ip] = TokenBucket(
                self.connect_burst, self.connect_refill_per_s, self.clock)
        if not bucket.try_take():
            self.refused_connects += 1
            raise socketio.exceptions.ConnectionRefusedError("Rate limit exceeded")
        member = Member(sid=sid, ip=ip, throttle=ChatThrottle(self.clock),
                        queue_throttle=ChatThrottle(self.clock))
        conn = Connection(sid=sid, ip=ip, member=member, request=request)
        conn.writer = asyncio.create_task(self._write(conn), name=f"fake-cytube-writer-{sid}")
        self.connections[sid] = conn

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        if not conn.gone:
            conn.gone = True
            fake_users.leave_channel(self, conn)
        if conn.writer is not None and conn.writer is not asyncio.current_task():
            conn.writer.cancel()

    async def _write(self, conn: Connection) -> None:
        sio = self._sio
        while True:
            event, args = await conn.outbox.get()
            if sio is not self._sio or sio is None:
                return
            try:
                if event is _DISCONNECT:
                    await sio.disconnect(conn.sid)
                    return
                await sio.emit(event, args[0] if len(args) == 1 else (tuple(args) or None),
                               to=conn.sid)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.debug("fake cytube: could not send %s to %s", event, conn.sid, exc_info=True)
            finally:
                conn.outbox.task_done()

    async def _on_sync(self, sid: str, *args: Any) -> bool:
        """Test barrier (not a CyTube event): acknowledged once everything queued for this
        socket before it has been handed to the transport."""
        conn = self.connections.get(sid)
        if conn is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(conn.outbox.join(), 5.0)
        return True

    # ---------------------------------------------------------- send helpers
    def send(self, sid: str, event: str, *args: Any) -> None:
        """Queue one event for one socket (no args: an argument-less event)."""
        conn = self.connections.get(sid)
        if conn is not None:
            conn.outbox.put_nowait((event, args))

    def broadcast(self, channel: FakeChannel, event: str, *args: Any,
                  min_rank: float | None = None) -> None:
        for member in list(channel.members.values()):
            if min_rank is None or member.rank >= min_rank:
                self.send(member.sid, event, *args)

    def broadcast_each(self, channel: FakeChannel, event: str,
                       build: Callable[[Member], Any]) -> None:
        """Per-viewer payloads (mods see more user meta)."""
        for member in list(channel.members.values()):
            self.send(member.sid, event, build(member))

    def drop(self, sid: str) -> None:
        """Disconnect a socket once what was queued for it is sent."""
        conn = self.connections.get(sid)
        if conn is not None:
            conn.outbox.put_nowait((_DISCONNECT, ()))

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        handle: asyncio.TimerHandle

        def run() -> None:
            self._timers.discard(handle)
            try:
                callback()
            except Exception:
                log.exception("fake cytube: timer callback failed")

        handle = asyncio.get_running_loop().call_later(max(0.0, delay), run)
        self._timers.add(handle)
        return handle

    def cancel_timer(self, handle: asyncio.TimerHandle | None) -> None:
        if handle is not None:
            handle.cancel()
            self._timers.discard(handle)

    # ----------------------------------------------------------- accounts etc.
    def add_account(self, name: str, password: str, *, global_rank: int = 1) -> None:
        self.accounts[name.lower()] = Account(name, password, global_rank)

    def set_channel_rank(self, channel: str, name: str, rank: float) -> None:
        """Stored rank, as in channel_ranks; takes effect at the next login."""
        self.channel(channel).ranks[name.lower()] = rank

    def channel(self, name: str, *, registered: bool = True) -> FakeChannel:
        """The channel ``name``, made on first use: registered (an owner claimed it) unless
        ``registered=False``, which is what the real server has for any name nobody claimed."""
        found = self.channels.get(name)
        if found is None:
            found = self.channels[name] = FakeChannel(name, history_size=self.history_size,
                                                      registered=registered)
        return found

    def next_ip(self) -> str:
        n = next(self._ip_counter) % 62_500
        return f"127.0.{1 + n // 250}.{1 + n % 250}"

    async def user(self, name: str, *, password: str | None = None, channel: str = "testchan",
                   guest: bool | None = None, ip: str | None = None):
        """A connected, joined and logged-in SimulatedUser; LoginRefused if the login fails."""
        from daz.sandbox.simulated_user import SimulatedUser

        account = self.accounts.get(name.lower())
        if guest is None:
            guest = account is None and password is None
        if not guest and password is None and account is not None:
            password = account.password
        user = SimulatedUser(self, name, channel=channel, ip=ip or self.next_ip())
        self._simulated.append(user)
        await user.connect()
        await user.join()
        await user.login(None if guest else password)
        return user

    def forget_simulated(self, user) -> None:
        with contextlib.suppress(ValueError):
            self._simulated.remove(user)


async def _close_engine_sockets(sio: socketio.AsyncServer) -> None:
    """Close without a goodbye; a long-polling client's pending GET is released at once."""
    for eio_socket in list(sio.eio.sockets.values()):
        with contextlib.suppress(Exception):
            await eio_socket.close(wait=False, abort=True)
            eio_socket.queue.put_nowait(None)


def _client_ip(peer: str, forwarded_for: str) -> str:
    """The real server trusts X-Forwarded-For from loopback peers only."""
    try:
        trusted = ipaddress.ip_address(peer.split("%")[0]).is_loopback
    except ValueError:
        trusted = False
    if trusted and forwarded_for:
        first = forwarded_for.split(",")[0].strip()
        if first:
            return first
    return peer
