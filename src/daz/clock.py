"""Time, in one place, so tests can control it. All wall-clock values are UTC."""
from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        """Epoch seconds."""
        return time.time()

    def millis(self) -> int:
        """Epoch milliseconds, CyTube's unit."""
        return int(time.time() * 1000)

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock(Clock):
    """A clock that only moves when told to (for tests of cooldowns and windows)."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._now = start
        self._mono = 1000.0

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now, UTC)

    def time(self) -> float:
        return self._now

    def millis(self) -> int:
        return int(self._now * 1000)

    def monotonic(self) -> float:
        return self._mono
