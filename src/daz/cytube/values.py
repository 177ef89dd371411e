"""Value objects carried inside events and kept in RoomState: a user, a media item, a playlist
entry. Each parses forgivingly from its payload (payload_reader.py), adding what did not fit to
the caller's ``problems``.

``User`` is the one user value: events carry it (addUser, userlist) and ``RoomState.users``
keeps it. The state keeps its own copy (``User.kept``), so a later rank or AFK change in the
room never rewrites an event already published.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daz.cytube.payload_reader import PayloadReader


@dataclass(slots=True)
class User:
    name: str
    rank: float = 0
    afk: bool = False
    muted: bool = False
    smuted: bool = False
    profile: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    seen_since: float = 0.0  # set by RoomState (kept): when it first saw them this session

    def kept(self, seen_since: float) -> User:
        """A copy for RoomState, first seen at ``seen_since``."""
        return User(self.name, self.rank, self.afk, self.muted, self.smuted, self.profile,
                    self.meta, seen_since)

    @classmethod
    def parse(cls, payload: Any, problems: list[str]) -> User:
        r = PayloadReader(payload)
        meta = r.dict("meta")
        m = PayloadReader(meta, expect_dict=False)
        user = cls(
            name=r.str("name"),
            rank=r.num("rank"),
            afk=m.bool("afk"),
            muted=m.bool("muted"),
            smuted=m.bool("smuted"),
            profile=r.dict("profile"),
            meta=meta,
        )
        problems.extend(r.problems + m.problems)
        return user


@dataclass(slots=True)
class Media:
    id: str
    title: str = ""
    seconds: int = 0  # 0 for live media; use this, not the formatted ``duration``
    duration: str = ""  # "MM:SS", "HH:MM:SS", "--:--" for live
    type: str = ""
    meta: dict = field(default_factory=dict)

    @classmethod
    def parse(cls, payload: Any, problems: list[str]) -> Media:
        r = PayloadReader(payload)
        media = cls(
            id=r.str("id"),
            title=r.str("title"),
            seconds=max(0, r.int("seconds")),
            duration=r.str("duration"),
            type=r.str("type"),
            meta=r.dict("meta"),
        )
        problems.extend(r.problems)
        return media

    @property
    def is_live(self) -> bool:
        return self.seconds <= 0


@dataclass(slots=True)
class PlaylistItem:
    uid: int
    media: Media
    temp: bool = False
    queueby: str = ""

    @classmethod
    def parse(cls, payload: Any, problems: list[str]) -> PlaylistItem:
        r = PayloadReader(payload)
        item = cls(
            uid=r.int("uid", -1),
            media=Media.parse(r.dict("media"), problems),
            temp=r.bool("temp"),
            queueby=r.str("queueby"),
        )
        problems.extend(r.problems)
        return item
