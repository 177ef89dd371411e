"""The set of rooms one daz process runs; plugins find a room by id or by channel name."""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from daz.cytube.room import Room


class Rooms:
    def __init__(self, rooms: list[Room] | None = None) -> None:
        self._rooms: dict[str, Room] = {}
        for room in rooms or ():
            self.add(room)

    def add(self, room: Room) -> None:
        if room.id in self._rooms:
            raise ValueError(f"two rooms have the id {room.id!r}")
        self._rooms[room.id] = room

    def remove(self, room_id: str) -> None:
        self._rooms.pop(room_id, None)

    def get(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    def by_channel(self, channel: str) -> Room | None:
        """The first room on this channel (names compared case-insensitively)."""
        wanted = channel.lower()
        for room in self._rooms.values():
            if room.channel.lower() == wanted:
                return room
        return None

    def __iter__(self) -> Iterator[Room]:
        return iter(list(self._rooms.values()))

    def __len__(self) -> int:
        return len(self._rooms)

    def channels(self) -> list[str]:
        return sorted({room.channel for room in self._rooms.values()})
