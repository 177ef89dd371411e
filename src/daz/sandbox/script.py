"""Scripted people for ``daz sandbox``: they join, chat, use the bot's commands, go AFK, leave and
come back, and queue media that plays and advances by itself, in a loop until stopped.

Every line is ordinary chat the real server would carry, including the awkward kinds (image
links, quotes, apostrophes, HTML, greentext, /me). A failing step is logged and skipped, so the
room keeps going whether or not the bot is there.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from daz.sandbox.simulated_user import SimulatedUser

if TYPE_CHECKING:
    from daz.sandbox.fake_cytube import FakeCytubeServer

log = logging.getLogger(__name__)

# name → channel rank (None: a guest). alice may queue custom embeds (rank 3).
CAST: dict[str, float | None] = {"alice": 3, "bob": 1, "dave": 2, "carol": None}

VIDEOS = [
    ("Big Buck Bunny (trailer)", "https://player.example.org/embed/bbb", 60),
    ("Sintel — opening", "https://player.example.org/embed/sintel", 45),
    ("Tears of Steel, part 1", "https://player.example.org/embed/tos", 90),
    ("Elephants Dream", "https://player.example.org/embed/ed", 75),
]


def remote_image(name: str) -> str:
    """A picture on the internet, for a script run without the sandbox's own image host."""
    return f"https://picsum.photos/seed/{name}/400/300.jpg"


class ScriptedRoom:
    def __init__(self, server: FakeCytubeServer, channel: str, *, bot_name: str = "daz",
                 speed: float = 1.0, image_url: Callable[[str], str] = remote_image):
        """``image_url(name)``: the link to a picture for the people to post (``daz sandbox``
        passes its own loopback image host, so the gallery fills with no internet)."""
        self.image_url = image_url
        self.server = server
        self.channel = channel
        self.bot_name = bot_name
        self.speed = max(speed, 0.01)
        self.users: dict[str, SimulatedUser] = {}
        self.rounds = 0
        self._stopping = asyncio.Event()
        self._counter = itertools.count(1)
        for name, rank in CAST.items():
            if rank is not None:
                server.add_account(name, secrets.token_urlsafe(9))
                server.set_channel_rank(channel, name, rank)

    # ---------------------------------------------------------------- running
    async def run(self) -> None:
        """Play the script round after round until ``stop()``."""
        try:
            while not self._stopping.is_set():
                for step in self._steps():
                    if self._stopping.is_set():
                        break
                    try:
                        await step()
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # the show goes on
                        log.warning("sandbox script: step %s failed: %s",
                                    getattr(step, "__name__", step), exc)
                self.rounds += 1
        finally:
            await self._everyone_leaves()

    async def stop(self) -> None:
        self._stopping.set()
        await self._everyone_leaves()

    async def pause(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds / self.speed)

    # --------------------------------------------------------------- people
    async def enter(self, name: str) -> SimulatedUser:
        user = self.users.get(name)
        if user is not None and user.connected:
            return user
        user = await self.server.user(name, channel=self.channel,
                                      guest=CAST.get(name) is None)
        self.users[name] = user
        return user

    async def say(self, name: str, text: str, then: float = 2.0) -> None:
        user = await self.enter(name)
        await user.chat(text)
        await self.pause(then)

    async def leave(self, name: str) -> None:
        user = self.users.pop(name, None)
        if user is not None:
            await user.leave()

    async def _everyone_leaves(self) -> None:
        users, self.users = list(self.users.values()), {}
        for user in users:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(user.leave(), 2.0)

    async def queue_video(self, name: str) -> None:
        if len(self.server.channel(self.channel).playlist) >= 4:
            return  # enough queued; temp items leave as they finish
        title, src, seconds = VIDEOS[next(self._counter) % len(VIDEOS)]
        user = await self.enter(name)
        await user.emit("queue", {
            "id": f'<iframe src="{src}?n={self.rounds}" width="640" height="360"></iframe>',
            "type": "cu", "pos": "end", "temp": True, "title": title,
            "duration": max(1, round(seconds / self.speed))})

    # ----------------------------------------------------------------- script
    def _steps(self) -> list[Callable[[], Awaitable[None]]]:
        bot = self.bot_name
        n = self.rounds + 1
        return [
            lambda: self.say("alice", "hi everyone! 👋 it's movie night", 1.5),
            lambda: self.queue_video("alice"),
            lambda: self.queue_video("alice"),
            lambda: self.say("bob", "hey alice, it's been a while", 2),
            lambda: self.say("bob", "!ping", 3),
            lambda: self.say("carol", "what's this room about? <b>is this bold?</b>", 3),
            lambda: self.say("alice", f"look at this {self.image_url(f'daz{n}')}", 3),
            lambda: self.say("dave", '"quotes", \'apostrophes\' & <script>alert(1)</script> '
                             "should all come through fine", 2),
            lambda: self.say("carol", "!help", 4),
            lambda: self.say("bob", "!seen alice", 3),
            lambda: self.say("dave", "!np", 3),
            lambda: self.say("alice", "> implying the bot keeps up", 2),
            lambda: self.say("bob", "/me grabs some popcorn", 2),
            lambda: self.say("bob", "/afk", 6),
            lambda: self.leave("carol"),
            lambda: self.say("alice", f"!tell carol don't forget round {n + 1} tomorrow", 3),
            lambda: self.say("dave", "!stats", 4),
            lambda: self.say("bob", "back! what did I miss?", 3),
            lambda: self.say("alice", f"{bot}: are you there?", 4),
            lambda: self.queue_video("alice"),
            lambda: self.pause(10),
            lambda: self.say("carol", "I'm back, did anyone leave me a message?", 4),
            lambda: self.say("dave", "brb", 1),
            lambda: self.leave("dave"),
            lambda: self.pause(15),
        ]
