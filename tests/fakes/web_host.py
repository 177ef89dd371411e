"""A web host (daz.web.host.WebHost) with no App behind it: what the web server's tests and the
history benchmark serve pages from."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from daz.bus import Bus
from daz.commands import CommandRegistry
from daz.config import load_config
from daz.cytube.rooms import Rooms
from daz.metrics import Metrics
from tests.fakes.room import RecordingRoom


class StubWebHost:
    def __init__(self, data_dir: Path, *, channel: str = "testchan", token: str = "sekrit",
                 public: bool = True, rooms: Rooms | None = None,
                 commands: CommandRegistry | None = None, bus: Bus | None = None,
                 db: Any = None, started_at: float | None = None) -> None:
        self.config = load_config(None, env={}, overrides={"channel": channel})
        self.config.core.web.token = token
        self.config.core.web.public_aggregates = public
        self.data_dir = data_dir
        self.rooms = rooms if rooms is not None else Rooms([RecordingRoom(channel=channel)])
        self.commands = commands if commands is not None else CommandRegistry()
        self.metrics = Metrics()
        self.bus = bus if bus is not None else Bus()
        self.db = db
        self.state = "running"
        self.started_at = time.time() if started_at is None else started_at
        self.embedded = None
        self.holder = None

    async def health(self) -> tuple[bool, dict[str, Any]]:
        return True, {"status": "ok"}

    async def sample_gauges(self) -> bool:
        return False
