"""Shared helpers for the benchmarks: figures are printed, never asserted.

Every benchmark prints human-readable lines and, for each figure, one machine-readable line
``RESULT<TAB>name<TAB>value<TAB>unit<TAB>reference`` that ``bench/run_all.py`` (and ``daz
bench``) gathers into one table. ``reference`` is the physical limit or target it is measured
against, measured in the same run where possible.
"""
from __future__ import annotations

import asyncio
import atexit
import os
import statistics
import time
from typing import Any


def report(name: str, value: float, unit: str, reference: str = "") -> None:
    shown = f"{value:,.1f}" if isinstance(value, float) and value < 1000 else f"{value:,.0f}"
    print(f"  {name:<48} {shown:>14} {unit:<10} {reference}", flush=True)
    print(f"RESULT\t{name}\t{value}\t{unit}\t{reference}", flush=True)


def rss_mib() -> float:
    """Resident set size of this process, from /proc (Linux)."""
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99),
            "mean": statistics.fmean(values) if values else float("nan")}


DEFAULT_DSN = "postgresql://root@127.0.0.1:5432/postgres"
QUICK = os.environ.get("DAZ_BENCH_QUICK") == "1"  # set by ``daz bench --quick``


def sized(full: int, quick: int) -> int:
    """A benchmark's size: ``full`` normally, ``quick`` under ``daz bench --quick`` (the whole
    set then runs in well under a minute; figures are noisier, never comparable to full runs)."""
    return quick if QUICK else full


def test_dsn() -> str:
    """The same PostgreSQL choice as the tests: DAZ_TEST_DSN, else the local server."""
    return os.environ.get("DAZ_TEST_DSN", DEFAULT_DSN)


_scratch: list[tuple[str, str]] = []


async def scratch_database(base_dsn: str, name: str) -> str:
    """A fresh, empty database for one benchmark run; returns its DSN. It is dropped again when
    the benchmark's process ends (normally or by an exception)."""
    from urllib.parse import urlsplit, urlunsplit

    import asyncpg

    conn = await asyncpg.connect(base_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    if not _scratch:
        atexit.register(_drop_scratch_databases)
    _scratch.append((base_dsn, name))
    parts = urlsplit(base_dsn)
    return urlunsplit(parts._replace(path="/" + name))


def _drop_scratch_databases() -> None:
    import asyncpg

    async def drop() -> None:
        for base_dsn, name in _scratch:
            try:
                conn = await asyncpg.connect(base_dsn, timeout=10)
            except Exception as exc:
                print(f"  could not drop scratch database {name}: {exc}", flush=True)
                continue
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

    asyncio.run(drop())


def run(main: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.start


def postgres_cpu_seconds() -> float | None:
    """CPU seconds used so far by the PostgreSQL processes of this machine that are alive now
    (user + system, from /proc), or None where that cannot be read. Backends that end between
    two readings take their time with them, so read it while the connections measured are
    open."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, seen = 0, False
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        name, _, rest = stat.partition("(")[2].rpartition(")")
        if not name.startswith("postgres"):
            continue
        fields = rest.split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
        seen = True
    return total / ticks if seen else None


async def wait_joined(room: Any, timeout: float = 30.0) -> None:
    """Until ``room`` has joined its channel; RuntimeError with its status after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not room.status()["joined"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"room did not join: {room.status()}")
        await asyncio.sleep(0.02)


CORE_COPY_COLUMNS = ("event_uid", "event_type", "channel_name", "timestamp", "username",
                     "message", "message_time", "raw_data")


async def bare_copy_rate(dsn: str, records: list[tuple]) -> float:
    """rows/s of one COPY of ``records`` (``CORE_COPY_COLUMNS``) into an empty
    ``daz_core_events``: the database's ceiling for one writer. Leaves the event tables empty."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE daz_core_events, daz_chat_log, daz_user_activity")
        with Timer() as t:
            await conn.copy_records_to_table("daz_core_events", records=records,
                                             columns=CORE_COPY_COLUMNS)
        await conn.execute("TRUNCATE daz_core_events, daz_chat_log, daz_user_activity")
    finally:
        await conn.close()
    return len(records) / t.seconds

