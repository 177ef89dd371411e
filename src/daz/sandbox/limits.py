"""The two rate limits of CyTube that a bot runs into: the per-socket chat throttle and the
per-IP connect bucket. Both take a clock so tests can freeze time."""
from __future__ import annotations

from typing import Protocol


class MonotonicClock(Protocol):
    def monotonic(self) -> float: ...


class ChatThrottle:
    """CyTube's per-socket message throttle (utilities.js ``newRateLimiter``), as measured.

    After ``cooldown`` seconds of quiet the counter restarts; up to ``burst`` messages pass at once;
    beyond that one passes per ``1/sustained`` seconds since the last one that passed. A dropped
    message does not move the reference time, which is why 60 messages at 20/s pass 40.
    """

    def __init__(self, clock: MonotonicClock):
        self._clock = clock
        self._count = 0
        self._last: int | None = None

    def should_drop(self, burst: float, sustained: float, cooldown: float | None = None) -> bool:
        burst = as_number(burst, 10.0)
        sustained = as_number(sustained, 2.0)
        if sustained <= 0:
            sustained = 2.0
        cooldown = as_number(cooldown, burst / sustained)
        now = round(self._clock.monotonic() * 1000)  # whole milliseconds, like Date.now()
        if self._last is None or self._last < now - cooldown * 1000:
            self._count = 1
            self._last = now
            return False
        if self._count < burst:
            self._count += 1
            self._last = now
            return False
        if now - self._last < 1000 / sustained:
            return True
        self._last = now
        return False


class TokenBucket:
    """``capacity`` tokens, refilled at ``refill_per_s``; a refused take costs nothing."""

    def __init__(self, capacity: float, refill_per_s: float, clock: MonotonicClock):
        self._clock = clock
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self._tokens = float(capacity)
        self._at = clock.monotonic()

    def try_take(self) -> bool:
        now = self._clock.monotonic()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.refill_per_s)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def as_number(value, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return default if number != number else number  # NaN → default, like JS isNaN
