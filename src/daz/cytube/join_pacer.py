"""Connects paced to CyTube's rule, so a bot with many rooms never burns attempts on refusals.

The real server allows 5 socket connects per address and then one per 10 s (a token bucket;
refused attempts take no token, as a live server counts them). A daz process with
more rooms than that on one server would otherwise see most of its first connects refused
and back off in ways that bear no relation to when a token is free. Every room's connect
(first join and reconnect alike) waits here for a token of its server's bucket, first come
first served; /health shows who waits. A refusal anyway (another program on the same
address took tokens) empties our bucket, so the next connect waits a full interval.
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiting: deque = field(default_factory=deque)


def address_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.hostname or url).lower()


class JoinPacer:
    def __init__(self, burst: int = 5, interval_seconds: float = 10.0) -> None:
        self.burst = burst
        self.interval = interval_seconds
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def _bucket(self, address: str) -> _Bucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            bucket = self._buckets[address] = _Bucket(float(self.burst), time.monotonic())
        return bucket

    def _refill(self, bucket: _Bucket) -> None:
        now = time.monotonic()
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) / self.interval)
        bucket.stamp = now

    async def turn(self, url: str, room_id: str, stop: asyncio.Event) -> bool:
        """Wait for a connect token for ``url``'s server; False when ``stop`` was set first."""
        if not self.enabled:
            return True
        bucket = self._bucket(address_of(url))
        bucket.waiting.append(room_id)
        try:
            async with bucket.lock:  # asyncio.Lock wakes waiters in arrival order
                while not stop.is_set():
                    self._refill(bucket)
                    if bucket.tokens >= 1:
                        bucket.tokens -= 1
                        return True
                    try:
                        await asyncio.wait_for(stop.wait(), (1 - bucket.tokens) * self.interval)
                    except TimeoutError:
                        pass
                return False
        finally:
            bucket.waiting.remove(room_id)

    def refused(self, url: str) -> None:
        """The server refused a connect for its rate limit: its bucket is empty."""
        if self.enabled:
            bucket = self._bucket(address_of(url))
            bucket.tokens, bucket.stamp = 0.0, time.monotonic()

    def status(self) -> dict:
        out = {}
        for address, bucket in self._buckets.items():
            self._refill(bucket)
            out[address] = {"tokens": round(bucket.tokens, 2), "waiting": len(bucket.waiting),
                            "queue": list(bucket.waiting)[:50]}
        return out
