"""The dashboard's live view: who is here, now playing and the message counter, pushed to open
pages as server-sent events (``/c/<channel>/live``) whenever the room changes.

``LiveFeed`` listens on the bus for the room events that change what the dashboard shows
(joins, leaves, the user list, ranks, AFK, mutes, media changes, chat) and wakes the streams
of that channel; each stream then sends a fresh snapshot of the room's state, at most every
``COALESCE_SECONDS`` (a burst of joins is one update, and a busy room cannot flood a browser).
RoomState is updated before an event is published, so the snapshot already includes it.

The message counter is the analytics figure of the last 7 days as read when the stream opened,
plus the chat lines the feed has seen since (analytics writes its counts every 30 s, too late
for a live page; lines it would not count, such as replayed history, are not counted here
either). A stream sends a comment every ``HEARTBEAT_SECONDS`` so proxies keep it open.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from daz.cytube.events import (
    AfkChanged,
    ChatMessage,
    MediaChanged,
    UserJoined,
    UserLeft,
    UserList,
    UserMetaChanged,
    UserRankChanged,
)

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.25
HEARTBEAT_SECONDS = 15.0
WATCHED = (AfkChanged, ChatMessage, MediaChanged, UserJoined, UserLeft, UserList,
           UserMetaChanged, UserRankChanged)


class LiveFeed:
    def __init__(self, bus: Any):
        self.bus = bus
        self.chat_lines: dict[str, int] = defaultdict(int)  # per channel, since start
        self.joined_at: dict[tuple[str, str], datetime] = {}  # (channel, lower name) → when
        self._changed: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._subscription = None
        self.generation = 0  # bumped to end every open stream (the server stops or rebuilds)

    def start(self) -> None:
        if self._subscription is None and self.bus is not None:
            self._subscription = self.bus.subscribe(
                "cytube.event.*", self._on_event, owner="web.live", priority=-100,
                max_queue=1000, overflow="drop_oldest", kinds=WATCHED, timeout=5.0)

    def stop(self) -> None:
        if self._subscription is not None:
            self.bus.unsubscribe(self._subscription)
            self._subscription = None

    async def _on_event(self, event: Any) -> None:
        channel = event.channel
        if isinstance(event, ChatMessage):
            if event.ignored:
                return
            self.chat_lines[channel] += 1
        elif isinstance(event, UserJoined) and event.username:
            self.joined_at[(channel, event.username.lower())] = datetime.now(UTC)
        elif isinstance(event, UserLeft) and event.username:
            self.joined_at.pop((channel, event.username.lower()), None)  # no growth over years
        self.changed(channel)

    def close_streams(self) -> None:
        """End every open stream now: an open one would hold a server shutdown for its full
        timeout. Browsers reconnect by themselves (EventSource retries)."""
        self.generation += 1
        for channel in list(self._changed):
            self.changed(channel)

    def changed(self, channel: str) -> None:
        """Wake every stream of ``channel`` (each one waits on the event it was handed)."""
        self._changed.pop(channel, asyncio.Event()).set()

    def waiter(self, channel: str) -> asyncio.Event:
        return self._changed[channel]


def snapshot(room: Any, here_since: dict, feed: LiveFeed, messages_7d: int) -> dict:
    """What the live parts of the dashboard show, as JSON-ready values."""
    state = room.state
    users = []
    for user in sorted(state.users.values(), key=lambda u: (-u.rank, u.name.lower())):
        key = user.name.lower()
        joined = feed.joined_at.get((room.channel, key))
        since, observed = here_since.get(key, (None, False))
        if joined is not None and (since is None or joined.replace(tzinfo=None) > since):
            since, observed = joined.astimezone(UTC).replace(tzinfo=None), False
        users.append({"name": user.name, "rank": user.rank, "afk": bool(user.afk),
                      "muted": bool(user.muted or user.smuted), "self": state.is_self(user.name),
                      "since": since.strftime("%Y-%m-%d %H:%M") if since else "",
                      "before": bool(observed)})
    media = state.current_media
    playing = None if media is None else {"title": media.title, "type": media.type,
                                          "seconds": media.seconds, "paused": bool(state.paused)}
    return {"users": users, "user_count": len(users), "now_playing": playing,
            "messages_7d": messages_7d, "sent_at": time.time()}


async def stream(request: web.Request, room: Any, feed: LiveFeed, here_since: dict,
                 messages_7d: int) -> web.StreamResponse:
    """Serve one dashboard's event stream until the browser goes away or daz stops."""
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    counted_from = feed.chat_lines[room.channel]
    generation = feed.generation
    try:
        while feed.generation == generation:
            wake = feed.waiter(room.channel)
            lines = feed.chat_lines[room.channel] - counted_from
            body = json.dumps(snapshot(room, here_since, feed, messages_7d + lines))
            await response.write(f"event: room\ndata: {body}\n\n".encode())
            try:
                await asyncio.wait_for(wake.wait(), HEARTBEAT_SECONDS)
                await asyncio.sleep(COALESCE_SECONDS)
            except TimeoutError:
                await response.write(b": still here\n\n")
    except ConnectionResetError:
        pass  # the page was closed
    return response
