"""How long a media item actually played, from what the server tells us.

The server reports the position (``changeMedia.currentTime``, then ``mediaUpdate`` every few
seconds) and whether it is paused. Between two reports we credit the smaller of the wall time
that passed and the distance the position moved: a seek forward is not "played", a pause is
not played, a lag in our event handling is not played twice. When the play ends (the next
change, or daz disconnects) we credit the wall time since the last report, up to the end of the
media. ``completed`` is ≥ 90 % of the duration played (live media, with no duration, is never
"completed": there is nothing to complete).

There is one ``Play`` per room (the Go bot had one for all rooms: docs/upgrading-from-go.md).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from daz.db.text import clean_text

COMPLETED_FRACTION = 0.9
# How far back an item may come back after we were away and still be the same play. A restarted
# CyTube reloads the channel from its saved state: the item continues a few seconds behind where
# it was (on a live server, 346 s came back as 338 s), with new uids.
RESUME_REWIND = 30.0
JOIN_REPEAT_REWIND = 5.0  # the join-time repeat of a socket we never lost: the exact position
TITLE_LIMIT = 1000  # titles come from users (custom media, raw files); the column is unbounded
_INT_MAX = 2**31 - 1  # the Go schema's INTEGER duration columns


def db_text(value: object, limit: int) -> str:
    """Text PostgreSQL accepts: no NUL characters and no lone surrogates (either one would fail
    the whole playlist write; NUL is dropped as before, a surrogate becomes U+FFFD), and at most
    ``limit`` characters (the Go columns' lengths)."""
    return clean_text(str(value or "").replace("\x00", ""), limit)


def db_seconds(value: Any) -> int:
    """A duration for an INTEGER column: whole seconds, never negative, never out of range."""
    try:
        return max(0, min(int(value), _INT_MAX))
    except (TypeError, ValueError, OverflowError):
        return 0


def media_url(media_type: str, media_id: str) -> str:
    """The library URL of a media item: exactly the Go Daz mapping, so existing rows match."""
    if media_type == "yt":
        return f"https://www.youtube.com/watch?v={media_id}"
    if media_type == "gd":
        return f"https://drive.google.com/file/d/{media_id}/view"
    if media_type == "vm":
        return f"https://vimeo.com/{media_id}"
    if media_type == "dm":
        return f"https://www.dailymotion.com/video/{media_id}"
    if media_type == "sc":
        return f"https://soundcloud.com/tracks/{media_id}"
    if media_type in ("li", "tw"):
        return f"https://www.twitch.tv/videos/{media_id}"
    if media_type == "cu":
        return media_id
    return f"{media_type}:{media_id}"


# CyTube's own page links per media type, built from the id as its formatLink does (the server's
# utilities; "{id}" alone: the id is itself the URL). Types with no page (a custom embed, an id
# that needs the item's metadata) are left out: people get the title only.
_PAGE_LINKS = {
    "yt": "https://youtu.be/{id}", "vi": "https://vimeo.com/{id}",
    "dm": "https://dailymotion.com/video/{id}", "sc": "{id}", "li": "https://livestream.com/{id}",
    "tw": "https://twitch.tv/{id}", "im": "https://imgur.com/a/{id}",
    "us": "https://ustream.tv/channel/{id}", "gd": "https://docs.google.com/file/d/{id}",
    "fi": "{id}", "hl": "{id}", "sb": "https://streamable.com/{id}",
    "tc": "https://clips.twitch.tv/{id}", "cm": "{id}",
    "bc": "https://www.bitchute.com/video/{id}/", "bn": "https://www.brighteon.com/{id}",
    "nv": "https://www.nicovideo.jp/watch/{id}",
}
_SAFE_ID = re.compile(r"[\w.-]{1,100}", re.ASCII)
_SAFE_URL = re.compile(r"https?://[^\s<>\"]{1,300}", re.I)


def link(media_type: str, media_id: str) -> str:
    """The page people can open for a media item, as CyTube links it; "" when there is none
    (a custom embed, a raw rtmp:// stream, an id that cannot be a page's). The raw id is never
    shown: it means nothing to people."""
    pattern = _PAGE_LINKS.get(media_type)
    if pattern is None:
        return ""
    if pattern == "{id}":
        return media_id if _SAFE_URL.fullmatch(media_id) else ""
    return pattern.format(id=media_id) if _SAFE_ID.fullmatch(media_id) else ""


@dataclass
class Play:
    channel: str
    media_id: str
    media_type: str
    title: str
    duration: int  # seconds; 0 for live
    uid: int | None
    started_at: float  # epoch seconds
    queued_by: str = ""
    play_id: int | None = None  # row in daz_mediatracker_plays
    position: float = 0.0  # last reported position, ≥ 0
    at: float = 0.0  # epoch seconds of that report
    paused: bool = False
    played: float = 0.0  # seconds credited so far
    credited: float = 0.0  # seconds already added to daz_mediatracker_stats.total_duration
    open: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        return (self.media_type, self.media_id)

    def _cap(self, seconds: float) -> float:
        return min(seconds, float(self.duration)) if self.duration > 0 else seconds

    def observe(self, position: float, paused: bool, t: float) -> None:
        """A position report (``mediaUpdate``, or ``changeMedia`` for the same item)."""
        position = max(0.0, position)
        if not self.paused and t > self.at:
            moved = position - self.position
            if moved > 0:
                self.played = self._cap(self.played + min(t - self.at, moved))
        self.position, self.at, self.paused = position, max(t, self.at), paused
        self.open = True

    def close(self, t: float) -> None:
        """The play ended (or we stopped watching) at ``t``."""
        if not self.paused and t > self.at:
            gap = t - self.at
            if self.duration > 0:
                gap = min(gap, max(0.0, self.duration - self.position))
            self.played = self._cap(self.played + gap)
            self.position += gap
            self.at = t
        self.open = False

    def elapsed(self, t: float) -> float:
        """Where playback is now, by the last report and the wall time since."""
        pos = self.position
        if not self.paused and t > self.at and self.open:
            pos += t - self.at
        return self._cap(pos) if self.duration > 0 else pos

    @property
    def completed(self) -> bool:
        return self.duration > 0 and self.played >= COMPLETED_FRACTION * self.duration

    def continues(self, media_type: str, media_id: str, uid: int | None,
                  position: float) -> bool:
        """Is a ``changeMedia`` for this item the same play (join/reconnect repeat) or a new
        one (the same item played again)?

        While we watch (the play is open), the same item (type, id and playlist uid when both
        are known) whose position has not gone back: CyTube repeats ``setCurrent``/
        ``changeMedia`` on every join, with the current position. A replay starts again at the
        lead-in (≤ 0).

        After we were away (the play was closed by a disconnect, or read back after daz's own
        restart), the server may have restarted meanwhile: it renumbers the playlist and puts
        the item back a few seconds. So the uid is not compared, and the position may be up to
        ``RESUME_REWIND`` behind (at most half the item); a replay from the start is further
        back than that unless the play had only just begun.
        """
        if (media_type, media_id) != self.key:
            return False
        if self.open:
            if uid is not None and self.uid is not None and uid != self.uid:
                return False
            rewind = JOIN_REPEAT_REWIND
        else:
            rewind = RESUME_REWIND
        tolerance = rewind if self.duration <= 0 else min(rewind, self.duration / 2)
        return max(0.0, position) >= self.position - tolerance

    def metadata(self) -> dict:
        return {"uid": self.uid, "position": round(self.position, 3),
                "played": round(self.played, 3), "credited": round(self.credited, 3),
                **self.extra}

    def snapshot(self) -> dict:
        """The play as it is now, as JSON (a write held while the database is away)."""
        return asdict(self)

    @classmethod
    def from_snapshot(cls, data: dict) -> Play:
        return cls(**data)
