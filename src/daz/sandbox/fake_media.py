"""Playlist and playback on the fake CyTube server (as a live server does them).

With ``auto_playback`` a timed item (seconds > 0) runs like on the real server: changeMedia
with a lead-in (currentTime -lead_in, paused), mediaUpdate at the end of it and every
``update_interval``, and at end + ``end_grace`` (2 s) the next item (a temp item is deleted first).
"""
from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from daz.sandbox.fake_channel import FakeChannel, Member, PlaylistEntry, custom_embed_id

if TYPE_CHECKING:
    from daz.sandbox.fake_cytube import FakeCytubeServer

_IFRAME = re.compile(r"\s*<iframe\b[^>]*>\s*(?:</iframe>)?\s*", re.I | re.S)
_SRC = re.compile(r"""\bsrc\s*=\s*["']([^"']*)["']""", re.I)
_TITLES = {"tw": "Twitch.tv - {id}", "li": "Livestream.com - {id}", "rt": "Livestream",
           "hl": "Livestream"}
_LINKS = {"tw": "https://twitch.tv/{id}", "li": "https://livestream.com/{id}", "rt": "{id}",
          "hl": "{id}", "yt": "https://youtu.be/{id}", "fi": "{id}", "cu": ""}
_REFUSED = {
    "yt": "The YouTube API now requires an API key.  Please see the documentation for "
          "youtube-v3-key in config.template.yaml",
    "fi": "Raw file playback is not enabled on this server",
}


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


def queue(server: FakeCytubeServer, channel: FakeChannel, media: dict, *, after: Any = "end",
          temp: bool = False, queueby: str = "") -> PlaylistEntry:
    entry, after_value = channel.insert(media, after=after, temp=temp, queueby=queueby)
    server.broadcast(channel, "queue", {"item": entry.payload(), "after": after_value})
    server.broadcast(channel, "setPlaylistMeta", channel.playlist_meta())
    if server.auto_playback and channel.current is None:
        play(server, channel, entry.uid)
    return entry


def replace(server: FakeCytubeServer, channel: FakeChannel, items: list[dict]) -> None:
    channel.playlist = []
    for item in items:
        media = item.get("media", item) if isinstance(item, dict) else {}
        channel.insert(media, temp=bool(item.get("temp", False)),
                       queueby=str(item.get("queueby", "")))
    if channel.current is None:
        _stop(server, channel)
    server.broadcast(channel, "setPlaylistMeta", channel.playlist_meta())
    server.broadcast(channel, "playlist", channel.playlist_payload())


def play(server: FakeCytubeServer, channel: FakeChannel, uid: Any,
         current_time: float | None = None, paused: bool = False) -> bool:
    entry = channel.entry(uid)
    if entry is None:
        return False
    server.cancel_timer(channel.playback_timer)
    channel.playback_timer = None
    timed = (entry.media.get("seconds") or 0) > 0
    if current_time is None:
        lead_in = server.auto_playback and timed and server.lead_in > 0
        current_time, paused = (-server.lead_in, True) if lead_in else (0, False)
    channel.current_uid = entry.uid
    channel.current_time, channel.paused = current_time, paused
    server.broadcast(channel, "setCurrent", entry.uid)
    server.broadcast(channel, "changeMedia", channel.change_media_payload())
    server.broadcast(channel, "drinkCount", 0)
    if server.auto_playback and timed:
        _run_clock(server, channel)
    return True


def update(server: FakeCytubeServer, channel: FakeChannel, current_time: float,
           paused: bool = False) -> None:
    channel.current_time, channel.paused = current_time, paused
    server.broadcast(channel, "mediaUpdate", {"currentTime": current_time, "paused": paused})
    if server.auto_playback and channel.current is not None:
        _run_clock(server, channel)


def delete(server: FakeCytubeServer, channel: FakeChannel, uid: Any) -> bool:
    was_current = uid == channel.current_uid and channel.current is not None
    following = channel.after_current() if was_current else None
    entry = channel.remove(uid)
    if entry is None:
        return False
    server.broadcast(channel, "delete", {"uid": entry.uid})
    server.broadcast(channel, "setPlaylistMeta", channel.playlist_meta())
    if was_current:
        if following is None or following is entry:
            _stop(server, channel)
        else:
            play(server, channel, following.uid)
    return True


def move(server: FakeCytubeServer, channel: FakeChannel, uid: Any, after: Any) -> bool:
    if not channel.move(uid, after):
        return False
    server.broadcast(channel, "moveVideo", {"from": uid, "after": after})
    return True


def advance(server: FakeCytubeServer, channel: FakeChannel) -> None:
    """Go to the next item; a finished temp item leaves the playlist."""
    entry = channel.current
    if entry is None:
        if channel.playlist:
            play(server, channel, channel.playlist[0].uid)
        return
    following = channel.after_current()
    if entry.temp:
        delete(server, channel, entry.uid)  # plays the following item itself
    elif following is not None:
        play(server, channel, following.uid)


def clear(server: FakeCytubeServer, channel: FakeChannel) -> None:
    channel.playlist = []
    _stop(server, channel)
    server.broadcast(channel, "playlist", [])
    server.broadcast(channel, "setPlaylistMeta", channel.playlist_meta())


def position_now(channel: FakeChannel) -> float:
    """Where the current item is: by the playback clock while it runs, else as last set."""
    if channel.playback_timer is not None and not channel.paused:
        return _loop_time() - channel.playback_origin
    return channel.current_time


