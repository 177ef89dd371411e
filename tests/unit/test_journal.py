"""The journal: records come back in order, bad ones are skipped, a torn last record is cut off
and never applied, the bound refuses like a full disk, files are 0600 in a 0700 directory, a
restart reads what was left, and an earlier version's files are taken in."""
import asyncio
import json
import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from daz.db.held import HeldWrites
from daz.journal import Journal, JournalFull, encode, open_journal, read_records
from daz.metrics import Metrics

LOG = logging.getLogger("daz.test")


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_records_come_back_in_order_and_the_file_is_gone(tmp_path):
    stream = Journal(tmp_path).stream("x")
    stream.write_now([{"n": 1}, {"n": 2}])
    stream.write_now(iter([{"n": 3}]))  # a second stop adds to the first
    assert Journal(tmp_path).stream("x").take_all(dict) == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert not (tmp_path / "x.journal").exists()
    assert stream.take_all(dict) == []


def test_a_bad_record_is_logged_and_skipped_not_the_rest(tmp_path, caplog):
    path = tmp_path / "x.journal"
    corrupt = bytearray(encode('{"n": 9}'))
    corrupt[-3] = ord("8")  # a flipped byte: the checksum no longer matches
    path.write_bytes(encode('{"n": 1}') + bytes(corrupt) + encode("not json")
                     + encode('{"n": 2}'))
    metrics = Metrics()
    stream = Journal(tmp_path, metrics=metrics).stream("x")
    assert stream.take_all(dict) == [{"n": 1}, {"n": 2}]
    assert sum("unreadable record" in r.getMessage() for r in caplog.records) == 2
    assert metrics.registry.get_sample_value("daz_journal_torn_total", {"stream": "x"}) == 1


async def test_a_torn_last_record_is_cut_off_and_never_applied(tmp_path, caplog):
    path = tmp_path / "x.journal"
    whole = encode('{"n": 1}') + encode('{"n": 2}')
    path.write_bytes(whole + encode('{"n": 3}')[:7])  # the crash came in the third append
    metrics = Metrics()
    stream = Journal(tmp_path, metrics=metrics).stream("x")
    assert stream.open_existing() == 2
    assert path.read_bytes() == whole  # cut, so the next append starts a record of its own
    assert any("torn record" in r.getMessage() for r in caplog.records)
    assert metrics.registry.get_sample_value("daz_journal_torn_total", {"stream": "x"}) == 1
    stream.append('{"n": 4}')
    await stream.flush()
    records = stream.read(10)
    assert [r.text for r in records] == ['{"n": 1}', '{"n": 2}', '{"n": 4}']
    stream.consume(records[-1].end, len(records))
    assert stream.read(10) == [] and await stream.reset_if_drained()


