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
once the heap has grown by half since the last complete one (``growth``, measured in pymalloc's
allocated blocks: reading that is O(arenas), where counting the frozen objects walks them all,
85 ms at 1,000 rooms). A bot whose rooms are all in (a steady heap) never pays it; one whose
rooms are still joining pays it a few times on the way (about three from 1 to 1,000 rooms).
Every complete collection is logged with its duration and shown on /health under ``heap``.

Only ``daz run`` installs it (``App(keep_heap=True)``): the collector's state is the whole
process's, and tests that run many apps in one process must not find their objects frozen.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from typing import Any

log = logging.getLogger(__name__)

GROWTH = 1.5  # a complete collection once the heap is this much larger than after the last
CHECK_SECONDS = 5.0  # how often the loop looks whether a complete collection is due


class HeapKeeper:
    def __init__(self, *, growth: float = GROWTH, check_seconds: float = CHECK_SECONDS):
        self.growth = growth
        self.check_seconds = check_seconds
        self.baseline = 0  # heap size (``heap_size``) right after the last complete collection
        self.frozen_after_full = 0  # full collections (of the unfrozen part) that froze survivors
        self.complete_collections = 0
        self.last_complete_seconds = 0.0
        self.longest_complete_seconds = 0.0
        self.last_complete_at = 0.0  # time.monotonic() when the last one ended
        self._installed = False
        self._completing = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """A complete collection now (before the rooms: the heap is still small), then keep the
        survivors of every full collection frozen."""
        if self._installed:
            return
        self._installed = True
        self.complete()
        gc.callbacks.append(self._after_collection)
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="heap-keeper")

    async def stop(self) -> None:
        if not self._installed:
            return
        self._installed = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
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

    @property
    def due(self) -> bool:
        return self.heap_size() > self.baseline * self.growth

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.check_seconds)
            if self.due:
                self.complete()

    def complete(self) -> float:
        """Collect everything, frozen or not, and freeze what is left; returns its seconds."""
        before = self.heap_size()
        self._completing = True
        started = time.perf_counter()
        try:
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
        finally:
            self._completing = False
        took = time.perf_counter() - started
        self.baseline = self.heap_size()
        self.complete_collections += 1
        self.last_complete_seconds = took
        self.last_complete_at = time.monotonic()
        self.longest_complete_seconds = max(self.longest_complete_seconds, took)
        # The first one, at start, is routine; the later ones are pauses an operator may see.
        log.log(logging.INFO if self.complete_collections > 1 else logging.DEBUG,
                "heap: complete collection in %.0f ms: %d unreachable object(s) freed; heap"
                " %d blocks (before: %d)", took * 1000, found, self.baseline, before)
        return took

    def status(self) -> dict[str, Any]:
        return {"heap_blocks": self.heap_size(), "baseline_blocks": self.baseline,
                "complete_collections": self.complete_collections,
                "last_complete_ms": round(self.last_complete_seconds * 1000, 1),
                "longest_complete_ms": round(self.longest_complete_seconds * 1000, 1),
                "seconds_since_last_complete": round(time.monotonic() - self.last_complete_at, 1),
                "full_collections_frozen": self.frozen_after_full}
