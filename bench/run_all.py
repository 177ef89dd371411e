"""Run every benchmark in its own process (so memory figures are its own) and print one table.

    python bench/run_all.py            # or: daz bench
    python bench/run_all.py ingest     # only benchmarks whose file name contains "ingest"
    python bench/run_all.py --quick    # smaller sizes: the whole set in well under a minute

The benchmarks need a PostgreSQL server in which they may create (and afterwards drop)
databases named daz_bench_*: DAZ_TEST_DSN, else postgresql://root@127.0.0.1:5432/postgres.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{platform.node()} · {os.cpu_count()} cores · {cpu}"
            f" · Python {platform.python_version()}")


def postgres_answers(dsn: str) -> str | None:
    """None when ``dsn`` accepts a connection, else why not."""
    import asyncio

    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE.parent))
    from bench.common import DEFAULT_DSN
    from daz.db.pool import redact

    args = argv[1:]
    quick = "--quick" in args
    wanted = [a for a in args if a != "--quick"]
    scripts = sorted(p for p in HERE.glob("bench_*.py")
                     if not wanted or any(w in p.stem for w in wanted))
    dsn = os.environ.get("DAZ_TEST_DSN", DEFAULT_DSN)
    print(f"daz benchmarks{' (quick sizes)' if quick else ''}, "
          f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine()}")
    print(f"PostgreSQL: {redact(dsn)} (set DAZ_TEST_DSN or --dsn for another); the benchmarks"
          f" create scratch databases daz_bench_* there and drop them when done", flush=True)
    problem = postgres_answers(dsn)
    if problem is not None:
        first = problem.splitlines()[0] if problem else ""
        print(f"daz bench needs a PostgreSQL it may create databases in: {redact(dsn)} does not"
              f" answer ({first}); start one, or set DAZ_TEST_DSN", file=sys.stderr)
        return 2
    rows: list[tuple[str, str, str, str, str]] = []
    env = {**os.environ, "DAZ_TEST_DSN": dsn, "DAZ_BENCH_QUICK": "1" if quick else "0"}
    failed = 0
    for script in scripts:
        print(f"\n== {script.name}", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, text=True,
                              capture_output=True, timeout=1800, env=env)
        for line in proc.stdout.splitlines():
            if line.startswith("RESULT\t"):
                _, name, value, unit, reference = (line.split("\t") + [""] * 5)[:5]
                rows.append((script.stem, name, value, unit, reference))
            else:
                print(line)
        if proc.returncode != 0:
            failed += 1
            print(proc.stderr[-3000:])
            print(f"!! {script.name} exited with {proc.returncode}")
        print(f"   ({time.monotonic() - started:.0f}s)")
    print("\n| benchmark | figure | value | unit | measured against |")
    print("|---|---|---:|---|---|")
    for bench, name, value, unit, reference in rows:
        try:
            number = float(value)
            value = f"{number:,.1f}" if abs(number) < 1000 else f"{number:,.0f}"
        except ValueError:
            pass
        print(f"| {bench} | {name} | {value} | {unit} | {reference} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
