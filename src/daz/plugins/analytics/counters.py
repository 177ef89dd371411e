"""In-memory counts between two flushes (pure data, no I/O).

A ``Batch`` is what happened since the last flush: per channel and UTC hour the messages, joins,
media plays, commands and the *names* of the users who chatted; per channel and user the
messages and the first/last time seen. Each batch carries a unique ``flush_id``; a batch that
failed to write is retried as it is, under the same id, so it can never be applied twice.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime


def hour_of(epoch: float) -> int:
    """Start of the UTC hour, as epoch seconds."""
    return int(epoch // 3600 * 3600)


def day_of(hour_start: int) -> date:
    return datetime.fromtimestamp(hour_start, UTC).date()


@dataclass
class HourCounts:
    messages: int = 0
    joins: int = 0
    plays: int = 0
    commands: int = 0
    users: set[str] = field(default_factory=set)


@dataclass
class UserCounts:
    messages: int = 0
    first: float = 0.0
    last: float = 0.0


@dataclass
class Batch:
    flush_id: uuid.UUID = field(default_factory=uuid.uuid4)
    hours: dict[tuple[str, int], HourCounts] = field(default_factory=dict)
    users: dict[tuple[str, str], UserCounts] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.hours or self.users)

    def hour(self, channel: str, t: float) -> HourCounts:
        key = (channel, hour_of(t))
        counts = self.hours.get(key)
        if counts is None:
            counts = self.hours[key] = HourCounts()
        return counts

    def message(self, channel: str, username: str, t: float) -> None:
        h = self.hour(channel, t)
        h.messages += 1
        h.users.add(username)
        u = self.users.get((channel, username))
        if u is None:
            self.users[(channel, username)] = UserCounts(1, t, t)
        else:
            u.messages += 1
            u.first = min(u.first, t)
            u.last = max(u.last, t)

    def join(self, channel: str, t: float) -> None:
        self.hour(channel, t).joins += 1

    def play(self, channel: str, t: float) -> None:
        self.hour(channel, t).plays += 1

    def command(self, channel: str, t: float) -> None:
        self.hour(channel, t).commands += 1

    def days(self) -> set[tuple[str, date]]:
        return {(channel, day_of(hour)) for channel, hour in self.hours}

    def to_json(self) -> dict:
        """A JSON-able copy (saved at a stop the database did not see; same flush id)."""
        return {"flush_id": str(self.flush_id),
                "hours": [[channel, hour, c.messages, c.joins, c.plays, c.commands,
                           sorted(c.users)] for (channel, hour), c in self.hours.items()],
                "users": [[channel, name, c.messages, c.first, c.last]
                          for (channel, name), c in self.users.items()]}

    @classmethod
    def from_json(cls, data: dict) -> Batch:
        batch = cls(flush_id=uuid.UUID(data["flush_id"]))
        for channel, hour, messages, joins, plays, commands, users in data["hours"]:
            batch.hours[(str(channel), int(hour))] = HourCounts(
                int(messages), int(joins), int(plays), int(commands), set(map(str, users)))
        for channel, name, messages, first, last in data["users"]:
            batch.users[(str(channel), str(name))] = UserCounts(int(messages), float(first),
                                                                float(last))
        return batch

@dataclass
class ChatMark:
    """The newest chat line of a channel stored or counted: its CyTube ms time and the lines
    (sender, message) said in exactly that millisecond (two people can share one)."""
    time: int = 0
    lines: set[tuple[str, str]] = field(default_factory=set)

    def take(self, time: int, username: str, message: str) -> bool:
        """Whether the line is newer than the mark; the mark moves to include it."""
        if time < self.time:
            return False
        key = (username, message)
        if time == self.time:
            if key in self.lines:
                return False
            self.lines.add(key)
            return True
        self.time, self.lines = time, {key}
        return True