def test_a_process_killed_while_appending_loses_nothing_acknowledged_and_doubles_nothing(
        tmp_path):
    """A real crash: a process appends numbered records as fast as it can and says which ones
    were acknowledged (``write_now`` returned); it is SIGKILLed mid-stream. What the journal
    gives back is 0, 1, 2, … without a gap or a repeat, and covers every acknowledged one."""
    child = textwrap.dedent(f"""
        import sys
        from daz.journal import Journal
        stream = Journal({str(tmp_path)!r}).stream("crash")
        n = 0
        while True:
            stream.write_now([{{"n": n, "pad": "x" * (n % 500)}}])
            print(n, flush=True)
            n += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    acknowledged = -1
    while acknowledged < 200 and time.monotonic() < deadline:
        acknowledged = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    acknowledged = max([acknowledged, *(int(x) for x in proc.stdout.read().split())])
    got = [item["n"] for item in Journal(tmp_path).stream("crash").load()]
    assert got == list(range(len(got)))
    assert len(got) >= acknowledged + 1


async def test_the_bound_refuses_like_a_full_disk_and_says_so_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="daz")
    metrics = Metrics()
    journal = Journal(tmp_path, max_bytes=200, metrics=metrics)
    a, b = journal.stream("a"), journal.stream("b")
    a.write_now([{"x": "y" * 100}])
    with pytest.raises(JournalFull) as refused:
        b.write_now([{"x": "z" * 100}])  # the bound is for all streams together
    assert isinstance(refused.value, OSError) and refused.value.errno == 28  # ENOSPC
    b.append(json.dumps({"x": "z" * 100}))
    with pytest.raises(OSError):
        await b.flush()
    assert b.pending == 1 and b.write_error  # kept, as after a full disk
    full = [r for r in caplog.records if "is full" in r.getMessage()]
    assert len(full) == 1 and full[0].levelno == logging.ERROR
    assert metrics.registry.get_sample_value("daz_journal_full_total", {"stream": "b"}) == 2
    assert not (tmp_path / "b.journal").exists()
    a.take_all()  # the database took a's records: there is room again
    assert await b.flush() == 1 and b.write_error is None
    assert any("takes records again" in r.getMessage() for r in caplog.records)
    assert metrics.registry.get_sample_value("daz_journal_bytes", {"stream": "b"}) == b.size


def test_what_an_earlier_run_left_counts_toward_the_bound(tmp_path):
    first = open_journal(tmp_path)
    first.stream("retry-pending").write_now([{"x": "y" * 100}])
    again = open_journal(tmp_path, max_bytes=150)
    with pytest.raises(JournalFull):  # retry-pending is not opened yet, but it is on disk
        again.stream("usertracker-held").write_now([{"x": "z" * 100}])
    assert again.stream("retry-pending").take_all() == [{"x": "y" * 100}]
    again.stream("usertracker-held").write_now([{"x": "z" * 100}])


async def test_files_are_0600_in_a_0700_directory(tmp_path):
    old = os.umask(0o022)
    try:
        journal = open_journal(tmp_path / "data")
        stream = journal.stream("eventlog")
        stream.append("{}")
        await stream.flush()
        await stream.prepend(["{}"])
        other = journal.stream("retry-pending")
        other.write_now([{}])
        other.replace_now([{}, {}])
    finally:
        os.umask(old)
    assert mode(journal.directory) == 0o700
    assert mode(stream.path) == 0o600 and mode(other.path) == 0o600


async def test_a_restart_reads_what_was_left_in_order_once(tmp_path):
    first = Journal(tmp_path).stream("eventlog")
    for n in range(5):
        first.append(json.dumps({"n": n}))
    await first.flush()
    records = first.read(2)
    first.consume(records[-1].end, 2)  # 0 and 1 reached the database; then the process died
    again = Journal(tmp_path).stream("eventlog")
    assert again.open_existing() == 5  # a consume is not durable: the keys make 0, 1 harmless
    seen = []
    while batch := again.read(2):
        seen += [json.loads(r.text)["n"] for r in batch]
        again.consume(batch[-1].end, len(batch))
    assert seen == [0, 1, 2, 3, 4] and again.unread == 0
    assert await again.reset_if_drained() and not again.path.exists()


async def test_held_writes_are_in_the_journal_before_submit_returns_and_a_restart_applies_them(
        tmp_path):
    """A crash during an outage (no stop at all): the next start finds every held write."""
    class Down:
        def acquire(self):
            raise ConnectionRefusedError("refused")

    applied = []

    async def apply(conn, op):
        applied.append(op["n"])

    crashed = HeldWrites(plugin="t", db=Down(), apply=apply, log=LOG, first_delay=60,
                         journal=Journal(tmp_path).stream("t-held"))
    for n in range(3):
        await crashed.submit("r", {"n": n})
        # in the journal when submit returns, each once
        assert len(read_records(tmp_path / "t-held.journal")) == n + 1
    crashed._task.cancel()  # the process is gone: nothing saved at a stop

    class Up:
        def acquire(self):
            return _conn()

    restarted = HeldWrites(plugin="t", db=Up(), apply=apply, log=LOG,
                           journal=Journal(tmp_path).stream("t-held"))
    await restarted.restore()
    assert applied == [0, 1, 2] and not restarted.holding()
    assert not (tmp_path / "t-held.journal").exists()  # applied: nothing left to apply again
    await asyncio.sleep(0)


class _Conn:
    async def __aenter__(self):
        return object()

    async def __aexit__(self, *exc):
        return False


def _conn():
    return _Conn()


def test_a_held_file_from_before_the_journal_is_taken_in(tmp_path, caplog):
    (tmp_path / "usertracker-held.jsonl").write_text(
        '{"room": "r", "op": {"op": "join", "t": 1.5}}\n'
        '{"room": "r"}\n'  # no op: the shape is wrong, skipped
        '{"room": "s", "op": {"op": "leave", "t": 2.0}}\n', encoding="utf-8")
    (tmp_path / "eventlog.spill").write_text('{"uid": "a"}\n', encoding="utf-8")
    (tmp_path / "export.jsonl").write_text('{"mine": 1}\n', encoding="utf-8")
    journal = open_journal(tmp_path)
    assert not (tmp_path / "usertracker-held.jsonl").exists()
    assert (tmp_path / "export.jsonl").exists()  # not daz's: left alone
    assert read_records(journal.directory / "eventlog.journal") == ['{"uid": "a"}']
    held = HeldWrites(plugin="usertracker", db=None, apply=None, log=LOG,
                      journal=journal.stream("usertracker-held"))
    assert held.load() == [("r", {"op": "join", "t": 1.5}), ("s", {"op": "leave", "t": 2.0})]
    assert sum("unreadable record" in r.getMessage() for r in caplog.records) == 1
    assert not (journal.directory / "usertracker-held.journal").exists()


def test_a_stream_longer_than_one_read_chunk_loads_whole(tmp_path):
    """Held writes of a long outage outgrow one read chunk (4 MiB): a restart must load every
    record, not the first chunk's."""
    path = tmp_path / "big.journal"
    records = [json.dumps({"n": n, "pad": "x" * 1000}) for n in range(6000)]  # about 6 MB
    path.write_bytes(b"".join(encode(text) for text in records))
    assert path.stat().st_size > 4 << 20
    stream = Journal(tmp_path).stream("big")
    assert [item["n"] for item in stream.load()] == list(range(6000))
    assert [item["n"] for item in stream.take_all()] == list(range(6000))
    assert not path.exists()
