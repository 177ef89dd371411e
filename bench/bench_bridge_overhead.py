"""What the Kryten bridge costs per event (issue 13, item 4), measured several times in one run.

The end-to-end ingest of bench_e2e_ingest (the fake CyTube server in its own process floods
one room with chat → daz with every default plugin → ``daz_core_events``), with the bridge off
and on (every event published to NATS in the Kryten envelope), in alternating pairs so that a
change in the machine's load falls on both sides. One figure from one pair was swamped by the
load of a shared machine; the median of several, with their spread, is not.

Per pair: the rate (events ÷ seconds until the last row is committed) and daz's CPU time per
event (steadier on a loaded machine: it does not count the time daz waited for a core). The
bridge's cost is the difference of the two, per pair; the figures are that difference's median
and its spread over the pairs, and the same for the rate. ``DAZ_BENCH_PAIRS`` (5) and
``DAZ_BENCH_EVENTS`` (40,000) size the run. NATS: the server on 127.0.0.1:4222 when it
answers, else one started for the run (as the tests do).
"""
from __future__ import annotations

import logging
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench.bench_e2e_ingest import through_daz
from bench.common import report, run, scratch_database, sized, test_dsn
from bench.flood_server import FloodServer
from tests.nats_server import nats_server

PAIRS = int(os.environ.get("DAZ_BENCH_PAIRS", sized(5, 2)))
EVENTS = int(os.environ.get("DAZ_BENCH_EVENTS", sized(40_000, 5_000)))


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):,.1f}, min {min(values):,.1f}, " \
           f"max {max(values):,.1f}"


async def one(server: FloodServer, round_no: int, side: str, nats_url: str) -> dict:
    dsn = await scratch_database(test_dsn(), f"daz_bench_bridge_{side}_{round_no}")
    result = await through_daz(server, dsn, events=EVENTS,
                               nats_url=nats_url if side == "on" else "")
    result["cpu_per_event"] = result["cpu"] * result["seconds"] / EVENTS * 1e6
    published = (result["bridge"] or {}).get("counts", {}).get("published", 0)
    print(f"  pair {round_no + 1}, bridge {side:>3}: {result['rate']:8,.0f} events/s, daz CPU "
          f"{result['cpu_per_event']:5.1f} µs/event ({result['cpu'] * 100:3.0f} % of a core), "
          f"lost {result['lost']}, published {published:,}, load average "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    return result


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    server = FloodServer()
    await server.start()
    pairs: list[tuple[dict, dict]] = []
    try:
        with nats_server() as url:
            print(f"  {PAIRS} pairs of {EVENTS:,} chat frames, all default plugins; NATS {url}; "
                  f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start")
            for i in range(PAIRS):
                order = ("off", "on") if i % 2 == 0 else ("on", "off")
                got = {side: await one(server, i, side, url) for side in order}
                pairs.append((got["off"], got["on"]))
    finally:
        await server.stop()
    off_rate = [off["rate"] for off, _ in pairs]
    on_rate = [on["rate"] for _, on in pairs]
    off_cpu = [off["cpu_per_event"] for off, _ in pairs]
    on_cpu = [on["cpu_per_event"] for _, on in pairs]
    cost_cpu = [b - a for a, b in zip(off_cpu, on_cpu, strict=True)]
    cost_wall = [(1 / on["rate"] - 1 / off["rate"]) * 1e6 for off, on in pairs]
    lost = sum(off["lost"] + on["lost"] for off, on in pairs)
    report("ingest, bridge off (median of pairs)", statistics.median(off_rate), "events/s",
           spread(off_rate))
    report("ingest, bridge on (median of pairs)", statistics.median(on_rate), "events/s",
           spread(on_rate))
    report("daz CPU per event, bridge off", statistics.median(off_cpu), "µs", spread(off_cpu))
    report("daz CPU per event, bridge on", statistics.median(on_cpu), "µs", spread(on_cpu))
    report("the bridge's CPU per event (on − off, per pair)", statistics.median(cost_cpu), "µs",
           spread(cost_cpu))
    report("the bridge's time per event (1/rate on − off)", statistics.median(cost_wall), "µs",
           spread(cost_wall))
    report("lost events, all runs", lost, "events", "must be 0")


if __name__ == "__main__":
    run(main())
