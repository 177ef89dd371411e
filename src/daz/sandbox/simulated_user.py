"""A person in a fake CyTube channel: a real python-socketio client that records every event.

``wait_for`` looks at everything received so far, skipping events an earlier ``wait_for``
already returned, so waiting for the next reply never misses one that arrived early and never
returns the same one twice. ``mark()``/``since=`` restrict a wait to events after a point.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import socketio

if TYPE_CHECKING:
    from daz.sandbox.fake_cytube import FakeCytubeServer

log = logging.getLogger(__name__)


class LoginRefused(RuntimeError):
    def __init__(self, name: str, error: str):
        super().__init__(f"login as {name!r} refused: {error}")
        self.name = name
        self.error = error


class SimulatedUser:
    def __init__(self, server: FakeCytubeServer, name: str, *, channel: str = "testchan",
                 ip: str = "127.0.0.2"):
        self.server = server
        self.name = name
        self.channel = channel
        self.ip = ip
        self.events: list[tuple[str, Any]] = []
        self._returned: set[int] = set()
        self._changed = asyncio.Event()
        # max_msg_size 0: no limit, so a simulated user in a huge room gets its join burst
        # (aiohttp's default, 4 MiB, is less than a 50,000-person userlist).
        self.client = socketio.AsyncClient(reconnection=False, logger=False,
                                           engineio_logger=False, handle_sigint=False,
                                           websocket_extra_options={"max_msg_size": 0})
        self.client.on("*", self._record)
        self.client.on("disconnect", self._on_disconnect)

    async def _record(self, event: str, *args: Any) -> None:
        self.events.append((event, args[0] if len(args) == 1 else (list(args) or None)))
        self._changed.set()

    async def _on_disconnect(self, *args: Any) -> None:
        self.events.append(("disconnect", args[0] if args else None))
        self._changed.set()

    # ------------------------------------------------------------- connecting
    @property
    def connected(self) -> bool:
        return self.client.connected

    async def connect(self, timeout: float = 5.0) -> None:
        await self.client.connect(self.server.base_url, headers={"X-Forwarded-For": self.ip},
                                  transports=["websocket"], wait_timeout=timeout)

    async def join(self, channel: str | None = None) -> None:
        self.channel = channel or self.channel
        await self.client.emit("joinChannel", {"name": self.channel})

    async def login(self, password: str | None = None, timeout: float = 5.0) -> None:
        """Log in (a guest without a password); raises LoginRefused with the server's error."""
        mark = self.mark()
        frame = {"name": self.name} if password is None else {"name": self.name, "pw": password}
        await self.client.emit("login", frame)
        reply = await self.wait_for("login", timeout=timeout, since=mark)
        if not (isinstance(reply, dict) and reply.get("success")):
            error = reply.get("error", "") if isinstance(reply, dict) else repr(reply)
            raise LoginRefused(self.name, error)
        self.name = reply.get("name", self.name)
        await self.sync(timeout)

    async def sync(self, timeout: float = 5.0) -> None:
        """Return once everything the server had queued for this user has arrived (a round
        trip the fake server acknowledges after its queue for this socket is empty)."""
        from daz.sandbox.fake_cytube import SYNC_EVENT

        await self.client.call(SYNC_EVENT, timeout=timeout)

    async def leave(self) -> None:
        """Disconnect; the others see userLeave."""
        self.server.forget_simulated(self)
        if self.client.connected:
            await self.client.disconnect()

    # ----------------------------------------------------------------- acting
    async def emit(self, event: str, payload: Any = None) -> None:
        if payload is None:
            await self.client.emit(event)
        else:
            await self.client.emit(event, payload)

    async def chat(self, text: str) -> None:
        await self.client.emit("chatMsg", {"msg": text, "meta": {}})

    async def pm(self, to: str, text: str) -> None:
        await self.client.emit("pm", {"to": to, "msg": text, "meta": {}})

    async def afk(self) -> None:
        await self.chat("/afk")

    # -------------------------------------------------------------- observing
    def mark(self) -> int:
        """Index of the next event to arrive (for ``wait_for(since=...)``)."""
        return len(self.events)

    async def wait_for(self, event: str, predicate: Callable[[Any], bool] = lambda p: True,
                       timeout: float = 5.0, *, since: int = 0) -> Any:
        """The payload of the first matching event not returned before; TimeoutError after
        ``timeout`` seconds, naming what did arrive."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index in range(since, len(self.events)):
                name, payload = self.events[index]
                if name == event and index not in self._returned and _matches(predicate, payload):
                    self._returned.add(index)
                    return payload
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [name for name, _ in self.events[since:]][-20:]
                raise TimeoutError(f"{self.name}: no {event!r} within {timeout}s "
                                   f"(last events: {seen})")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def received(self, event: str) -> list[Any]:
        return [payload for name, payload in self.events if name == event]

    def chats(self) -> list[tuple[Any, Any]]:
        """(username, msg) of every chatMsg received, history replay included."""
        return [(p.get("username"), p.get("msg")) for p in self.received("chatMsg")
                if isinstance(p, dict)]

    def __repr__(self) -> str:
        return f"<SimulatedUser {self.name} in {self.channel}>"


def _matches(predicate: Callable[[Any], bool], payload: Any) -> bool:
    try:
        return bool(predicate(payload))
    except Exception:
        return False
