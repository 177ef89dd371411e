"""Frames a client emits to the fake CyTube server. Every payload is checked before use: a
malformed frame is dropped (the real server's typecheck does the same) and never raises."""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from daz.sandbox import fake_chat, fake_media, fake_users
from daz.sandbox.fake_channel import DEFAULT_OPTIONS, FakeChannel, Member

if TYPE_CHECKING:
    import socketio

    from daz.sandbox.fake_cytube import Connection, FakeCytubeServer

log = logging.getLogger(__name__)

RANK_FAIL = "You can't promote or demote someone with equal or higher rank than you."


class ClientEvents:
    def __init__(self, server: FakeCytubeServer):
        self.server = server
        self.received: list[tuple[str, str, Any]] = []   # (sid, event, payload), for tests

    def register(self, sio: socketio.AsyncServer) -> None:
        handlers: dict[str, Callable[[Connection, Any], None]] = {
            "joinChannel": self.join_channel, "login": self.login, "chatMsg": self.chat,
            "pm": self.pm, "queue": self.queue, "delete": self.delete,
            "playNext": self.play_next, "jumpTo": self.jump_to, "moveMedia": self.move_media,
            "requestPlaylist": self.request_playlist, "clearPlaylist": self.clear_playlist,
            "setMotd": self.set_motd, "setOptions": self.set_options,
            "setChannelRank": self.set_channel_rank,
        }
        for event, handler in handlers.items():
            sio.on(event, self._guarded(event, handler))
        sio.on("*", self._unknown)

    def _guarded(self, event: str, handler: Callable[[Connection, Any], None]):
        async def on_event(sid: str, *args: Any) -> None:
            conn = self.server.connections.get(sid)
            if conn is None:
                return
            payload = args[0] if args else None
            self.received.append((sid, event, payload))
            try:
                handler(conn, payload)
            except Exception:
                log.exception("fake cytube: %s frame from %s could not be handled", event, sid)
        return on_event

    async def _unknown(self, event: str, sid: str, *args: Any) -> None:
        self.received.append((sid, event, args[0] if args else None))

    # ------------------------------------------------------------------ users
    def _in_channel(self, conn: Connection) -> tuple[FakeChannel, Member] | None:
        channel = fake_users.channel_of(self.server, conn)
        return (channel, conn.member) if channel is not None else None

    def join_channel(self, conn: Connection, data: Any) -> None:
        if isinstance(data, dict):
            fake_users.join_channel(self.server, conn, data.get("name"))

    def login(self, conn: Connection, data: Any) -> None:
        if isinstance(data, dict):
            fake_users.login(self.server, conn, data.get("name"), data.get("pw"))

    def set_channel_rank(self, conn: Connection, data: Any) -> None:
        found = self._in_channel(conn)
        if found is None or not isinstance(data, dict):
            return
        channel, actor = found
        name, rank = data.get("name"), data.get("rank")
        if not isinstance(name, str) or not isinstance(rank, (int, float)) or actor.rank < 2:
            return
        target = channel.find(name)
        if rank < 1 or rank >= actor.rank or (target is not None and target.rank >= actor.rank):
            self.server.send(conn.sid, "channelRankFail", {"msg": RANK_FAIL})
            return
        fake_users.change_rank(self.server, channel, name, rank)
        if target is not None and target.guest:
            self.server.send(conn.sid, "channelRankFail", {"msg": fake_users.GUEST_PROMOTED})

    # ------------------------------------------------------------------- chat
    def chat(self, conn: Connection, data: Any) -> None:
        found = self._in_channel(conn)
        if found is None or not isinstance(data, dict) or not isinstance(data.get("msg"), str):
            return
        if data.get("meta") is not None and not isinstance(data.get("meta"), dict):
            return
        fake_chat.chat(self.server, *found, data["msg"], data.get("meta"))

    def pm(self, conn: Connection, data: Any) -> None:
        found = self._in_channel(conn)
        if found is None or not isinstance(data, dict):
            return
        msg, to = data.get("msg"), data.get("to")
        if not isinstance(msg, str) or not isinstance(to, str):
            return
        if data.get("meta") is not None and not isinstance(data.get("meta"), dict):
            return
        fake_chat.pm(self.server, *found, msg, to, data.get("meta"))

    def set_motd(self, conn: Connection, data: Any) -> None:
        found = self._in_channel(conn)
        if found is None or not isinstance(data, dict) or not isinstance(data.get("motd"), str):
            return
        channel, member = found
        if member.rank >= channel.permissions.get("motdedit", 3):
            channel.motd = data["motd"]
            self.server.broadcast(channel, "setMotd", channel.motd)

    def set_options(self, conn: Connection, data: Any) -> None:
        found = self._in_channel(conn)
        if found is None or not isinstance(data, dict) or found[1].rank < 2:
            return
        channel = found[0]
        for key, value in data.items():
            if key in DEFAULT_OPTIONS and type(value) is type(DEFAULT_OPTIONS[key]):
                channel.options[key] = copy.deepcopy(value)
        self.server.broadcast(channel, "channelOpts", copy.deepcopy(channel.options))

    # --------------------------------------------------------------- playlist
    def _allowed(self, conn: Connection, permission: str) -> FakeChannel | None:
        found = self._in_channel(conn)
        if found is None:
            return None
        channel, member = found
        return channel if member.rank >= channel.permissions.get(permission, 2) else None

    def queue(self, conn: Connection, data: Any) -> None:
        found = self._in_channel(conn)
        if found is not None:
            fake_media.client_queue(self.server, *found, data)

    def delete(self, conn: Connection, data: Any) -> None:
        channel = self._allowed(conn, "playlistdelete")
        if channel is not None and isinstance(data, int) and not isinstance(data, bool):
            fake_media.delete(self.server, channel, data)

    def play_next(self, conn: Connection, data: Any) -> None:
        channel = self._allowed(conn, "playlistnext")
        if channel is not None:
            fake_media.advance(self.server, channel)

    def jump_to(self, conn: Connection, data: Any) -> None:
        channel = self._allowed(conn, "playlistjump")
        if channel is not None and isinstance(data, int) and not isinstance(data, bool):
            fake_media.play(self.server, channel, data)

    def move_media(self, conn: Connection, data: Any) -> None:
        channel = self._allowed(conn, "playlistmove")
        if channel is None or not isinstance(data, dict):
            return
        source, after = data.get("from"), data.get("after")
        if isinstance(source, int) and (after == "prepend" or isinstance(after, int)):
            fake_media.move(self.server, channel, source, after)

    def request_playlist(self, conn: Connection, data: Any) -> None:
        channel = self._allowed(conn, "seeplaylist")
        if channel is not None:
            self.server.send(conn.sid, "playlist", channel.playlist_payload())

    def clear_playlist(self, conn: Connection, data: Any) -> None:
        channel = self._allowed(conn, "playlistclear")
        if channel is not None:
            fake_media.clear(self.server, channel)
