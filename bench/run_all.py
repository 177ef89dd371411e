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


def main(argv: list[str]) -> int:
    wanted = argv[1:]
    scripts = sorted(p for p in HERE.glob("bench_*.py")
                     if not wanted or any(w in p.stem for w in wanted))
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
