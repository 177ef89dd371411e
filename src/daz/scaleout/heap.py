"""Keeping Python's cyclic garbage collector from stopping the event loop as the heap grows.

CPython's collector is not incremental: a full collection walks every tracked object and the
loop waits meanwhile. One process holding 1,000 rooms tracks about 500,000 objects (sockets,
room state, tasks), and with the default thresholds it ran a full collection every half
minute under light load, 0.1–0.5 s each on an idle machine and over a second on a busy one:
the largest pause a `!ping` met in the many-rooms benchmark (issue 13).

``HeapKeeper`` moves what has survived a full collection into the permanent generation
(``gc.freeze()``), which later collections skip. Full collections then only walk what was
allocated since the last one, so they stay short however many rooms the process holds. Frozen
objects are still freed by reference counting; only garbage *cycles* among them wait. So that
those cannot pile up, a complete collection (unfreeze, collect everything, freeze again) runs
once the heap is half again as large as the rooms joined explain (``growth``).

What the rooms explain: the heap is taken as a base (measured by the complete collection at
start, before any room) plus a size per joined room, learnt once the rooms have joined and kept
at the smallest figure seen since (a room joining or leaving moves the expectation, not the
trigger). So joining 1,000 rooms costs no complete collection, where a fixed "the heap grew by
half" costs about three on the way, each 0.2–0.7 s at the end of a fast ramp; garbage cycles
still cannot grow past half the live heap. There is no time-based collection: at 1,000 rooms
each one is a pause of a few hundred milliseconds, and a leak-free bot should never pay it.
While rooms are still joining (held but not joined) the heap is in flux, so nothing is learnt
and no complete collection runs, for at most ``max_postpone`` seconds in a row: a room that
cannot join (its server down, retrying) must not keep the garbage from being collected. Rooms
waiting for their turn to connect count for nothing (they hold little), so a ramp paced over
hours by CyTube's connect limit learns from the rooms already in and goes on as they join.

Between complete collections the young heap (everything not frozen) is collected on a pace
by the loop itself, once every ``collect_seconds``: a full collection of what is not frozen,
whose survivors are then frozen. Left to itself, CPython collects its youngest generation when
more objects were allocated than freed since the last collection; a bot keeping bounded
histories frees an old object for every new one, so that count hardly moves while the young
list grows: at 1,000 rooms, "young" collections walked 48,000 objects (12 ms) and full ones
125,000 (35 ms), pauses a `!ping` met. Collected every second, each walk covers one second's
survivors: 4–7 ms at 1,000 rooms, 10–19 ms at most over ten minutes. A collection
slower than ``PACE_TARGET`` brings the next one sooner (down to a tenth of the interval), so a
burst (1,000 rooms joining) is walked in smaller pieces. CPython's own trigger stays on, with a
threshold high enough that it only acts when the loop cannot. Freezing after a second rather
than after several costs little: the full collections of the benchmark found 0–90 unreachable
objects each, so garbage cycles among what gets frozen are rare, and the complete collection
below still reclaims them.

The heap is measured in pymalloc's allocated blocks (O(arenas) to read, where counting the
frozen objects walks them all, 85 ms at 1,000 rooms). Every complete collection is logged with
its duration; /health shows the figures under ``heap``.

Only ``daz run`` installs it (``App(keep_heap=True)``): the collector's state is the whole
process's, and tests that run many apps in one process must not find their objects frozen.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

GROWTH = 1.5  # a complete collection once the heap is this much larger than the rooms explain
CHECK_SECONDS = 5.0  # how often the loop looks whether a complete collection is due
MAX_POSTPONE = 600.0  # rooms joining hold a due complete collection back at most this long
COLLECT_SECONDS = 1.0  # the young heap's paced collection, when it is quick
PACE_TARGET = 0.005  # a paced collection slower than this comes sooner next time (at most 10x)
# CPython's automatic collection, while the pace runs: only for bursts the loop cannot keep
# up with (the default first threshold is 700).
BACKSTOP_THRESHOLD = (20_000, 10, 10)

RoomCount = Callable[[], tuple[int, int]]  # (rooms held, of which still joining)


def no_rooms() -> tuple[int, int]:
    return 0, 0


class HeapKeeper:
    def __init__(self, *, rooms: RoomCount = no_rooms, growth: float = GROWTH,
                 check_seconds: float = CHECK_SECONDS, max_postpone: float = MAX_POSTPONE,
                 collect_seconds: float = COLLECT_SECONDS):
        self.rooms = rooms
        self.collect_seconds = collect_seconds
        self.pace_seconds = collect_seconds  # the wait now (shorter while collections are slow)
        self.paced_collections = 0
        self.last_paced_seconds = 0.0
        self.longest_paced_seconds = 0.0
        self._threshold_before: tuple[int, int, int] | None = None
        self.growth = growth
        self.check_seconds = check_seconds
        self.max_postpone = max_postpone
        self.base = 0  # heap size (``heap_size``) after the complete collection at start
        self.per_room: float | None = None  # heap per joined room beyond the base, once learnt
        self.baseline = 0  # heap size right after the last complete collection
        self.frozen_after_full = 0  # full collections (of the unfrozen part) that froze survivors
        self.complete_collections = 0
        self.last_complete_seconds = 0.0
        self.last_complete_at = 0.0  # time.monotonic() when the last one ended
        self.longest_complete_seconds = 0.0
        self.postponed = 0  # checks that found one due but rooms joining
        self.joining_since: float | None = None  # monotonic, while rooms keep joining
        self._installed = False
        self._completing = False
        self._task: asyncio.Task | None = None
        self._pace_task: asyncio.Task | None = None

    def start(self) -> None:
        """A complete collection now (before the rooms: the heap is still small, and what is
        left is the base), then keep the survivors of every full collection frozen."""
        if self._installed:
            return
        self._installed = True
        self.complete()
        gc.callbacks.append(self._after_collection)
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._watch(), name="heap-keeper")
        if self.collect_seconds > 0:
            self._threshold_before = gc.get_threshold()
            gc.set_threshold(*BACKSTOP_THRESHOLD)
            self._pace_task = loop.create_task(self._pace(), name="heap-keeper:pace")

    async def stop(self) -> None:
        if not self._installed:
            return
        self._installed = False
        tasks = [t for t in (self._task, self._pace_task) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._threshold_before is not None:
            gc.set_threshold(*self._threshold_before)
            self._threshold_before = None
        try:
            gc.callbacks.remove(self._after_collection)
        except ValueError:
            pass
        gc.unfreeze()  # what the process keeps after stopping is collected as Python would

    def _after_collection(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector, in whatever thread allocated: no collecting here, only the
        # freeze (a list splice) of what this full collection found alive.
        if phase != "stop" or info.get("generation") != 2 or self._completing:
            return
        gc.freeze()
        self.frozen_after_full += 1

    @staticmethod
    def heap_size() -> int:
        """Allocated pymalloc blocks; the frozen objects' count where pymalloc is off (slow)."""
        return sys.getallocatedblocks() or gc.get_freeze_count()

    def joined(self) -> int:
        held, joining = self.rooms()
        return held - joining

    def explained(self, joined: int) -> float:
        """The heap the base and ``joined`` rooms account for (the base alone until learnt)."""
        return self.base + joined * (self.per_room or 0.0)

    def _room_share(self, heap: int, joined: int) -> float:
        return max(0.0, (heap - self.base) / joined)

    def check(self) -> bool:
        """One look: learn the rooms' share, or run a complete collection when it is due.
        True when one ran."""
        held, joining = self.rooms()
        now = time.monotonic()
        if joining:
            if self.joining_since is None:
                self.joining_since = now
            if now - self.joining_since < self.max_postpone:
                if self._due(held - joining):
                    self.postponed += 1
                return False
        else:
            self.joining_since = None
        heap = self.heap_size()
        joined = held - joining  # a room still waiting for its turn to connect holds little
        if joined and self.per_room is None:
            self.per_room = self._room_share(heap, joined)  # the rooms are in: what they take
            log.info("heap: %d room(s) joined, %.0f blocks each beyond a base of %d", joined,
                     self.per_room, self.base)
            return False
        if heap > self.growth * self.explained(joined):
            self.complete()
            return True
        if joined and self.per_room is not None:
            # The smallest share seen keeps the bound tight once fixed costs (the first room's
            # imports, caches) are spread over more rooms.
            self.per_room = min(self.per_room, self._room_share(heap, joined))
        return False

    @property
    def due(self) -> bool:
        return self._due(self.joined())

    def _due(self, joined: int) -> bool:
        if joined and self.per_room is None:
            return False
        return self.heap_size() > self.growth * self.explained(joined)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            self.check()

    async def _pace(self) -> None:
        while True:
            await asyncio.sleep(self.pace_seconds)
            self.pace_seconds = self.next_pace(self.collect_young())

    def next_pace(self, took: float) -> float:
        """The wait before the next paced collection: halved (down to a tenth of
        ``collect_seconds``) after a slow one, doubled back after a quick one. While a burst
        allocates (1,000 rooms joining), each collection then walks a tenth as much."""
        if took > PACE_TARGET:
            return max(self.collect_seconds / 10, self.pace_seconds / 2)
        if took < PACE_TARGET / 2:
            return min(self.collect_seconds, self.pace_seconds * 2)
        return self.pace_seconds

    def collect_young(self) -> float:
        """One full collection of what is not frozen (its callback freezes the survivors);
        returns its seconds."""
        started = time.perf_counter()
        gc.collect()
        took = time.perf_counter() - started
        self.paced_collections += 1
        self.last_paced_seconds = took
        self.longest_paced_seconds = max(self.longest_paced_seconds, took)
        return took

    def complete(self) -> float:
        """Collect everything, frozen or not, and freeze what is left; returns its seconds."""
        before = self.heap_size()
        self._completing = True
        started = time.perf_counter()
        try:
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
            # CPython defers the next full collection until a quarter of what this one kept
            # has been promoted since, and then walks all of that: a collection of the (now
            # empty) young heap makes "what it kept" nothing, so later full ones stay small.
            gc.collect()
        finally:
            self._completing = False
        took = time.perf_counter() - started
        self.baseline = self.heap_size()
        joined = self.joined()
        if not joined or not self.complete_collections:
            self.base = self.baseline  # what the process holds before or without rooms
        else:
            self.per_room = self._room_share(self.baseline, joined)  # the live rooms' share
        self.complete_collections += 1
        self.last_complete_seconds = took
        self.last_complete_at = time.monotonic()
        self.longest_complete_seconds = max(self.longest_complete_seconds, took)
        # The first one, at start, is routine; the later ones are pauses an operator may see.
        log.log(logging.INFO if self.complete_collections > 1 else logging.DEBUG,
                "heap: complete collection in %.0f ms: %d unreachable object(s) freed; heap"
                " %d blocks (before: %d), %d room(s)", took * 1000, found, self.baseline,
                before, joined)
        return took

    def status(self) -> dict[str, Any]:
        held, joining = self.rooms()
        return {"heap_blocks": self.heap_size(), "baseline_blocks": self.baseline,
                "base_blocks": self.base, "rooms_held": held, "rooms_joining": joining,
                "per_room_blocks": None if self.per_room is None else round(self.per_room),
                "complete_at_blocks": round(self.growth * self.explained(held - joining))
                if held == joining or self.per_room is not None else None,
                "complete_collections": self.complete_collections,
                "postponed_while_joining": self.postponed,
                "last_complete_ms": round(self.last_complete_seconds * 1000, 1),
                "longest_complete_ms": round(self.longest_complete_seconds * 1000, 1),
                "seconds_since_last_complete": round(time.monotonic() - self.last_complete_at, 1),
                "full_collections_frozen": self.frozen_after_full,
                "paced_collections": self.paced_collections,
                "last_paced_ms": round(self.last_paced_seconds * 1000, 2),
                "longest_paced_ms": round(self.longest_paced_seconds * 1000, 2),
                "pace_seconds": self.pace_seconds}
