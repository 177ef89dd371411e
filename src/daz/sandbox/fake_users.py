"""Joining, logging in, leaving, ranks, AFK and kicks on the fake CyTube server, in the order
the real server sends things (as seen on a live server)."""
from __future__ import annotations

import asyncio
import copy
from typing import TYPE_CHECKING, Any, ClassVar

from daz.sandbox.chat_format import is_valid_channel_name, is_valid_user_name, js_number
from daz.sandbox.fake_channel import EMPTY_HASH, FakeChannel, Member
from daz.sandbox.limits import ChatThrottle

if TYPE_CHECKING:
    from daz.sandbox.fake_cytube import Connection, FakeCytubeServer

INVALID_NAME = ("Invalid username.  Usernames must be 1-20 characters long and consist only of "
                "characters a-z, A-Z, 0-9, -, or _.")
BAD_PASSWORD = "Invalid username/password combination"
NAME_REGISTERED = "That username is registered."
NAME_IN_USE = "That name is already in use on this channel."
GUEST_PROMOTED = ("The user you promoted is not a registered account.  Any rank changes are "
                  "temporary and not stored in the database.")


def channel_of(server: FakeCytubeServer, conn: Connection) -> FakeChannel | None:
    if conn.channel is None or conn.sid not in server.channels.get(conn.channel, _NONE).members:
        return None
    return server.channels[conn.channel]


class _Empty:
    members: ClassVar[dict[str, Any]] = {}


_NONE = _Empty()


def join_channel(server: FakeCytubeServer, conn: Connection, name: object) -> None:
    if conn.channel is not None or not is_valid_channel_name(name):
        return
    channel = server.channel(name)  # type: ignore[arg-type]
    conn.channel = channel.name
    member = conn.member
    if member.logged_in and not member.guest:
        _kick_duplicate(server, channel, member)
    channel.members[conn.sid] = member
    send = lambda event, *args: server.send(conn.sid, event, *args)  # noqa: E731
    send("rank", js_number(member.rank))
    send("setPermissions", dict(channel.permissions))
    send("setPlaylistLocked", channel.playlist_locked)
    send("emoteList", [])
    for line in channel.history:
        send("chatMsg", copy.deepcopy(line))
    send("drinkCount", 0)
    send("channelCSSJS", {"css": "", "cssHash": EMPTY_HASH, "js": "", "jsHash": EMPTY_HASH})
    send("setMotd", channel.motd)
    send("channelOpts", copy.deepcopy(channel.options))
    send("setPlaylistMeta", channel.playlist_meta())
    send("playlist", channel.playlist_payload())
    if channel.current is not None:
        send("setCurrent", channel.current_uid)
        send("setCurrent", channel.current_uid)
        send("changeMedia", channel.change_media_payload())
    send("userlist", channel.userlist(member.rank))
    usercount_changed(server, channel)  # the joiner's usercount is this (throttled) broadcast
    if not channel.registered:
        send("channelNotRegistered")
    if member.logged_in:
        _announce(server, channel, member)


def login(server: FakeCytubeServer, conn: Connection, name: object, password: object) -> None:
    member = conn.member
    if member.logged_in:
        return
    if isinstance(password, str) and password:
        _registered_login(server, conn, name, password[:100])
    else:
        _guest_login(server, conn, name)


def _refuse(server: FakeCytubeServer, conn: Connection, error: str) -> None:
    server.send(conn.sid, "login", {"success": False, "error": error})


def _registered_login(server: FakeCytubeServer, conn: Connection, name: object,
                      password: str) -> None:
    account = server.accounts.get(name.lower()) if isinstance(name, str) else None
    if account is None or account.password != password:
        _refuse(server, conn, BAD_PASSWORD)
        return
    member = conn.member
    member.name, member.guest, member.rank = account.name, False, account.global_rank
    channel = channel_of(server, conn)
    if channel is not None:
        _kick_duplicate(server, channel, member)
    server.send(conn.sid, "rank", js_number(member.rank))
    server.send(conn.sid, "login", {"success": True, "name": account.name})
    if channel is not None:
        _announce(server, channel, member)


def _guest_login(server: FakeCytubeServer, conn: Connection, name: object) -> None:
    last = server._guest_logins.get(conn.ip)
    now = server.clock.monotonic()
    if last is not None and now - last < server.guest_login_delay:
        delay = js_number(float(server.guest_login_delay))
        _refuse(server, conn, f"Guest logins are restricted to one per IP address per {delay} "
                              "seconds.")
        return
    if not is_valid_user_name(name):
        _refuse(server, conn, INVALID_NAME)
        return
    assert isinstance(name, str)
    if name.lower() in server.accounts:
        _refuse(server, conn, NAME_REGISTERED)
        return
    channel = channel_of(server, conn)
    if channel is not None and channel.find(name) is not None:
        _refuse(server, conn, NAME_IN_USE)
        return
    server._guest_logins[conn.ip] = now
    member = conn.member
    member.name, member.guest, member.rank = name, True, 0
    server.send(conn.sid, "rank", 0)
    server.send(conn.sid, "login", {"success": True, "name": name, "guest": True})
    if channel is not None:
        _announce(server, channel, member)


