"""Years of history: every page, command and per-join cost on a big database, next to an empty one.

Two databases are migrated in one run: one stays empty, the other gets the synthetic history of
tests/history_data.py (at ``--scale 1``: 5 M core events, 3 M chat lines, 300 k sessions, 200 k
plays, 100 k gallery images, 50 k tells, 100 k PMs, 20 k people over three years; built by SQL
alone). On each, the real plugins (eventfilter, usertracker, greeter, tell, gallery) run against
the database and daz's web server serves the pages; every figure is the time of one whole page
request (HTTP, SQL, template), one command from chat line to reply, or one arrival's database
work (the greeter's checks, tell's claim), repeated ``--repeat`` times: p50 and p95 in ms.

    python bench/bench_history.py --scale 0.2        # a quicker run
    python bench/bench_history.py --reuse             # keep the generated database between runs
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import asyncpg
from aiohttp.test_utils import TestClient, TestServer

from bench.common import percentile, report, run, scratch_database, test_dsn
from daz.commands import CommandRegistry
from daz.cytube.rooms import Rooms
from daz.db.migrate import migrate
from daz.db.pool import Database
from daz.plugins.eventfilter import EventFilter
from daz.plugins.gallery import Gallery
from daz.plugins.greeter import Greeter
from daz.plugins.tell import Tell
from daz.plugins.tell import store as tell_store
from daz.plugins.usertracker import UserTracker
from daz.web.server import WebServer
from tests.fakes.web_host import StubWebHost
from tests.history_data import CHANNEL, HEAVY_USER, LIGHT_USER, Sizes, fill
from tests.plugin_kit import Kit

TOKEN = "bench"
UNKNOWN_USER = "NobodyByThatName"


async def timed(samples: int, action) -> list[float]:
    await action()  # warm: the first call prepares statements and loads templates
    out = []
    for _ in range(samples):
        started = time.perf_counter()
        await action()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def measure(dsn: str, samples: int) -> dict[str, list[float]]:
    db = Database(dsn, min_size=2, max_size=5, command_timeout=120)
    await db.start()
    # An earlier run's !tell rows (kept with --reuse) would hit the per-recipient cap.
    await db.execute("DELETE FROM daz_tell_messages WHERE from_user LIKE 'asker%'")
    kit = await Kit.start({"eventfilter": EventFilter, "usertracker": UserTracker,
                           "greeter": Greeter, "tell": Tell, "gallery": Gallery}, db=db,
                          sections={"gallery": {"enable_health_check": False}},
                          commands=CommandRegistry())
    figures: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = WebServer(StubWebHost(Path(tmp), channel=CHANNEL, token=TOKEN,
                                        rooms=Rooms([kit.room]), commands=kit.commands,
                                        bus=kit.bus, db=db))
        server.extra_routes = kit.plugin("gallery").web_routes()
        async with TestClient(TestServer(server.build())) as client:
            login = await client.post("/login", data={"token": TOKEN, "next": "/"},
                                      allow_redirects=False)
            assert login.status == 302, await login.text()
            images = int(await db.fetchval(
                "SELECT count(*) FROM daz_gallery_images WHERE channel = $1"
                " AND state = 'active'", CHANNEL))
            last_page = max(1, -(-images // 100))
            pages = {
                "page /c/<chan> (dashboard)": f"/c/{CHANNEL}",
                "page /c/<chan>/data.json (chart, range picked)": f"/c/{CHANNEL}/data.json",
                "page /c/<chan>/data.json?range=7d": f"/c/{CHANNEL}/data.json?range=7d",
                "page /c/<chan>/data.json?range=all": f"/c/{CHANNEL}/data.json?range=all",
                "page /c/<chan>/chat": f"/c/{CHANNEL}/chat",
                "page /c/<chan>/pms": f"/c/{CHANNEL}/pms",
                "page /c/<chan>/u/<heavy user>": f"/c/{CHANNEL}/u/{HEAVY_USER}",
                "page /c/<chan>/u/<light user>": f"/c/{CHANNEL}/u/{LIGHT_USER}",
                "page /c/<chan>/u/<unknown user>": f"/c/{CHANNEL}/u/{UNKNOWN_USER}",
                "page /gallery/<chan>": f"/gallery/{CHANNEL}",
                "page /gallery/<chan>?page=<last>": f"/gallery/{CHANNEL}?page={last_page}",
                "page /gallery/<chan>/<heavy user>": f"/gallery/{CHANNEL}/{HEAVY_USER}",
                "page /gallery/<chan>/<light user>": f"/gallery/{CHANNEL}/{LIGHT_USER}",
            }
            for name, path in pages.items():
                async def get(path=path):
                    r = await client.get(quote(path, safe="/?=&"))
                    await r.read()
                    assert r.status == 200, (path, r.status)
                figures[name] = await timed(samples, get)

            async def first_snapshot():
                async with client.get(f"/c/{CHANNEL}/live") as r:
                    assert r.status == 200
                    async for line in r.content:
                        if line.startswith(b"data: "):
                            return
            figures["page /c/<chan>/live (first snapshot)"] = await timed(samples, first_snapshot)
        for target in (HEAVY_USER, LIGHT_USER, UNKNOWN_USER):
            figures[f"command !seen <{target}>"] = await timed(
                samples, command(kit, f"!seen {target}"))
        figures["command !tell <light user> ..."] = await timed(
            samples, command(kit, f"!tell {LIGHT_USER} see you at the movie night"))
        greeter = kit.plugin("greeter")
        for label, target in (("heavy", HEAVY_USER), ("light", LIGHT_USER)):
            async def arrival(target=target):
                await greeter._check(CHANNEL, target, time.time())
                async with db.pool.acquire() as conn:
                    await tell_store.claim(conn, CHANNEL, target, time.time(), "bench")
            figures[f"per join <{label} user>: greeter checks + tell claim"] = await timed(
                samples, arrival)
    await kit.stop()
    await db.close()
    return figures


_asker = iter(range(10**9))


def command(kit: Kit, text: str):
    """One chat line from a new person each time (no cooldown applies), until the reply."""
    async def send() -> None:
        asker = f"asker{next(_asker)}"
        kit.user(asker, rank=1)
        said = len(kit.room.said) + len(kit.room.pms)
        await kit.chat(asker, text)
        if len(kit.room.said) + len(kit.room.pms) == said:
            raise RuntimeError(f"no reply to {text!r}")
    return send


async def prepare(base: str, name: str, scale: float | None, reuse: bool) -> str:
    if reuse:
        dsn = base.rsplit("/", 1)[0] + "/" + name
        try:
            conn = await asyncpg.connect(dsn)
            done = await conn.fetchval("SELECT to_regclass('bench_history_done') IS NOT NULL")
            await migrate(conn)
            await conn.close()
            if done:
                print(f"reusing {name}", flush=True)
                return dsn
        except asyncpg.InvalidCatalogNameError:
            pass
    dsn = await scratch_database(base, name)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        if scale:
            started = time.monotonic()
            await fill(conn, scale, progress=lambda part, rows, s: print(
                f"  generated {part:<14} {rows:>10,} rows in {s:6.1f} s", flush=True))
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_database_size(current_database()))")
            print(f"  history generated in {time.monotonic() - started:.0f} s; database {size}",
                  flush=True)
        await conn.execute("CREATE TABLE bench_history_done ()")
    finally:
        await conn.close()
    return dsn


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="1 = the issue's 3.4 GB database (default); 0.1 = a tenth")
    parser.add_argument("--repeat", type=int, default=40, help="samples per figure")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the generated database and use it again next time")
    args = parser.parse_args()
    base = test_dsn()
    sizes = Sizes.at(args.scale)
    print(f"bench_history: scale {args.scale} ({sizes.chat:,} chat lines,"
          f" {sizes.chat + sizes.core_other:,} core events, {sizes.sessions:,} sessions,"
          f" {sizes.plays:,} plays, {sizes.images:,} images), {args.repeat} samples each",
          flush=True)
    empty = await prepare(base, "daz_bench_history_empty", None, False)
    big = await prepare(base, f"daz_bench_history_{str(args.scale).replace('.', '_')}",
                        args.scale, args.reuse)
    on_empty = await measure(empty, args.repeat)
    on_big = await measure(big, args.repeat)
    print(f"\n  {'figure':<58} {'empty p50/p95':>16} {'history p50/p95':>18}")
    for name in on_big:
        e, b = on_empty[name], on_big[name]
        print(f"  {name:<58} {percentile(e, 50):7.1f}/{percentile(e, 95):6.1f} ms"
              f" {percentile(b, 50):8.1f}/{percentile(b, 95):6.1f} ms", flush=True)
    for name in on_big:
        report(f"history {name} p95", percentile(on_big[name], 95), "ms",
               f"empty database {percentile(on_empty[name], 95):.1f} ms")


if __name__ == "__main__":
    run(main())
