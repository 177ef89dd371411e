"""Shutdown by signal, with ``daz run`` as a real process against the fake CyTube server
(issue 6 §3; split from test_faults_e2e.py to keep files small).

* SIGTERM while people are flooding the room: every line the bot received is written before it
  exits (the event log is set to hold everything in memory until then, so the shutdown flush is
  what writes them), with no gap in the server's order.
* SIGKILL while the database is away: what the spill file holds is replayed at the next start,
  which logs how many events it found; what was only in memory may be lost, no more than the
  in-memory bound.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from daz.journal import read_records
from tests.e2e.harness import BOT_NAME, BOT_PASSWORD, wait_until
from tests.e2e.support import CHANNEL
from tests.fakes.tcp_proxy import TcpProxy

WEB_ADDRESS = re.compile(r"web server on (http://\S+)")
LEFT_OVER = re.compile(r"eventlog: (\d+) event\(s\) left in (\S+) by an earlier run")


class DazProcess:
    """``daz run`` in a child process; its log goes to a file the test can read."""

    def __init__(self, server, dsn: str, data_dir: Path, plugins: dict, *,
                 core: dict | None = None):
        self.server = server
        self.dsn = dsn
        self.data_dir = data_dir
        self.config = data_dir / "config.json"
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps({"core": core or {}, "plugins": plugins}))
        self.log_path = data_dir / f"daz-{time.monotonic_ns()}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> DazProcess:
        self.server.add_account(BOT_NAME, BOT_PASSWORD)
        self.server.set_channel_rank(CHANNEL, BOT_NAME, 2)
        log = open(self.log_path, "wb")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "daz.cli", "run", "--config", str(self.config),
                "--channel", CHANNEL, "--username", BOT_NAME, "--password", BOT_PASSWORD,
                "--server", self.server.base_url, "--dsn", self.dsn,
                "--data-dir", str(self.data_dir), "--web-port", "0",
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            log.close()
        try:
            await wait_until(lambda: self.in_room() or self.proc.returncode is not None, 30,
                             "daz run to join")
        except AssertionError:
            raise AssertionError(f"daz run did not join; log:\n{self.log()[-3000:]}") from None
        assert self.proc.returncode is None, self.log()[-3000:]
        return self

    def in_room(self) -> bool:
        return self.server.channel(CHANNEL).find(BOT_NAME) is not None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def signal(self, sig: int, timeout: float = 30.0) -> int:
        self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def health(self) -> dict:
        """/health's details (the web server's address is in the log)."""
        found = WEB_ADDRESS.search(self.log())
        assert found, "no web server address in the log"
        url = f"{found.group(1)}/health"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
            async with http.get(url) as response:
                return await response.json()

    async def kill_if_running(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def logged_chat(dsn: str) -> list[tuple[str, str]]:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT username, message FROM daz_core_events WHERE channel_name = $1"
            " AND event_type = 'cytube.event.chatMsg' AND username LIKE 'flood%'", CHANNEL)
    finally:
        await conn.close()
    return [(r["username"], r["message"]) for r in rows]


async def flood(users, stop: asyncio.Event, said: list, tag: str) -> None:
    """Round robin until told to stop, under the server's per-socket limit (10/s each after
    a burst of 20), one sender's lines never in the same millisecond."""
    i = 0
    while not stop.is_set():
        for user in users:
            text = f"{tag} {user.name} {i}"
            with contextlib.suppress(Exception):  # the bot going away does not stop people
                await user.chat(text)
                said.append((user.name, text))
        i += 1
        await asyncio.sleep(0.12)


def delivered_order(server, names: set[str]) -> list[tuple[str, str]]:
    return [(line["username"], line["text"]) for line in server.channel(CHANNEL).chat_log
            if line["username"] in names]