def reload(server: FakeCytubeServer, channel: FakeChannel, position: float) -> None:
    """The channel as a restarted server loads it from its saved state: every item gets a new
    uid (0, 1, ... in playlist order), live items' duration reads "00:00", and the current item
    continues at ``position`` (never before its start)."""
    current = channel.current
    for uid, entry in enumerate(channel.playlist):
        entry.uid = uid
        if not entry.media.get("seconds"):
            entry.media["duration"] = "00:00"
    channel.next_uid = len(channel.playlist)
    channel.playback_timer = None
    if current is None:
        channel.current_uid = None
        return
    channel.current_uid = current.uid
    channel.current_time = max(0.0, round(position, 3))
    if server.auto_playback and (current.media.get("seconds") or 0) > 0 and not channel.paused:
        _run_clock(server, channel)


def _stop(server: FakeCytubeServer, channel: FakeChannel) -> None:
    server.cancel_timer(channel.playback_timer)
    channel.playback_timer = None
    channel.current_uid = None


def _run_clock(server: FakeCytubeServer, channel: FakeChannel) -> None:
    server.cancel_timer(channel.playback_timer)
    channel.playback_origin = _loop_time() - channel.current_time
    if channel.current_time < 0:
        channel.playback_timer = server.call_later(-channel.current_time,
                                                   lambda: _end_lead_in(server, channel))
    else:
        _schedule_tick(server, channel)


def _schedule_tick(server: FakeCytubeServer, channel: FakeChannel) -> None:
    entry = channel.current
    if entry is None:
        return
    position = _loop_time() - channel.playback_origin
    until_end = entry.media.get("seconds", 0) + server.end_grace - position
    channel.playback_timer = server.call_later(min(server.update_interval, until_end),
                                               lambda: _tick(server, channel))


def _end_lead_in(server: FakeCytubeServer, channel: FakeChannel) -> None:
    channel.playback_timer = None
    if channel.current is None:
        return
    channel.current_time, channel.paused = 0, False
    channel.playback_origin = _loop_time()
    server.broadcast(channel, "mediaUpdate", {"currentTime": 0, "paused": False})
    _schedule_tick(server, channel)


def _tick(server: FakeCytubeServer, channel: FakeChannel) -> None:
    channel.playback_timer = None
    entry = channel.current
    if entry is None:
        return
    position = _loop_time() - channel.playback_origin
    if position >= entry.media.get("seconds", 0) + server.end_grace - 1e-3:
        advance(server, channel)
        return
    channel.current_time, channel.paused = round(max(position, 0.0), 3), False
    server.broadcast(channel, "mediaUpdate", {"currentTime": channel.current_time,
                                              "paused": False})
    _schedule_tick(server, channel)


# ------------------------------------------------------------------ client "queue" frames
def client_queue(server: FakeCytubeServer, channel: FakeChannel, member: Member,
                 data: Any) -> None:
    if not isinstance(data, dict) or not member.logged_in:
        return
    perm = "playlistadd" if channel.playlist_locked else "oplaylistadd"
    if member.rank < channel.permissions.get(perm, 1.5):
        return  # silently ignored, as the real server does
    media_id, media_type = data.get("id"), data.get("type")
    if not isinstance(media_id, str) or not isinstance(media_type, str):
        return
    link = _LINKS.get(media_type, "{id}").format(id=media_id)
    fail = lambda msg: server.send(member.sid, "queueFail",  # noqa: E731
                                   {"msg": msg, "link": link, "id": media_id})
    burst, sustained = (10, 2) if member.rank >= 2 else (3, 1)
    if member.queue_throttle.should_drop(burst, sustained):
        fail("You are adding videos too quickly")
        return
    duration = data.get("duration")
    seconds = duration if isinstance(duration, (int, float)) and duration > 0 else 0
    title = data.get("title") if isinstance(data.get("title"), str) else None
    if media_type in _REFUSED:
        fail(_REFUSED[media_type])
        return
    if media_type == "cu":
        if member.rank < channel.permissions.get("playlistaddcustom", 3):
            fail("You don't have permission to add custom embeds")
            return
        if not _IFRAME.fullmatch(media_id):
            fail("Invalid embed.  Input must be an &lt;iframe&gt; tag")
            return
        src = _SRC.search(media_id)
        if src is None or not src.group(1).startswith("https://"):
            fail("Invalid embed. Embed source must be HTTPS, plain HTTP is not supported.")
            return
        media = {"id": custom_embed_id(media_id), "title": title or "Custom Media",
                 "seconds": seconds, "type": "cu",
                 "meta": {"embed": {"tag": "iframe", "src": src.group(1)}}}
    elif media_type in _TITLES:
        if member.rank < channel.permissions.get("playlistaddlive", 1.5):
            return
        if media_type == "hl" and not media_id.startswith("https"):
            fail("HLS links must start with HTTPS due to browser security policy.  "
                 "See https://git.io/vpDLK for details.")
            return
        media = {"id": media_id, "title": title or _TITLES[media_type].format(id=media_id),
                 "seconds": seconds, "type": media_type, "meta": {}}
    else:
        fail(f"Media type {media_type!r} cannot be looked up on this test server")
        return
    if not channel.options.get("allow_dupes") and any(
            e.media["id"] == media["id"] for e in channel.playlist):
        fail("This item is already on the playlist")
        return
    temp = bool(data.get("temp", True))
    if member.rank < channel.permissions.get("addnontemp", 2):
        temp = True
    after = "next" if data.get("pos") == "next" else "end"
    queue(server, channel, media, after=after, temp=temp, queueby=member.name or "")
