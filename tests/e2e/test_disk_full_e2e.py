"""Disk full during a database outage (issue 11 §4), in the whole bot.

The data directory is a 512 KB tmpfs (a fault-injecting file layer when mounting is not
allowed). The database is cut and 10,000 chat lines arrive: memory takes its share, the spill
file fills the disk, the rest can only wait in memory. Meanwhile the log and /health say how
many events are at risk and why. When the database answers again, what the disk could not take
is written straight to the database (the writer used to keep retrying the full disk instead,
and lose it at stop); nothing is lost, nothing is written twice, no temp file is left behind.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import subprocess
import uuid

import pytest

from daz.journal import JournalStream
from tests.e2e.harness import BOT_NAME, running_bot, wait_until
from tests.e2e.support import CHANNEL, plugins
from tests.fakes.tcp_proxy import TcpProxy

LINES = 10_000
DISK = 1 << 19


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """A directory on a 512 KB disk: a tmpfs when this runs as root, else (or with
    DAZ_TEST_NO_MOUNT=1) a quota on the journal's writes that fails with ENOSPC as a full
    disk would."""
    where = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    where.mkdir()
    mounted = os.geteuid() == 0 and not os.environ.get("DAZ_TEST_NO_MOUNT") and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(where)],
        capture_output=True).returncode == 0
    if not mounted:
        _quota(monkeypatch, DISK)
    try:
        yield where
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=False)


def _quota(monkeypatch, limit: int) -> None:
    def full(size: int) -> None:
        if size > limit:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    append, rewrite = JournalStream._append_bytes, JournalStream._rewrite

    def append_within(self, data: bytes) -> None:
        full(self.size + len(data))
        append(self, data)

    def rewrite_within(self, head: bytes, tail: bytes, *, keep_unread: bool = True) -> int:
        kept = self.size - self._read_offset if keep_unread else 0
        full(kept + len(head) + len(tail))
        return rewrite(self, head, tail, keep_unread=keep_unread)

    monkeypatch.setattr(JournalStream, "_append_bytes", append_within)
    monkeypatch.setattr(JournalStream, "_rewrite", rewrite_within)


def flood(server, first_time: int) -> None:
    sid = next(m.sid for m in server.channel(CHANNEL).members.values() if m.name == BOT_NAME)
    for i in range(LINES):
        server.send(sid, "chatMsg", {"username": f"user{i % 50}", "msg": f"disk full {i} " +
                                     "padding " * 8, "meta": {}, "time": first_time + i})


async def test_a_full_disk_during_an_outage_loses_nothing_once_the_database_answers(
        fake_server, migrated_dsn, small_disk, caplog):
    caplog.set_level(logging.INFO, logger="daz")
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    config = plugins(sql={"core_event_queue_size": 1000, "write_timeout_seconds": 2})
    try:
        async with running_bot(fake_server, proxy.dsn_for(migrated_dsn), small_disk,
                               plugins=config, only=["sql"]) as bot:
            eventlog = bot.plugin("sql").eventlog
            base = eventlog.counts["queued"]
            await proxy.block()
            flood(fake_server, 1_800_000_000_000)
            await wait_until(lambda: eventlog.counts["queued"] >= base + LINES, 60,
                             "every line received")
            await wait_until(lambda: eventlog.status()["spill_error"], 20, "the disk full")
            await wait_until(lambda: not eventlog.db_ok, 20, "the database seen as down")

            # Both unavailable: said clearly, with the number at risk.
            ok, details = await bot.health()
            at_risk = details["eventlog"]["at_risk"]
            assert not ok and at_risk > 0, details["eventlog"]
            risk = [p for p in details["problems"] if "only in memory" in p]
            assert risk and str(at_risk) in risk[0] and "No space left" in risk[0], risk
            assert any("cannot write" in r.getMessage() for r in caplog.records)
            on_disk = eventlog.spill.unread
            assert 0 < on_disk < LINES

            await proxy.unblock()  # the disk is still full
            await wait_until(lambda: eventlog.waiting == 0, 60, "everything written")
            ok, details = await bot.health()
            assert details["eventlog"]["at_risk"] == 0, details["eventlog"]
            rows = await bot.db.fetch(
                "SELECT message FROM daz_core_events WHERE event_type = 'cytube.event.chatMsg'"
                " AND message LIKE 'disk full %'")
        messages = [r["message"] for r in rows]
        missing = sorted(set(range(LINES)) - {int(m.split()[2]) for m in messages})
        assert not missing, f"{len(missing)} lost: {missing[:5]}..{missing[-5:]}"
        assert len(messages) == LINES, f"{len(messages) - LINES} duplicated"
        assert eventlog.counts["failed"] == 0
        assert not [p.name for p in small_disk.rglob("*.tmp")]
        with contextlib.suppress(FileNotFoundError):
            assert (small_disk / "journal" / "eventlog.journal").stat().st_size == 0
    finally:
        await proxy.stop()
