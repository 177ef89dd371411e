"""Run every benchmark in its own process (so memory figures are its own) and print one table.

    python bench/run_all.py            # or: daz bench
    python bench/run_all.py ingest     # only benchmarks whose file name contains "ingest"
"""
from __future__ import annotations

import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
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
    import os

    return f"{platform.node()} · {os.cpu_count()} cores · {cpu} · Python {platform.python_version()}"


def database_problem() -> str | None:
    """Most benchmarks write to PostgreSQL; without one each would fail with a traceback after
    minutes of set-up. One connection attempt first says so in a line."""
    import asyncio

    import asyncpg

    sys.path.insert(0, str(HERE.parent))
    from bench.common import test_dsn
    from daz.db.pool import redact

    dsn = test_dsn()

    async def attempt() -> None:
        conn = await asyncpg.connect(dsn, timeout=5)
        await conn.close()

    try:
        asyncio.run(attempt())
    except Exception as exc:
        return (f"daz bench needs a PostgreSQL it may create databases in: {redact(dsn)} does"
                f" not answer ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''});"
                " start one, or set DAZ_TEST_DSN")
    return None


def main(argv: list[str]) -> int:
    wanted = argv[1:]
    scripts = sorted(p for p in HERE.glob("bench_*.py")
                     if not wanted or any(w in p.stem for w in wanted))
    if any("test_dsn" in p.read_text(encoding="utf-8") for p in scripts):
        problem = database_problem()
        if problem:
            print(problem, file=sys.stderr)
            return 2
    rows: list[tuple[str, str, str, str, str]] = []
    print(f"daz benchmarks, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}")
    failed = 0
    for script in scripts:
        print(f"\n== {script.name}", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(script)], cwd=HERE.parent, text=True,
                              capture_output=True, timeout=1800)
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
