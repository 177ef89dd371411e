"""One socket to a CyTube server: discovery (which socket.io URL serves a channel) and the
socket.io session itself.

The lifecycle (lifecycle.py) drives these: discover → ``Connection.open`` → joinChannel → login →
… → closed → ask reconnect_policy.py what next → again. This module knows the wire facts (as
a live CyTube server behaves; the fake server in sandbox/ does the same); what to do about them is
decided there.

Liveness: engine.io's client reads with a timeout of pingInterval + pingTimeout (the server pings,
CyTube: 25 s + 120 s) and drops the connection when nothing arrives in that window, which covers
a half-open TCP connection (tests/e2e/test_connection_liveness.py checks it through a frozen
proxy). ``Connection`` adds a watchdog on top for the one case engine.io leaves open: its
transport stopped without our disconnect handler running.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import aiohttp
import socketio

from daz.cytube.frame_reader import InlineFrameClient

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT = 10.0
CONNECT_TIMEOUT = 15.0
MAX_FRAME_BYTES = 64 * 1024 * 1024  # RoomConfig.max_frame_mib's default


class DiscoveryError(Exception):
    pass


class ConnectFailed(Exception):
    """The socket did not come up; ``message`` is the server's connect_error text if any."""

    def __init__(self, message: str, *, server_message: str | None = None):
        super().__init__(message)
        self.server_message = server_message

    @property
    def rate_limited(self) -> bool:
        return "rate limit" in (self.server_message or "").lower()

    @property
    def banned(self) -> bool:
        return "banned" in (self.server_message or "").lower()


# --------------------------------------------------------------------------- discovery


def choose_server(config: Any, *, prefer_secure: bool) -> str:
    """The socket.io URL from a /socketconfig/<channel>.json answer."""
    servers = config.get("servers") if isinstance(config, dict) else None
    if not isinstance(servers, list):
        raise DiscoveryError("socketconfig has no server list")
    usable = [s for s in servers if isinstance(s, dict) and isinstance(s.get("url"), str)
              and s["url"].startswith(("http://", "https://"))]
    if not usable:
        raise DiscoveryError("socketconfig lists no usable server")
    if prefer_secure:
        for server in usable:
            if server.get("secure") is True:
                return server["url"]
    return usable[0]["url"]


async def discover(http: aiohttp.ClientSession, server_url: str, channel: str, *,
                   timeout: float = DISCOVERY_TIMEOUT) -> str:
    url = f"{server_url.rstrip('/')}/socketconfig/{channel}.json"
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            if response.status != 200:
                body = (await response.text(errors="replace"))[:200]
                raise DiscoveryError(f"GET {url}: HTTP {response.status} {body}".strip())
            try:
                config = await response.json(content_type=None)
            except ValueError as exc:
                raise DiscoveryError(f"GET {url}: not JSON ({exc})") from None
    except DiscoveryError:
        raise
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise DiscoveryError(f"GET {url}: {type(exc).__name__} {exc}".strip()) from None
    return choose_server(config, prefer_secure=server_url.startswith("https://"))


# --------------------------------------------------------------------------- the socket

BAD_PACKETS_LOGGED = 10  # per connection at WARNING; the rest at DEBUG (a hostile server)


