"""Time, in one place, so tests can control it. All wall-clock values are UTC.

Code that waits for time to pass (the bus watchdog, plugin timers) waits with ``clock.sleep`` /
``clock.wait``, so a test with a ``FakeClock`` moves time itself: ``await run(seconds)`` walks
through every wake-up in order and lets each woken task do its work before the next one, with
no real waiting; ``advance`` only moves the time (what is due then wakes at the next ``run``).
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
import weakref
from datetime import UTC, datetime
from time import monotonic as _monotonic


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def time(self) -> float:
        """Epoch seconds."""
        return time.time()

    def millis(self) -> int:
        """Epoch milliseconds, CyTube's unit."""
        return int(time.time() * 1000)

    # The bus reads this for every event it hands to a handler: the C function itself, not a
    # method wrapping it.
    monotonic = staticmethod(_monotonic)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait until ``event`` is set (True) or ``seconds`` have passed (False)."""
        if event.is_set():
            return True
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        return True


_NS = 1_000_000_000
_READY_TURNS = 3


def _ns(seconds: float) -> int:
    return round(seconds * _NS)


class _Sleeper:
    __slots__ = ("due", "future", "order", "task")

    def __init__(self, due: int, order: int, future: asyncio.Future, task: asyncio.Task | None):
        self.due = due
        self.order = order
        self.future = future
        self.task = task

    def __lt__(self, other: _Sleeper) -> bool:
        return (self.due, self.order) < (other.due, other.order)


class FakeClock(Clock):
    """A clock that only moves when told to (for tests of cooldowns, windows, timers and the
    bus watchdog). Sleeping on it waits for virtual time, never for real time."""

    def __init__(self, start: float = 1_800_000_000.0):
        self._start = start
        # Time moved, in whole nanoseconds, so that decimal steps add up exactly (9.9 s + 0.1 s
        # reaches a timer due at 10 s, and the epoch time then reads start + 10).
        self._moved_ns = 0
        self._mono_ns = 1000 * _NS
        self._sleepers: list[_Sleeper] = []
        self._order = itertools.count()
        self._woken: list[asyncio.Task] = []  # woken by moving time, not yet settled
        self._settled: asyncio.Event | None = None  # set when a task sleeps here again or ends
        self._watched: weakref.WeakSet[asyncio.Task] = weakref.WeakSet()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def time(self) -> float:
        return self._start + self._moved_ns / _NS

    def millis(self) -> int:
        return int(self.time() * 1000)

    def monotonic(self) -> float:
        return self._mono_ns / _NS

    # ------------------------------------------------------------------ waiting

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(self._mono_ns + _ns(seconds), next(self._order),
                                                future, asyncio.current_task()))
        if self._settled is not None:
            self._settled.set()
        await future

    async def wait(self, event: asyncio.Event, seconds: float) -> bool:
        if event.is_set():
            return True
        waiting = asyncio.ensure_future(event.wait())
        sleeping = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait({waiting, sleeping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (waiting, sleeping):
                task.cancel()
        return event.is_set()

    def sleeping(self) -> int:
        """How many tasks wait on this clock now."""
        return sum(1 for s in self._sleepers if not s.future.done())

    def next_wake(self) -> float | None:
        """Seconds until the earliest sleeper is due, or None when nobody sleeps here."""
        self._forget_cancelled()
        return (self._sleepers[0].due - self._mono_ns) / _NS if self._sleepers else None

    # ------------------------------------------------------------------ moving time

    def advance(self, seconds: float) -> None:
        """Jump ``seconds`` ahead without running anything: what the code reads as now
        changes, and sleepers that became due wake at the next ``run`` (a test that fakes
        "a week later" does not want every timer to fire behind its back)."""
        self._moved_ns += _ns(seconds)
        self._mono_ns += _ns(seconds)

    async def run(self, seconds: float, *, settle_timeout: float = 5.0) -> None:
        """Move ``seconds`` ahead one wake-up at a time: at each due time, wake the sleepers due
        then and wait until every one of them has gone back to sleep on this clock or ended,
        so timers and watchdogs run in order and as often as real time would have run them.
        ``settle_timeout`` (real seconds) bounds each wait: a woken task that neither sleeps
        again nor ends in that time is an error naming it."""
        end = self._mono_ns + _ns(seconds)
        for _ in range(_READY_TURNS):  # tasks just created reach their first sleep
            await asyncio.sleep(0)
        while True:
            self._forget_cancelled()
            if not self._sleepers or self._sleepers[0].due > end:
                break
            self._move_to(self._sleepers[0].due)
            await self._settle(settle_timeout)
        self._move_to(end)
        await self._settle(settle_timeout)

    # ------------------------------------------------------------------ internals

    def _move_to(self, mono_ns: int) -> None:
        if mono_ns > self._mono_ns:
            self._moved_ns += mono_ns - self._mono_ns
            self._mono_ns = mono_ns
        self._wake_due()

    def _forget_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0].future.done():
            heapq.heappop(self._sleepers)

    def _wake_due(self) -> None:
        while self._sleepers and self._sleepers[0].due <= self._mono_ns:
            sleeper = heapq.heappop(self._sleepers)
            if not sleeper.future.done():
                sleeper.future.set_result(None)
                if sleeper.task is not None:
                    self._woken.append(sleeper.task)
                    if sleeper.task not in self._watched:
                        self._watched.add(sleeper.task)
                        sleeper.task.add_done_callback(self._task_ended)

    def _task_ended(self, task: asyncio.Task) -> None:
        if self._settled is not None:
            self._settled.set()

    async def _settle(self, timeout: float) -> None:
        woken, self._woken = self._woken, []
        if self._settled is None:
            self._settled = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._settled.clear()
            await asyncio.sleep(0)  # the woken tasks take their turn
            busy = [t for t in woken if not t.done() and not self._asleep(t)]
            if not busy:
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                names = ", ".join(t.get_name() for t in busy)
                raise TimeoutError(f"FakeClock.run: {names} woke up and neither slept again "
                                   f"nor ended within {timeout}s")
            try:
                await asyncio.wait_for(self._settled.wait(), remaining)
            except TimeoutError:
                pass

    def _asleep(self, task: asyncio.Task) -> bool:
        return any(s.task is task and not s.future.done() for s in self._sleepers)