def _announce(server: FakeCytubeServer, channel: FakeChannel, member: Member) -> None:
    """What follows a login inside a channel: addUser, the channel rank, the mods' whisper."""
    server.broadcast_each(channel, "addUser",
                          lambda viewer: channel.user_payload(member, viewer.rank))
    if not member.guest:
        stored = channel.ranks.get(member.name.lower(), 0)  # type: ignore[union-attr]
        if stored > member.rank:
            _set_member_rank(server, channel, member, stored)
        server.send(member.sid, "setPlaylistMeta", channel.playlist_meta())
        server.send(member.sid, "playlist", channel.playlist_payload())
        server.broadcast(channel, "setUserRank",
                         {"name": member.name, "rank": js_number(member.rank)})
    whisper(server, channel, f"{member.name} joined (aliases: {member.name})")


def add_crowd(server: FakeCytubeServer, channel: FakeChannel, names: list[str],
              rank: float) -> None:
    """Logged-in people without a socket of their own (a test needs 50,000 of them, not 50,000
    sockets): in the userlist and usercount, announced to those present like any arrival."""
    # Only sockets are told (a crowd member has none): one check, not one per member.
    watched = any(sid in server.connections for sid in channel.members)
    for name in names:
        member = Member(sid=f"crowd:{channel.name}:{name.lower()}", ip=server.next_ip(),
                        throttle=ChatThrottle(server.clock),
                        queue_throttle=ChatThrottle(server.clock), name=name, rank=rank,
                        guest=rank < 1)
        channel.members[member.sid] = member
        if watched:
            def payload_for(viewer: Member, m: Member = member) -> dict[str, Any]:
                return channel.user_payload(m, viewer.rank)

            server.broadcast_each(channel, "addUser", payload_for)
    usercount_changed(server, channel)


def whisper(server: FakeCytubeServer, channel: FakeChannel, text: str, min_rank: float = 2) -> None:
    server.broadcast(channel, "chatMsg", {
        "username": "[server]", "msg": text,
        "meta": {"addClass": "server-whisper", "addClassToNameAndTimestamp": True},
        "time": server.clock.millis()}, min_rank=min_rank)


def _set_member_rank(server: FakeCytubeServer, channel: FakeChannel, member: Member,
                     rank: float) -> None:
    old = member.rank
    member.rank = rank
    server.send(member.sid, "rank", js_number(rank))
    if old < 2 <= rank:
        server.send(member.sid, "userlist", channel.userlist(rank))


def change_rank(server: FakeCytubeServer, channel: FakeChannel, name: str, rank: float) -> bool:
    """Set a channel rank (stored for accounts); True when the target is online."""
    if name.lower() in server.accounts:
        channel.ranks[name.lower()] = rank
    member = channel.find(name)
    if member is None:
        return False
    _set_member_rank(server, channel, member, rank)
    server.broadcast(channel, "setUserRank", {"name": member.name, "rank": js_number(rank)})
    return True


def set_afk(server: FakeCytubeServer, channel: FakeChannel, member: Member, afk: bool) -> None:
    if member.afk == afk:
        return
    member.afk = afk
    server.broadcast_each(channel, "setUserMeta", lambda viewer: {
        "name": member.name, "meta": channel.user_meta(member, viewer.rank)})
    server.broadcast(channel, "setAFK", {"name": member.name, "afk": afk})
    if afk:
        server.send(member.sid, "clearVoteskipVote")


def remove_member(server: FakeCytubeServer, channel: FakeChannel, member: Member) -> None:
    """Take a member out now (others see userLeave); its socket is dropped after what was queued."""
    if channel.members.pop(member.sid, None) is None:
        return
    conn = server.connections.get(member.sid)
    if conn is not None:
        conn.gone = True
    if member.logged_in:
        server.broadcast(channel, "userLeave", {"name": member.name})
    usercount_changed(server, channel)
    server.drop(member.sid)


def kick(server: FakeCytubeServer, channel: FakeChannel, member: Member, reason: str) -> None:
    server.send(member.sid, "kick", {"reason": reason})
    remove_member(server, channel, member)


def _kick_duplicate(server: FakeCytubeServer, channel: FakeChannel, member: Member) -> None:
    old = channel.find(member.name or "")
    if old is not None and old.sid != member.sid:
        server.duplicate_logins[channel.name] = server.duplicate_logins.get(channel.name, 0) + 1
        kick(server, channel, old, "Duplicate login")


def leave_channel(server: FakeCytubeServer, conn: Connection) -> None:
    """The socket went away by itself."""
    channel = server.channels.get(conn.channel or "")
    if channel is None or channel.members.pop(conn.sid, None) is None:
        return
    if conn.member.logged_in:
        server.broadcast(channel, "userLeave", {"name": conn.member.name})
    usercount_changed(server, channel)


def usercount_changed(server: FakeCytubeServer, channel: FakeChannel) -> None:
    """The real server sends usercount at most once per 10 s per channel, the latest count."""
    if channel.usercount_timer is not None:
        return
    now = asyncio.get_running_loop().time()
    wait = channel.usercount_last + server.usercount_interval - now
    if wait <= 0:
        _send_usercount(server, channel)
    else:
        channel.usercount_timer = server.call_later(wait, lambda: _send_usercount(server, channel))


def _send_usercount(server: FakeCytubeServer, channel: FakeChannel) -> None:
    channel.usercount_timer = None
    channel.usercount_last = asyncio.get_running_loop().time()
    server.broadcast(channel, "usercount", len(channel.members))