# ---------------------------------------------------------------------------- SIGTERM


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_stop_signal_under_load_writes_every_received_line(fake_server, migrated_dsn,
                                                                   tmp_path, sig):
    """SIGTERM, and Ctrl-C (SIGINT): python-socketio's own SIGINT handler used to cancel
    every task, so Ctrl-C exited 1 with a traceback and wrote nothing queued (issue 11 §1)."""
    server = fake_server
    # Everything stays in memory until shutdown: only the shutdown flush can write it.
    hold = {"sql": {"core_event_batch_size": 100_000, "core_event_max_batch": 100_000,
                    "core_event_queue_size": 200_000, "core_event_flush_ms": 600_000}}
    daz = DazProcess(server, migrated_dsn, tmp_path / "data", hold)
    users = [await server.user(f"flood{i}") for i in range(4)]
    names = {u.name for u in users}
    try:
        await daz.start()
        stop, said = asyncio.Event(), []
        flooding = asyncio.create_task(flood(users, stop, said, "term"))
        await wait_until(lambda: len(said) >= 80, 10, "load")
        assert await logged_chat(migrated_dsn) == []  # held in memory, as configured
        rc = await daz.signal(sig)
        stop.set()
        await flooding
        assert rc == 0, daz.log()[-3000:]
        assert "Traceback" not in daz.log() and "Error" not in daz.log(), daz.log()[-3000:]

        logged = await logged_chat(migrated_dsn)
        assert len(logged) == len(set(logged))  # once each
        order = delivered_order(server, names)
        # What was written is exactly the start of what the server delivered: no line the
        # bot received before it stopped is missing.
        assert len(logged) >= 80
        assert set(logged) == set(order[:len(logged)]), "a gap in the written lines"
        assert "shutting down" in daz.log()
    finally:
        await daz.kill_if_running()
        for user in users:
            await user.leave()


# ---------------------------------------------------------------------------- SIGKILL


def spill_entries(path: Path) -> tuple[int, list[tuple[str, str]]]:
    """(whole records in the event log's journal stream, (username, message) of the flood
    users' chat entries). A torn last record (the kill came in the middle of an append) is not
    counted: the next start cuts it off, it was never acknowledged."""
    if not path.exists():
        return 0, []
    records = read_records(path)
    chat = []
    for line in records:
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if entry.get("event_type") == "cytube.event.chatMsg" \
                    and str(entry.get("username")).startswith("flood"):
                chat.append((entry.get("username"), entry.get("message")))
    return len(records), chat


async def test_sigkill_loses_only_what_the_spill_file_had_not_received(fake_server,
                                                                       migrated_dsn, tmp_path):
    server = fake_server
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    small = {"sql": {"core_event_batch_size": 4, "core_event_max_batch": 8,
                     "core_event_queue_size": 16, "core_event_flush_ms": 50,
                     "write_timeout_seconds": 1}}
    data = tmp_path / "data"
    spill = data / "journal" / "eventlog.journal"
    first = DazProcess(server, proxy.dsn_for(migrated_dsn), data, small)
    second = DazProcess(server, migrated_dsn, data, small)
    users = [await server.user(f"flood{i}") for i in range(3)]
    try:
        await first.start()
        await proxy.block()  # the database goes away: memory fills, then the spill file
        stop, said = asyncio.Event(), []
        flooding = asyncio.create_task(flood(users, stop, said, "kill"))
        await wait_until(lambda: len(spill_entries(spill)[1]) >= 30, 20, "lines spilled")
        stop.set()
        await flooding
        await asyncio.sleep(0.3)  # the spill flusher's interval is 50 ms
        rc = await first.signal(signal.SIGKILL)
        assert rc == -signal.SIGKILL
        file_lines, spilled = spill_entries(spill)
        await proxy.unblock()

        await second.start()
        found = await wait_until(lambda: LEFT_OVER.search(second.log()), 15,
                                 "the left-over count in the log")
        assert int(found.group(1)) == file_lines  # every line the file held is counted
        await wait_until(lambda: not spill.exists() or spill.stat().st_size == 0, 15,
                         "the spill file replayed")

        async def spilled_written() -> bool:
            return set(spilled) <= set(await logged_chat(migrated_dsn))

        await wait_until(spilled_written, 15, "every spilled line in the database")
        logged = await logged_chat(migrated_dsn)
        assert len(logged) == len(set(logged))
        lost = set(said) - set(logged)
        # Only what was still in memory (the bounded queue, 16 events of any kind, plus one
        # batch being tried) can be gone.
        assert not lost & set(spilled)
        assert len(lost) <= 16 + 8, sorted(lost)
        assert await second.signal(signal.SIGTERM) == 0
    finally:
        await first.kill_if_running()
        await second.kill_if_running()
        await proxy.stop()
        for user in users:
            await user.leave()
