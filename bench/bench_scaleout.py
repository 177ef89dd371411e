"""Scale-out figures (issue 13, item 4).

1. Failover: 3 ``daz run`` processes with the default lease settings (renewed every 1 s,
   lapsing after 5 s) share 12 rooms on the fake CyTube server; five times one is SIGKILLed.
   Figure: seconds from the kill until each of its rooms is joined by another instance (p50,
   max), then the same for a SIGTERM (the instance leaves its rooms and gives the leases up).
   The scenario also checks that no reply or greeting was doubled.
2. NATS publish overhead: the end-to-end ingest of bench_e2e_ingest (fake server → daz with
   every default plugin → PostgreSQL) with the Kryten bridge off, then on (every event
   published to NATS in the Kryten envelope), in one run.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from bench.bench_e2e_ingest import through_daz
from bench.common import percentile, report, run, scratch_database, test_dsn
from bench.flood_server import FloodServer
from bench.scaleout_scenario import Crowd, failover_rounds
from daz.sandbox.fake_cytube import FakeCytubeServer
from tests.nats_server import nats_server

ROUNDS = 5
OVERHEAD_EVENTS = 60_000


async def sigterm_handover(dsn: str, workdir: Path) -> list[float]:
    server = FakeCytubeServer(connect_burst=1000, connect_refill_per_s=100)
    await server.start()
    channels = [f"st{i:02d}" for i in range(12)]
    crowd = Crowd(server, dsn, workdir, channels)
    try:
        crowd.procs = [crowd.start() for _ in range(3)]
        await crowd.settled(120)
        leaving = crowd.procs.pop(0)
        rooms = await crowd.holdings(leaving)
        old = {ch: crowd.bot_sid(ch) for ch in rooms}
        started = time.monotonic()
        stopping = asyncio.create_task(leaving.stop())
        times, pending = [], set(rooms)
        while pending and time.monotonic() - started < 60:
            for ch in list(pending):
                sid = crowd.bot_sid(ch)
                if sid is not None and sid != old[ch]:
                    times.append(time.monotonic() - started)
                    pending.discard(ch)
            await asyncio.sleep(0.01)
        await stopping
        return times
    finally:
        await crowd.stop()
        await server.stop()


async def overhead(nats_url: str) -> tuple[dict, dict]:
    server = FloodServer()
    await server.start()
    try:
        off_dsn = await scratch_database(test_dsn(), "daz_bench_scaleout_off")
        off = await through_daz(server, off_dsn, events=OVERHEAD_EVENTS)
        on_dsn = await scratch_database(test_dsn(), "daz_bench_scaleout_on")
        on = await through_daz(server, on_dsn, events=OVERHEAD_EVENTS, nats_url=nats_url)
    finally:
        await server.stop()
    return off, on


async def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        dsn = await scratch_database(test_dsn(), "daz_bench_scaleout")
        server = FakeCytubeServer(connect_burst=1000, connect_refill_per_s=100)
        await server.start()
        try:
            outcome = await failover_rounds(server, dsn, Path(tmp) / "kill", rounds=ROUNDS)
        finally:
            await server.stop()
        term_dsn = await scratch_database(test_dsn(), "daz_bench_scaleout_term")
        handover = await sigterm_handover(term_dsn, Path(tmp) / "term")
    times = outcome.failover_seconds
    print(f"  3 instances, 12 rooms, {ROUNDS} SIGKILLs; lease renewed every 1 s, lapses after 5 s")
    report("failover after SIGKILL, p50", percentile(times, 50), "s",
           f"{len(times)} rooms taken over; target < 10 s")
    report("failover after SIGKILL, max", max(times), "s", "target < 10 s")
    report("handover after SIGTERM, p50", percentile(handover, 50), "s", "target < 2 s")
    report("handover after SIGTERM, max", max(handover), "s", "target < 2 s")
    doubled = sum(n - outcome.pings for n in outcome.pongs.values())
    report("replies doubled or lost across the failovers", doubled, "replies", "must be 0")
    report("greetings doubled", sum(n - 1 for n in outcome.greetings.values()), "greetings",
           "must be 0")
    report("duplicate logins (two instances in one room)", outcome.duplicate_logins, "logins",
           "must be 0")
    with nats_server() as url:
        off, on = await overhead(url)
    print(f"  ingest of {OVERHEAD_EVENTS:,} chat frames, all default plugins, bridge off vs on")
    report("ingest, Kryten bridge off", off["rate"], "events/s", f"lost {off['lost']}")
    report("ingest, Kryten bridge on (NATS)", on["rate"], "events/s",
           f"lost {on['lost']}; published {on['bridge']['counts'].get('published', 0):,}")
    report("NATS publish overhead per event", (1 / on["rate"] - 1 / off["rate"]) * 1e6, "µs",
           f"{on['rate'] / off['rate']:.0%} of the rate without the bridge")
    report("daz CPU, bridge off / on", off["cpu"] * 100, "%", f"on: {on['cpu'] * 100:.0f} %")
    # CPU time per event is steadier than the rate on a shared machine: it does not count the
    # time daz waited for a core.
    cpu_off, cpu_on = off["cpu"] / off["rate"] * 1e6, on["cpu"] / on["rate"] * 1e6
    report("daz CPU per event, bridge off", cpu_off, "µs", "all default plugins")
    report("daz CPU per event, bridge on", cpu_on, "µs",
           f"the bridge's share: {cpu_on - cpu_off:+.1f} µs per event")


if __name__ == "__main__":
    run(main())
