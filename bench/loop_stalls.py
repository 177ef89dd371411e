"""Runs ``daz`` (arguments as for the ``daz`` command) with a watchdog naming what holds its loop.

Use it as ``DAZ_BENCH_WRAPPER`` with ``DAZ_BENCH_STALLS=<file>``. A callback on the event loop
beats every ``BEAT`` seconds; a thread looks every ``SAMPLE`` seconds and, while the last beat
is older than ``LATE``, records the main thread's stack (``sys._current_frames``). Once the beat
is back after a stall of ``REPORT`` seconds or more, the stall is written as one JSON line:
``start``/``end`` on ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux, so the bench process
can place it in its own timeline) and every distinct stack seen with how often. Collections of
the garbage collector taking ``REPORT_GC`` or more are written too, since the thread cannot
sample while the collector holds the interpreter's lock (nor during any long C call: the stack
it takes afterwards names the line that made the call). With ``DAZ_BENCH_STALLS_WALKS=1``
each collection also records how many objects it walked and, for large walks, of which types
(counted before the collection, on the loop: it lengthens the stalls it is in).
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import threading
import time
import traceback
from collections import Counter
from typing import Any

BEAT = 0.01
SAMPLE = 0.005
LATE = 0.02
REPORT = 0.025
REPORT_GC = 0.01
WALKS = os.environ.get("DAZ_BENCH_STALLS_WALKS") == "1"
WALK_SHOWN = 20_000  # collections walking this many objects have them listed by type
DEPTH = 14  # innermost frames kept per stack


class StallWatch:
    def __init__(self, path: str):
        self.out = open(path, "a", encoding="utf-8", buffering=1)
        self.lock = threading.Lock()
        self.last_beat = time.perf_counter()
        self.main = threading.main_thread().ident
        self.stopped = threading.Event()
        self.gc_started = 0.0
        self.gc_walks = 0
        self.gc_kinds: list[tuple[str, int]] | None = None

    def write(self, record: dict[str, Any]) -> None:
        with self.lock:
            self.out.write(json.dumps(record) + "\n")

    def beat(self, loop: asyncio.AbstractEventLoop) -> None:
        self.last_beat = time.perf_counter()
        if not self.stopped.is_set():
            loop.call_later(BEAT, self.beat, loop)

    def stack(self) -> str | None:
        frame = sys._current_frames().get(self.main)
        if frame is None:
            return None
        frames = traceback.extract_stack(frame)[-DEPTH:]
        return " <- ".join(f"{short(f.filename)}:{f.lineno} {f.name}" for f in reversed(frames))

    def watch(self) -> None:
        stacks: Counter[str] = Counter()
        began = 0.0
        while not self.stopped.wait(SAMPLE):
            beat = self.last_beat
            if time.perf_counter() - beat > LATE:
                if not stacks:
                    began = beat
                stacks[self.stack() or "?"] += 1
            elif stacks:
                if beat - began >= REPORT:
                    self.write({"stall": round(beat - began, 4), "start": began, "end": beat,
                                "stacks": stacks.most_common()})
                stacks = Counter()

    def collector(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            # How many objects the collection will walk (a big generation, or a costly
            # object?), counted before its clock starts; the listing lengthens the stall.
            if WALKS:
                young = [o for g in range(info.get("generation", 0) + 1)
                         for o in gc.get_objects(g)]
                self.gc_walks = len(young)
                self.gc_kinds = Counter(type(o).__qualname__ for o in young).most_common(
                    12) if len(young) >= WALK_SHOWN else None
                del young
            self.gc_started = time.perf_counter()
            return
        took = time.perf_counter() - self.gc_started
        if took >= REPORT_GC:
            self.write({"gc": info.get("generation"), "took": round(took, 4),
                        "start": self.gc_started, "collected": info.get("collected"),
                        "walked": self.gc_walks if WALKS else None, "kinds": self.gc_kinds,
                        "thread": threading.current_thread().name})


def short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def main() -> None:
    path = os.environ.get("DAZ_BENCH_STALLS")
    real_run = asyncio.run
    watch = StallWatch(path) if path else None

    def watched_run(coroutine: Any, **kwargs: Any) -> Any:
        async def inner() -> Any:
            assert watch is not None
            loop = asyncio.get_running_loop()
            watch.beat(loop)
            thread = threading.Thread(target=watch.watch, name="stall-watch", daemon=True)
            thread.start()
            try:
                return await coroutine
            finally:
                watch.stopped.set()
        return real_run(inner(), **kwargs)

    if watch is not None:
        gc.callbacks.append(watch.collector)
        asyncio.run = watched_run  # type: ignore[assignment]  # daz.cli calls asyncio.run
    sys.argv = ["daz", *sys.argv[1:]]
    from daz.cli import main as daz_main

    daz_main()


if __name__ == "__main__":
    main()
