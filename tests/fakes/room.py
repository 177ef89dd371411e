"""A stand-in Room for plugin unit tests: real RoomState, sends recorded instead of sent."""
from __future__ import annotations

from daz.cytube.state import RoomState
from daz.metrics import RoomCounts, RoomRow


class RecordingRoom:
    def __init__(self, room_id: str = "test", channel: str = "testchan", bot_name: str = "daz"):
        self.id = room_id
        self.channel = channel
        self.state = RoomState(channel)
        self.state.bot_name = bot_name
        self.state.bot_rank = 2
        self.state.logged_in = True
        self.state.joined = True
        self.said: list[str] = []
        self.pms: list[tuple[str, str]] = []
        self.emitted: list[tuple[str, object]] = []
        self.connected = True
        self.counts = RoomCounts()

    def metric_row(self) -> RoomRow:
        return (self.id, self.state.joined, 0, 0, self.counts.copy())

    @property
    def bot_name(self) -> str:
        return self.state.bot_name

    def is_self(self, name: str) -> bool:
        mine = self.bot_name
        return self.state.is_self(name) or (bool(mine) and name.lower() == mine.lower())

    async def say(self, text: str, *, user_input: bool = True) -> None:
        self.said.append(text)

    async def pm(self, to: str, text: str, *, user_input: bool = True) -> None:
        self.pms.append((to, text))

    async def emit(self, event: str, payload: object = None) -> None:
        self.emitted.append((event, payload))
