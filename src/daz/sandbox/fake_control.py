"""Server-side actions a test (or the sandbox script) performs on the fake CyTube server; each
reaches the channel's sockets exactly as the real server would send it."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, cast

from daz.cytube.chat_filters import ChatFilter, shown_text
from daz.sandbox import fake_media, fake_users

if TYPE_CHECKING:
    from daz.sandbox.fake_channel import FakeChannel
    from daz.sandbox.fake_cytube import FakeCytubeServer


class ControlMixin:
    channels: dict
    pm_log: list

    def channel(self, name: str) -> FakeChannel:  # provided by FakeCytubeServer
        raise NotImplementedError

    @property
    def _server(self) -> FakeCytubeServer:
        """This object as the one class that mixes these actions in, whose send/broadcast
        helpers they use."""
        return cast("FakeCytubeServer", self)

    async def queue_media(self, channel: str, media: dict, *, after: Any = "end",
                          temp: bool = False, queueby: str = "") -> int:
        """Queue ``media`` ({"id","title","seconds","type","meta"}); after: "end", "next",
        "prepend" or a uid. Returns the new uid."""
        entry = fake_media.queue(self._server, self.channel(channel), media, after=after, temp=temp,
                                 queueby=queueby)
        return entry.uid

    async def set_playlist(self, channel: str, items: list[dict]) -> None:
        fake_media.replace(self._server, self.channel(channel), items)

    async def play(self, channel: str, uid: int, *, current_time: float = 0.0,
                   paused: bool = False) -> None:
        if not fake_media.play(self._server, self.channel(channel), uid, current_time, paused):
            raise KeyError(f"no playlist item with uid {uid} in {channel}")

    async def play_next(self, channel: str) -> None:
        fake_media.advance(self._server, self.channel(channel))

    async def media_update(self, channel: str, current_time: float, paused: bool = False) -> None:
        fake_media.update(self._server, self.channel(channel), current_time, paused)

    async def delete_media(self, channel: str, uid: int) -> None:
        fake_media.delete(self._server, self.channel(channel), uid)

    async def move_media(self, channel: str, uid: int, after: Any) -> None:
        fake_media.move(self._server, self.channel(channel), uid, after)

    async def set_options(self, channel: str, **options: Any) -> None:
        found = self.channel(channel)
        found.options.update(copy.deepcopy(options))
        self._server.broadcast(found, "channelOpts", copy.deepcopy(found.options))

    async def set_chat_filters(self, channel: str, filters: list[ChatFilter | dict]) -> None:
        """Replace the channel's chat filters, as its owner can (an empty list: none at all).
        A filter given in CyTube's JSON shape is checked (ValueError names the bad one)."""
        self.channel(channel).filters = [
            f if isinstance(f, ChatFilter) else ChatFilter.from_payload(f) for f in filters]

    async def set_motd(self, channel: str, motd: str) -> None:
        found = self.channel(channel)
        found.motd = motd
        self._server.broadcast(found, "setMotd", motd)

    async def set_rank(self, channel: str, name: str, rank: float) -> None:
        """setUserRank to all and ``rank`` to the target (stored for accounts)."""
        fake_users.change_rank(self._server, self.channel(channel), name, rank)

    async def kick(self, channel: str, name: str, reason: str = "") -> None:
        found = self.channel(channel)
        member = found.find(name)
        if member is None:
            raise KeyError(f"{name} is not in {channel}")
        fake_users.kick(self._server, found, member, reason)

    async def add_crowd(self, channel: str, count: int, *, prefix: str = "viewer",
                        rank: float = 0) -> list[str]:
        """``count`` logged-in people with no socket (``prefix`` + number); returns the names."""
        names = [f"{prefix}{n}" for n in range(count)]
        fake_users.add_crowd(self._server, self.channel(channel), names, rank)
        return names

    async def whisper(self, channel: str, text: str) -> None:
        """A ``[server]`` line to the channel's rank >= 2 users."""
        fake_users.whisper(self._server, self.channel(channel), text)

    # ------------------------------------------------------------- inspection
    def chat_from(self, channel: str, name: str) -> list[str]:
        """Text of the chat lines from ``name`` the server delivered (after the length cut,
        before escaping; a /me line is its text without "/me ")."""
        lower = name.lower()
        return [line["text"] for line in self.channel(channel).chat_log
                if (line["username"] or "").lower() == lower]

    def shown_chat_from(self, channel: str, name: str) -> list[str]:
        """What the room reads of the chat lines from ``name``: the broadcast HTML as a browser
        shows it (filter formatting is not text)."""
        lower = name.lower()
        return [shown_text(line["msg"]) for line in self.channel(channel).chat_log
                if (line["username"] or "").lower() == lower]

    def dropped_from(self, channel: str, name: str) -> int:
        """Chat lines and PMs from ``name`` the flood throttle dropped."""
        return self.channel(channel).dropped[name.lower()]

    def pms_to(self, name: str) -> list[tuple[str, str]]:
        """(from, text) of the PMs delivered to ``name``, in any channel."""
        lower = name.lower()
        return [(pm["from"], pm["text"]) for pm in self.pm_log if pm["to"].lower() == lower]

    def shown_pms_from(self, name: str) -> list[tuple[str, str]]:
        """(to, what the recipient reads) of the PMs ``name`` sent that were delivered."""
        lower = name.lower()
        return [(pm["to"], shown_text(pm["msg"])) for pm in self.pm_log
                if pm["from"].lower() == lower]

    def pms_from(self, name: str) -> list[tuple[str, str]]:
        """(to, text) of the PMs ``name`` sent that were delivered."""
        lower = name.lower()
        return [(pm["to"], pm["text"]) for pm in self.pm_log if pm["from"].lower() == lower]
