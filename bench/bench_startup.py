"""Start-up: ``daz run`` (a real process) until /health answers 200, which needs the database
up and every room joined, with an existing, already migrated database (a first run creates and
migrates it and is not timed). 1 room and 20 rooms on the fake CyTube server, every default
plugin on, the web server on.

Measured against, in the same run: the floor of any Python daz, i.e. a process that only starts
the interpreter and imports daz, its dependencies and every plugin, then exits.
"""
from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench.common import QUICK, report, run, scratch_database, sized, test_dsn
from bench.daz_process import DazProcess, free_port, prepare_server, write_config
from daz.sandbox.fake_cytube import FakeCytubeServer

ROUNDS = sized(5, 1)
IMPORTS = ("import daz.cli, daz.app, daz.web.server, daz.web.pages; "
           "from daz.plugins.manager import available_plugins; available_plugins()")


def process_time(code: str) -> float:
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


async def start_once(server_url: str, dsn: str, channels: list[str], work: Path,
                     n: int) -> float:
    port = free_port()
    config = write_config(work / f"config-{n}.json", server_url, dsn, channels, port)
    daz = DazProcess(config, work / "data", port, work / "daz.log")
    daz.start()
    try:
        return await daz.wait_healthy()
    finally:
        code = await daz.stop()
        if code not in (0, -15):
            print(f"  (daz run exited with {code}; see {work / 'daz.log'})")


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    dsn = await scratch_database(test_dsn(), "daz_bench_startup")
    rooms = {1: ["benchchan"], 20: [f"benchchan{i:02d}" for i in range(20)]}
    if QUICK:  # one daz process less: the 20-room start only in full runs
        del rooms[20]
    # The real server limits new connections per address; the bot's 20 rooms come from one.
    server = FakeCytubeServer(connect_burst=1000, connect_refill_per_s=1000)
    await server.start()
    prepare_server(server, [channel for channels in rooms.values() for channel in channels])
    results: dict[int, list[float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            first = await start_once(server.base_url, dsn, rooms[max(rooms)], work, 0)
            print(f"  first run (creates and migrates the database, not counted): {first:.2f} s")
            for count, channels in rooms.items():
                results[count] = [await start_once(server.base_url, dsn, channels, work, i)
                                  for i in range(ROUNDS)]
                print(f"  {count} room(s): " + ", ".join(f"{t:.2f} s" for t in results[count]))
    finally:
        await server.stop()
    report("bare interpreter (python -c pass)", process_time("pass") * 1000, "ms",
           "same run")
    floor = process_time(IMPORTS)
    report("interpreter + import daz and every plugin", floor * 1000, "ms",
           "floor of any Python daz, same run")
    for count, times in results.items():
        median = statistics.median(times)
        report(f"daz run → /health 200, {count} room(s), migrated DB", median * 1000, "ms",
               f"median of {ROUNDS}; {median / floor:.1f}× the import floor")


if __name__ == "__main__":
    run(main())