class _GuardedClient(socketio.AsyncClient):
    """python-socketio's client, kept listening after a packet it cannot decode.

    Left alone, a packet it chokes on (truncated JSON, an event that is not a list, a binary
    event whose placeholder points past its attachments) raises inside an engine.io task that
    nobody awaits, and a broken or attachment-less binary event stays pending, so every later
    frame is taken as its attachment: the room would be deaf for good while still connected.
    Here such a packet is dropped with a log line and any half-built binary packet discarded.
    (Relies on two internals of python-socketio 5: ``_handle_eio_message``, ``_binary_packet``.)
    """

    def __init__(self, *args: Any, on_bad_packet: Callable[[Exception | None, Any], None],
                 **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._on_bad_packet = on_bad_packet

    def _engineio_client_class(self) -> type:
        return InlineFrameClient

    async def _handle_eio_message(self, data: Any) -> None:
        try:
            await super()._handle_eio_message(data)
        except Exception as exc:
            self._binary_packet = None
            self._on_bad_packet(exc, data)
            return
        pending = self._binary_packet
        if pending is not None and not pending.attachment_count:
            self._binary_packet = None  # would swallow the next frame as its attachment
            self._on_bad_packet(None, data)


class Pace(Protocol):
    """What tells the reader to stop reading for a while (the room's intake)."""

    @property
    def backlogged(self) -> bool: ...

    async def wait_for_room(self) -> None: ...


class Connection:
    """One socket.io session. Frames go to ``on_frame(event, payload)``, synchronously and in
    arrival order (the handler must not block); ``closed`` is set when the socket is gone.
    After a frame, while ``pace.backlogged``, the socket is not read until
    ``pace.wait_for_room()`` returns or the connection closes (back-pressure through TCP)."""

    def __init__(self, url: str, on_frame: Callable[[str, Any], None], *,
                 pace: Pace | None = None, headers: dict[str, str] | None = None,
                 name: str = "", connect_timeout: float = CONNECT_TIMEOUT,
                 max_frame_bytes: int = MAX_FRAME_BYTES):
        self.url = url
        self.name = name
        self.headers = dict(headers or {})
        self.connect_timeout = connect_timeout
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.opened_at = 0.0
        self._on_frame = on_frame
        self._pace = pace
        self._closing = asyncio.Event()  # releases a reader waiting for the pace
        self._server_error: str | None = None
        self._watchdog: asyncio.Task | None = None
        self._ending: asyncio.Task | None = None
        # Reconnection is ours (lifecycle.py), so socket.io's own must stay off.
        self.bad_packets = 0
        # json: the standard module. engine.io's default wrapper builds a new decoder on every
        # call to pass a parse_int hook capping integers at 100 digits, a measurable share of a
        # chat flood; Python itself refuses integers over 4,300 digits (the quadratic case that
        # hook was for), and such a packet is then dropped as undecodable like any other.
        # handle_sigint off: socket.io's own SIGINT handler cancels every task (daz.stopping).
        # max_msg_size: a frame over it ends the socket (close code 1009), so a room whose join
        # burst is bigger could never join; see RoomConfig.max_frame_mib.
        self.sio = _GuardedClient(reconnection=False, logger=False, engineio_logger=False,
                                  json=json, on_bad_packet=self._bad_packet,
                                  handle_sigint=False,
                                  websocket_extra_options={"max_msg_size": max_frame_bytes})
        self.sio.on("*", self._frame)
        self.sio.on("connect_error", self._connect_error)
        self.sio.on("disconnect", self._disconnected)

    # InlineFrameClient hands socket.io each message inline and socket.io awaits this inline,
    # so frames are handled in arrival order and the reader reads nothing while this waits.
    async def _frame(self, event: Any, *args: Any) -> None:
        payload = args[0] if args else None
        try:
            self._on_frame(event, payload)
        except Exception:  # the room's handler is meant never to raise; belt and braces
            log.exception("room %s: frame handler failed on %.40r", self.name, event)
        pace = self._pace
        if pace is not None and pace.backlogged and not self._closing.is_set():
            await self._wait_for_room(pace)

    async def _wait_for_room(self, pace: Pace) -> None:
        room_made = asyncio.ensure_future(pace.wait_for_room())
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({room_made, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            room_made.cancel()
            closing.cancel()

    def _bad_packet(self, exc: Exception | None, data: Any) -> None:
        self.bad_packets += 1
        level = logging.WARNING if self.bad_packets <= BAD_PACKETS_LOGGED else logging.DEBUG
        why = (f"{type(exc).__name__}: {str(exc)[:100]}" if exc
               else "binary event without attachments")
        log.log(level, "room %s: undecodable packet from the server dropped (%s): %.80r",
                self.name, why, data)

    def _connect_error(self, data: Any = None, *_: Any) -> None:
        if isinstance(data, dict):
            self._server_error = str(data.get("message", data))[:200]
        elif data is not None:
            self._server_error = str(data)[:200]
        if self.opened_at and not self.closed.is_set() and self._ending is None:
            # A refusal after the connect: python-socketio drops the namespace but engine.io
            # stays up, so frames would still arrive while nothing can be sent, for good.
            # End the socket; the lifecycle starts a fresh one.
            reason = f"server refused the session after connecting ({self._server_error})"
            log.warning("room %s: %s", self.name, reason)
            self._ending = asyncio.get_running_loop().create_task(self.close(reason))

    def _disconnected(self, reason: Any = None) -> None:
        # engine.io says only "transport error"; its reader knows what really ended the socket
        # (a frame over the size limit, the server's close code, a reset).
        detail = getattr(self.sio.eio, "end_reason", "") or reason
        self._mark_closed(f"disconnected ({detail})" if detail else "disconnected")

    def _mark_closed(self, reason: str) -> None:
        self._closing.set()
        if not self.closed.is_set():
            self.close_reason = self.close_reason or reason
            self.closed.set()

    @property
    def connected(self) -> bool:
        return self.sio.connected and not self.closed.is_set()

    async def open(self) -> None:
        try:
            await asyncio.wait_for(
                self.sio.connect(self.url, headers=self.headers, transports=["websocket"],
                                 wait_timeout=self.connect_timeout),
                self.connect_timeout + 1)
        except TimeoutError:
            await self._abandon()
            raise ConnectFailed("connect timed out", server_message=self._server_error) from None
        except socketio.exceptions.ConnectionError as exc:
            await self._abandon()
            detail = self._server_error or str(exc)
            raise ConnectFailed(f"connect failed: {detail}",
                                server_message=self._server_error) from None
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            await self._abandon()
            raise ConnectFailed(f"connect failed: {type(exc).__name__} {exc}") from None
        self.opened_at = time.monotonic()
        self._watchdog = asyncio.get_running_loop().create_task(
            self._watch(), name=f"room:{self.name}:watchdog")

    async def _abandon(self) -> None:
        self._mark_closed("connect failed")
        try:
            await asyncio.wait_for(self.sio.disconnect(), 2)
        except Exception:  # already gone is fine
            pass

    async def _watch(self) -> None:
        """engine.io detects silence itself; this catches a transport that ended without our
        disconnect handler being called (its state leaves 'connected')."""
        try:
            while not self.closed.is_set():
                await asyncio.sleep(1.0)
                if self.sio.eio.state != "connected":
                    self._mark_closed("transport closed")
        except asyncio.CancelledError:
            pass

    async def emit(self, event: str, payload: Any = None) -> None:
        if not self.connected:
            raise ConnectionError("not connected")
        try:
            if payload is None:
                await self.sio.emit(event)
            else:
                await self.sio.emit(event, payload)
        except socketio.exceptions.SocketIOError as exc:
            raise ConnectionError(str(exc)) from None

    async def close(self, reason: str = "closed by us") -> None:
        self._closing.set()  # before engine.io waits for its reader, which may be pacing
        if not self.closed.is_set():
            self.close_reason = reason
        try:
            await asyncio.wait_for(self.sio.disconnect(), 5)
        except Exception:
            pass
        self._mark_closed(reason)
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
