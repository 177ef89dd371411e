"""One socket to a CyTube server: discovery, the socket.io session, and the reconnect policy.

``Room`` (room.py) owns the loop that uses these: discover → ``Connection.open`` → joinChannel →
login → … → closed → ``Backoff`` → again. This module knows the protocol facts
(reference/cytube-server-captures.md, daz-go-core.md §1), the room knows what to do with them.

Liveness: engine.io's client reads with a timeout of pingInterval + pingTimeout (the server pings,
CyTube: 25 s + 120 s) and drops the connection when nothing arrives in that window, which covers
a half-open TCP connection (tests/e2e/test_connection_e2e.py checks it through a frozen proxy).
``Connection`` adds a watchdog on top for the one case engine.io leaves open: its transport
stopped without our disconnect handler running.
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

import aiohttp
import socketio

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT = 10.0
CONNECT_TIMEOUT = 15.0
RATE_LIMIT_WAIT = 10.0  # the server's per-IP connect bucket refills one token per 10 s


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
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise DiscoveryError(f"GET {url}: {type(exc).__name__} {exc}".strip()) from None
    return choose_server(config, prefer_secure=server_url.startswith("https://"))


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class Verdict:
    """What to do after a failure: give up (``fatal``), wait at least ``min_wait`` seconds, or
    (``slow``) wait the room's longest backoff."""

    fatal: bool = False
    min_wait: float = 0.0
    slow: bool = False
    relogin: bool = False  # keep the socket, send ``login`` again after ``min_wait``
    reason: str = ""


_GUEST_DELAY = re.compile(r"(\d+(?:\.\d+)?)\s*seconds?", re.I)


def judge_login_error(error: str) -> Verdict:
    """CyTube's login failures (daz-go-core.md §2.2): the permanent ones stop the room."""
    text = error or "login refused"
    low = text.lower()
    if ("invalid username/password" in low or "username is registered" in low
            or "invalid username" in low or "username is reserved" in low):
        return Verdict(fatal=True, reason=f"login failed: {text}")
    if "guest logins are restricted" in low:
        match = _GUEST_DELAY.search(text)
        seconds = float(match.group(1)) if match else 60.0
        return Verdict(min_wait=seconds + 1.0, relogin=True, reason=f"login delayed: {text}")
    # "That name is already in use on this channel." and anything new: a ghost may clear.
    return Verdict(min_wait=5.0, reason=f"login failed: {text}")


def judge_kick(reason: str, duplicate_kicks_before: int) -> Verdict:
    """A ban is final. A duplicate login gets one slow retry (the other session may have been a
    person borrowing the account for a minute); a second one means another bot runs with this
    account, and two bots kicking each other in a loop is the Go defect we must not repeat."""
    low = (reason or "").lower()
    if "ban" in low:
        return Verdict(fatal=True, reason=f"kicked: {reason}")
    if "duplicate login" in low:
        if duplicate_kicks_before >= 1:
            return Verdict(fatal=True, reason=f"kicked twice: {reason} (another session uses "
                                              "this account)")
        return Verdict(slow=True, reason=f"kicked: {reason}")
    return Verdict(min_wait=30.0, reason=f"kicked: {reason or 'no reason given'}")


class Backoff:
    """Capped exponential backoff with "equal jitter": attempt n waits a random time in
    [d/2, d] with d = min(cap, base * 2**(n-1)). ``connected_for`` resets it once a connection
    has been stable, so one flap an hour never waits five minutes."""

    def __init__(self, *, base: float = 1.0, cap: float = 300.0, stable_after: float = 60.0,
                 rng: random.Random | None = None):
        self.base = base
        self.cap = max(base, cap)
        self.stable_after = stable_after
        self.rng = rng or random.Random()
        self.failures = 0

    def next_delay(self, min_wait: float = 0.0) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures - 1, 30))
        delay = self.rng.uniform(ceiling / 2, ceiling)
        if min_wait > 0:
            delay = max(delay, min_wait + self.rng.uniform(0, min(5.0, min_wait / 2)))
        return delay

    def connected_for(self, seconds: float) -> None:
        if seconds >= self.stable_after:
            self.failures = 0

    def reset(self) -> None:
        self.failures = 0


# --------------------------------------------------------------------------- the socket


class Connection:
    """One socket.io session. Frames go to ``on_frame(event, payload)``, synchronously and in
    arrival order (the handler must not block); ``closed`` is set when the socket is gone."""

    def __init__(self, url: str, on_frame: Callable[[str, Any], None], *,
                 headers: dict[str, str] | None = None, name: str = "",
                 connect_timeout: float = CONNECT_TIMEOUT):
        self.url = url
        self.name = name
        self.headers = dict(headers or {})
        self.connect_timeout = connect_timeout
        self.closed = asyncio.Event()
        self.close_reason = ""
        self.opened_at = 0.0
        self._on_frame = on_frame
        self._server_error: str | None = None
        self._watchdog: asyncio.Task | None = None
        # Reconnection is ours (Room), so socket.io's own must stay off.
        self.sio = socketio.AsyncClient(reconnection=False, logger=False,
                                        engineio_logger=False)
        self.sio.on("*", self._frame)
        self.sio.on("connect_error", self._connect_error)
        self.sio.on("disconnect", self._disconnected)

    # socket.io calls plain functions inline: keeping these synchronous preserves frame order
    # (engine.io runs each message in its own task, and they start in arrival order).
    def _frame(self, event: Any, *args: Any) -> None:
        payload = args[0] if args else None
        try:
            self._on_frame(event, payload)
        except Exception:  # the room's handler is meant never to raise; belt and braces
            log.exception("room %s: frame handler failed on %.40r", self.name, event)

    def _connect_error(self, data: Any = None, *_: Any) -> None:
        if isinstance(data, dict):
            self._server_error = str(data.get("message", data))[:200]
        elif data is not None:
            self._server_error = str(data)[:200]

    def _disconnected(self, reason: Any = None) -> None:
        self._mark_closed(f"disconnected ({reason})" if reason else "disconnected")

    def _mark_closed(self, reason: str) -> None:
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
        except asyncio.TimeoutError:
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
