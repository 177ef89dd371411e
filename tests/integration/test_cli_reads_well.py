"""The ``daz`` command reads well: whole descriptions in ``--help``, help text for every option,
``daz bench --quick`` naming its PostgreSQL up front and dropping its scratch databases, and
``daz gallery export --data-dir`` finding the embedded database as the other commands do."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from daz.cli import main
from tests.conftest import run_sync

ROOT = Path(__file__).resolve().parents[2]


def _all_commands(group: click.Group, prefix: str = "daz"):
    for name, command in group.commands.items():
        yield f"{prefix} {name}", command
        if isinstance(command, click.Group):
            yield from _all_commands(command, f"{prefix} {name}")


def test_help_shows_every_description_whole():
    for path, command in [("daz", main), *_all_commands(main)]:
        if not isinstance(command, click.Group):
            continue
        args = path.split()[1:] + ["--help"]
        result = CliRunner().invoke(main, args, terminal_width=80)
        assert result.exit_code == 0, result.output
        listing = result.output.split("Commands:", 1)[1]
        assert "..." not in listing and "…" not in listing, result.output
        flat = " ".join(listing.split())
        for name, sub in command.commands.items():
            first_paragraph = " ".join(sub.help.split("\n\n")[0].split())
            assert first_paragraph in flat, f"{path} --help cuts {name}: {result.output}"


def test_every_option_of_every_command_has_help_text():
    missing = [f"{path} {param.opts[0]}" for path, command in _all_commands(main)
               for param in command.params
               if isinstance(param, click.Option) and not (param.help or "").strip()]
    assert missing == []


def _bench_databases(dsn: str) -> set[str]:
    async def names():
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            return {r[0] for r in await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname IN ('daz_bench_playlist')")}
        finally:
            await conn.close()

    return run_sync(names)


def test_bench_quick_names_its_postgresql_first_and_drops_its_scratch_databases(pg_server_dsn):
    done = subprocess.run([sys.executable, "-m", "daz.cli", "bench", "--quick", "--dsn",
                           pg_server_dsn, "playlist"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("daz benchmarks (quick sizes)")
    assert lines[1].startswith("PostgreSQL: ") and "daz_bench_*" in lines[1]
    assert "| bench_playlist | playlist 1,000 items, join (empty mirror) |" in done.stdout
    assert _bench_databases(pg_server_dsn) == set()


def test_bench_says_at_once_when_its_postgresql_does_not_answer():
    done = subprocess.run([sys.executable, "-m", "daz.cli", "bench", "--quick", "--dsn",
                           "postgresql://nobody@127.0.0.1:1/none", "playlist"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "does not answer" in done.stderr and "== bench_" not in done.stdout


@pytest.fixture
def embedded_in_data_dir(tmp_path):
    """An embedded PostgreSQL running in ``tmp_path/data`` as ``daz run --data-dir`` leaves it,
    migrated, with one gallery image."""
    from daz.db.embedded import EmbeddedPostgres
    from daz.db.migrate import migrate

    server = EmbeddedPostgres(tmp_path / "data" / "postgres")
    try:
        dsn = run_sync(server.start)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"embedded PostgreSQL cannot start here: {exc}")

    async def fill():
        import asyncpg

        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
            await conn.execute("SELECT add_gallery_image('alice', 'https://img.example/e.png',"
                               " 'testchan', NULL, 25)")
        finally:
            await conn.close()

    try:
        run_sync(fill)
        yield tmp_path / "data"
    finally:
        run_sync(server.stop)


def test_gallery_export_takes_data_dir_like_the_other_commands(embedded_in_data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAZ_")}
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "daz.cli", "gallery", "export", str(out),
                           "--data-dir", str(embedded_in_data_dir)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "using the embedded PostgreSQL" in done.stderr
    assert "https://img.example/e.png" in (out / "testchan" / "index.html").read_text()
