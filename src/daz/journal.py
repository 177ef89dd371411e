"""The journal: what the database could not take yet, on local disk until it can.

Every writer that must not lose a write while PostgreSQL is away uses it: the event log, the
writes held in order (``db/held.py``: usertracker, mediatracker), the retry queue's operations
(which carry every plugin's deferred write: tell, greeter, eventfilter), and whatever a plugin
saves at stop for the next start (``Plugin.save_for_next_start``: analytics' counts,
eventfilter's audit rows). One journal per data directory, ``<data_dir>/journal/`` (0700), one
append-only file per writer (a *stream*, ``<name>.journal``, 0600), one bound for all of them.

Records. One JSON document per line, behind the CRC-32 of its text: ``<crc32 hex>\\t<json>\\n``.
A record is on the platter (written and ``fsync``ed) before its writer acknowledges the write it
stands for. A crash in the middle of an append leaves a torn last record: at open it is cut off
(it was never acknowledged) and counted; a record whose checksum does not match is never
applied and goes to the writer's set-aside path, so a half-written record cannot be applied,
let alone twice.

Order and exactly once. A stream is read from its start, strictly in order, and its writer
consumes records only after the database took them (``consume``), then empties the file once
everything was consumed. A crash between the database's COMMIT and the consume reads the same
records again, so every record carries an idempotency key that the database enforces: the event
log's ``event_uid`` (unique index, staged ``ON CONFLICT DO NOTHING``), the retry queue's
``correlation_id`` (``ON CONFLICT``), analytics' flush id, eventfilter's batch id, and held
writes' idempotent ``apply``. Keys rather than a "drained" mark written in the database in the
same transaction: the event log's fast path is a binary COPY straight into its tables, which has
no room for a second table's row per record, and the keys already exist for the history CyTube
replays at every join; a mark per batch would add a write to every drained batch and a second
thing to keep in step.

The bound. ``max_bytes`` (``core.journal_max_mb``) for all streams together: an append that would
pass it fails like a full disk (``JournalFull``, an ``OSError`` with ``ENOSPC``), and a writer
does what the event log does when its file cannot be written: the records stay in memory, are
written to the database directly as soon as it answers, and ``/health`` counts them as at risk.
One error line when the journal fills, one info line when it takes records again, and
``daz_journal_full_total{stream}`` counts refused appends; ``daz_journal_bytes{stream}`` is the
size of each stream now.

Writing is done two ways. The event log appends lines (``append``) that one ``flush`` writes and
syncs as a group in a worker thread (one fsync per burst, however large). The other writers are
small and rare and write whole lists at once (``write_now``, ``replace_now``), synchronously.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

from prometheus_client import Counter, Gauge

from daz.metrics import own_series
from daz.private_files import open_private, private_dir

log = logging.getLogger(__name__)

DIRECTORY = "journal"
SUFFIX = ".journal"
DEFAULT_MAX_BYTES = 1024 * 1024 * 1024
READ_CHUNK = 4 << 20  # bytes read at once when reading back


class JournalFull(OSError):
    """The journal holds ``max_bytes``: an append is refused as a full disk would refuse it."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)


def journal_metrics(metrics: Any) -> SimpleNamespace:
    series: SimpleNamespace = own_series(metrics, "journal", lambda registry: SimpleNamespace(
        bytes=Gauge("daz_journal_bytes", "Bytes in each journal stream now", ["stream"],
                    registry=registry),
        full=Counter("daz_journal_full_total",
                     "Appends the journal refused because it holds core.journal_max_mb",
                     ["stream"], registry=registry),
        torn=Counter("daz_journal_torn_total",
                     "Records found torn or corrupt (never applied)", ["stream"],
                     registry=registry)))
    return series


def encode(text: str) -> bytes:
    """One record: the CRC of the text, a tab, the text (never a raw newline), a newline."""
    if "\n" in text:  # JSON never has a raw newline; keep one record per line
        text = text.replace("\n", "\\n")
    data = text.encode("utf-8")
    return b"".join((b"%08x\t" % zlib.crc32(data), data, b"\n"))


def _encoded(items: Iterable[Any]) -> bytes:
    """Each item as one JSON record."""
    return b"".join(encode(json.dumps(item)) for item in items)


def decode(line: bytes) -> str | None:
    """The text of one record (without its newline), or None when it is torn or corrupt."""
    if len(line) < 9 or line[8:9] != b"\t":
        return None
    data = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(data):
            return None
        return data.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def read_records(path: Path | str) -> list[str]:
    """Every whole, intact record of a stream file, in order (tools and tests)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    out = []
    for line in raw.split(b"\n")[:-1]:  # what follows the last newline is torn
        text = decode(line)
        if text is not None:
            out.append(text)
    return out


class Record(NamedTuple):
    text: str | None  # None: torn or corrupt, never to be applied
    raw: bytes  # a bad record's line as stored (to set it aside); empty for a good one
    end: int  # the offset just past it


_record = tuple.__new__  # Record(...) without NamedTuple's keyword handling: half the cost


class Journal:
    """The data directory's journal: its streams and their shared bound."""

    def __init__(self, directory: Path | str, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 metrics: Any = None) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.metrics = journal_metrics(metrics)
        self.streams: dict[str, JournalStream] = {}
        self.full = False  # the last append was refused at the bound
        # Stream files an earlier run left whose writer has not opened them (yet) in this run:
        # they count toward the bound all the same.
        self._unopened: dict[str, int] = {}

    @classmethod
    def in_data_dir(cls, data_dir: Path | str, **kwargs: Any) -> Journal:
        return cls(Path(data_dir) / DIRECTORY, **kwargs)

    def stream(self, name: str, path: Path | str | None = None) -> JournalStream:
        """The stream ``name`` (``<directory>/<name>.journal`` unless ``path`` says where); the
        same object every time it is asked for."""
        found = self.streams.get(name)
        if found is None:
            self._unopened.pop(name, None)
            found = self.streams[name] = JournalStream(
                self, name, Path(path) if path else self.directory / f"{name}{SUFFIX}")
        return found

    @property
    def used_bytes(self) -> int:
        return sum(s.size for s in self.streams.values()) + sum(self._unopened.values())

    def count_existing(self) -> None:
        """Count the stream files already in the directory toward the bound."""
        for path in self.directory.glob(f"*{SUFFIX}"):
            name = path.name[:-len(SUFFIX)]
            if name not in self.streams:
                self._unopened[name] = path.stat().st_size

    def _reserve(self, stream: JournalStream, size: int) -> None:
        """Refuse an append of ``size`` bytes that would pass the bound."""
        used = self.used_bytes
        if used + size <= self.max_bytes:
            if self.full:
                self.full = False
                log.info("journal: %s takes records again (%d of %d bytes used)",
                         self.directory, used, self.max_bytes)
            return
        self.metrics.full.labels(stream=stream.name).inc()
        if not self.full:
            self.full = True
            log.error("journal: %s is full (%d of %d bytes, core.journal_max_mb); %s keeps its"
                      " records in memory and writes them to the database as soon as it answers",
                      self.directory, used, self.max_bytes, stream.name)
        raise JournalFull(f"journal full: {used} of {self.max_bytes} bytes used")


class JournalStream:
    """One writer's append-only file of records, read back in order."""

    def __init__(self, journal: Journal, name: str, path: Path) -> None:
        self.journal = journal
        self.name = name
        self.path = path
        self._pending: list[str] = []  # appended records' texts, not yet written
        self._read_offset = 0  # bytes of the file already consumed
        self.size = 0  # bytes written (and synced) so far
        self.unread = 0  # records written and not consumed yet
        self.write_error: str | None = None  # why the last write failed, if it did
        self._lock = asyncio.Lock()
        self._flushing = False
        self._opened = False
        self.torn_tail: str | None = None  # what open_existing cut off (for the writer's log)

    def _gauge(self) -> None:
        self.journal.metrics.bytes.labels(stream=self.name).set(self.size)

    # ------------------------------------------------------------------ state

    def open_existing(self) -> int:
        """Adopt what an earlier run left; returns how many records wait. A torn last record
        (a crash in the middle of an append) is cut off: it was never acknowledged."""
        records = size = whole = 0
        try:
            with open(self.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    records += chunk.count(b"\n")
                    last = chunk.rfind(b"\n")
                    if last >= 0:
                        size = whole + last + 1
                    whole += len(chunk)
        except FileNotFoundError:
            pass
        self.torn_tail = None
        if whole > size:
            with open(self.path, "rb") as f:
                f.seek(size)
                self.torn_tail = f.read(64 * 1024).decode("utf-8", errors="replace")
            with open(self.path, "r+b") as f:
                f.truncate(size)
                f.flush()
                os.fsync(f.fileno())
            self.journal.metrics.torn.labels(stream=self.name).inc()
            log.warning("journal: %s ended in a torn record (%d bytes, a crash during an"
                        " append); cut off, it was never acknowledged", self.path, whole - size)
        self.size = size
        self._read_offset = 0
        self.unread = records
        self._opened = True
        self._gauge()
        return records

    def _ensure_open(self) -> None:
        if not self._opened:
            self.open_existing()

    @property
    def pending(self) -> int:
        """Records appended but not yet on disk."""
        return len(self._pending)

    @property
    def has_unread(self) -> bool:
        return self._read_offset < self.size

    @property
    def waiting(self) -> int:
        return self.unread + len(self._pending)

    @property
    def idle(self) -> bool:
        return not self._pending and not self._flushing

    # ------------------------------------------------------------------ group writes

    def append(self, text: str) -> None:
        """Queue one record for the next ``flush`` (which makes it durable)."""
        self._pending.append(text)

    def take_pending(self, max_records: int) -> list[str]:
        """Take up to ``max_records`` of the oldest records not yet on disk, for the caller to
        write elsewhere (the database, while the journal cannot be written); ``give_back``
        what it could not."""
        taken, self._pending = self._pending[:max_records], self._pending[max_records:]
        return taken

    def give_back(self, texts: list[str]) -> None:
        self._pending[:0] = texts

    async def flush(self) -> int:
        """Write and fsync what was appended; returns records written. Raises OSError
        (``JournalFull`` at the bound); the records then stay pending, nothing is lost."""
        async with self._lock:
            if not self._pending:
                return 0
            records, self._pending = self._pending, []
            self._flushing = True
            try:
                # Encoded in the worker thread too: the event loop only hands the texts over.
                data = await asyncio.to_thread(self._encode_and_append, records)
            except BaseException as exc:
                self._pending[:0] = records  # still ours
                self._failed(exc)
                raise
            finally:
                self._flushing = False
            self.write_error = None
            self._grew(len(data), len(records))
            return len(records)

    def _encode_and_append(self, texts: list[str]) -> bytes:
        data = b"".join(map(encode, texts))
        self.journal._reserve(self, len(data))
        self._append_bytes(data)
        return data

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, OSError):
            self.write_error = f"{type(exc).__name__}: {exc}"

    def _append_bytes(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError:
            # A full disk may have taken part of the group: cut the file back to the last whole
            # record, so nothing half-written is ever read (the group is written again, whole).
            try:
                os.ftruncate(fd, self.size)
            except OSError:
                pass  # then the torn record is cut off at the next open, as after a crash
            raise
        finally:
            os.close(fd)

    async def prepend(self, texts: list[str]) -> None:
        """Put ``texts`` before everything not yet consumed (at stop: memory is older than the
        file). Rewrites the unread part into a new file and renames it over the old one."""
        if not texts:
            return
        async with self._lock:
            pending, self._pending = self._pending, []
            head = b"".join(map(encode, texts))
            tail = b"".join(map(encode, pending))
            try:
                grows = len(head) + len(tail) - self._read_offset
                if grows > 0:
                    self.journal._reserve(self, grows)
                size = await asyncio.to_thread(self._rewrite, head, tail)
            except BaseException as exc:
                self._pending[:0] = pending
                self._failed(exc)
                raise
            self.write_error = None
            self.unread += len(texts) + len(pending)
            self.size = size
            self._read_offset = 0
            self._gauge()

    def _rewrite(self, head: bytes, tail: bytes, *, keep_unread: bool = True) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        middle = b""
        if keep_unread:
            try:
                with open(self.path, "rb") as old:
                    old.seek(self._read_offset)
                    middle = old.read(self.size - self._read_offset)
            except FileNotFoundError:
                pass
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open_private(tmp, "wb") as f:
                for part in (head, middle, tail):
                    f.write(part)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk leaves no half-written copy behind
            raise
        _sync_dir(self.path.parent)
        return len(head) + len(middle) + len(tail)

    # ------------------------------------------------------------------ reading

    def read(self, max_records: int) -> list[Record]:
        """Up to ``max_records`` unread records from disk, in order."""
        if self._read_offset >= self.size:
            return []
        offset = self._read_offset
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(min(self.size - offset, READ_CHUNK))
            if b"\n" not in data:  # one record longer than a chunk
                data += f.readline(self.size - offset - len(data))
        out: list[Record] = []
        view = memoryview(data)
        pos = 0
        torn = 0
        while len(out) < max_records:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            text = None  # checked in place: no copy of a record that is not kept
            if nl - pos >= 9 and data[pos + 8] == 9:  # "\t"
                try:
                    if int(data[pos:pos + 8], 16) == zlib.crc32(view[pos + 9:nl]):
                        text = data[pos + 9:nl].decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    pass
            if text is None:
                torn += 1
            out.append(_record(Record, (text, b"" if text is not None else data[pos:nl],
                                        offset + nl + 1)))
            pos = nl + 1
        if torn:
            self.journal.metrics.torn.labels(stream=self.name).inc(torn)
        return out

    def consume(self, next_offset: int, records: int) -> None:
        self._read_offset = next_offset
        self.unread = max(0, self.unread - records)

    async def reset_if_drained(self) -> bool:
        """Empty the file once everything in it was consumed; True if it is empty now."""
        async with self._lock:
            if self._pending or self._read_offset < self.size:
                return False
            await asyncio.to_thread(self._remove)
            return True

    def _remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self.size = self._read_offset = 0
        self.unread = 0
        self.write_error = None  # the file is gone; the next write tells again
        self._gauge()

    # ------------------------------------------------------------------ whole lists

    def write_now(self, items: Iterable[Any]) -> int:
        """Append each item as one JSON record and fsync before returning (the caller may then
        forget them). Raises OSError (``JournalFull`` at the bound) having written none."""
        self._ensure_open()
        data = _encoded(items)
        if not data:
            return 0
        self.journal._reserve(self, len(data))
        try:
            self._append_bytes(data)
        except OSError as exc:
            self._failed(exc)
            raise
        records = data.count(b"\n")
        self.write_error = None
        self._grew(len(data), records)
        return records

    def _grew(self, nbytes: int, records: int) -> None:
        """``records`` appended, ``nbytes`` in all."""
        self.size += nbytes
        self.unread += records
        self._gauge()

    def replace_now(self, items: Iterable[Any]) -> None:
        """Make the stream hold exactly ``items`` (in order), atomically: a crash leaves the
        old records or the new ones, never a mix. No items: the file is removed."""
        self._ensure_open()
        data = _encoded(items)
        if not data:
            self._remove()
            return
        grows = len(data) - self.size
        if grows > 0:
            self.journal._reserve(self, grows)
        self._read_offset = 0
        self.size = self._rewrite(data, b"", keep_unread=False)
        self.unread = data.count(b"\n")
        self.write_error = None
        self._gauge()

    def load(self, parse: Callable[[Any], Any] = lambda item: item, *,
             owner: str = "") -> list[Any]:
        """Every record from the start of the file, each through ``parse``. A torn or corrupt
        record, or one ``parse`` refuses (ValueError, KeyError, TypeError), is logged and
        skipped: one bad record must not cost the others. (For the writers that do not
        ``read``/``consume``: the file is adopted afresh.)"""
        self.open_existing()
        if not self.size:
            return []
        out: list[Any] = []
        for record in self._read_all():
            try:
                if record.text is None:
                    raise ValueError("torn or corrupt record")
                out.append(parse(json.loads(record.text)))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("%s: unreadable record in %s skipped (%s): %.200s",
                          owner or self.name, self.path, exc,
                          record.raw.decode("utf-8", errors="replace"))
        return out

    def _read_all(self) -> list[Record]:
        """Every record from the read position to the end, chunk by chunk (``read`` reads one
        chunk at most), leaving the read position where it was."""
        start = self._read_offset
        records: list[Record] = []
        try:
            while batch := self.read(self.unread + 1):
                records += batch
                self._read_offset = batch[-1].end
        finally:
            self._read_offset = start
        return records

    def take_all(self, parse: Callable[[Any], Any] = lambda item: item, *,
                 owner: str = "") -> list[Any]:
        """``load``, then remove the file (the caller holds the items now)."""
        out = self.load(parse, owner=owner)
        self._remove()
        return out


class HeldJournal:
    """What a writer holds in memory while the database is away, kept in its journal stream:
    each hold appended as it is held, or the stream rewritten from memory (``snapshot``), one
    write at a time and in order. A rewrite covers every hold numbered up to then, so a hold
    whose own append comes later is not written twice."""

    def __init__(self, stream: JournalStream | None, snapshot: Callable[[], list[Any]], *,
                 owner: str, what: str, log: logging.Logger) -> None:
        self.stream = stream
        self.snapshot = snapshot
        self.owner, self.what, self.log = owner, what, log
        self._lock = asyncio.Lock()
        self._held_seq = 0
        self._journaled_upto = 0

    def hold(self) -> int:
        """The number of a new hold, for its ``write("append", ...)``."""
        self._held_seq += 1
        return self._held_seq

    async def write(self, how: str, records: list[Any] | None, *, seq: int = 0,
                    on_error: Callable[[OSError], None] | None = None) -> bool:
        """Append ``records`` or make the stream hold exactly them (``how``: "append",
        "replace"; None: the snapshot, taken once the stream is free). True when durable.
        Never raises: an unwritable stream leaves them in memory, said once per failing
        spell (the journal itself logs its bound) or to ``on_error``."""
        stream = self.stream
        if stream is None:
            return False
        write = stream.write_now if how == "append" else stream.replace_now
        async with self._lock:
            if how == "append" and seq and seq <= self._journaled_upto:
                return True  # a rewrite from memory since it was held has it (or it is done)
            if records is None:
                records = self.snapshot()
                self._journaled_upto = self._held_seq
            failing = stream.write_error is not None
            try:
                await asyncio.to_thread(write, records)
            except OSError as exc:
                if on_error is not None:
                    on_error(exc)
                elif not failing and not stream.journal.full:
                    self.log.error("%s: cannot write %s (%s); %s stay in memory only",
                                   self.owner, stream.path, exc, self.what)
                return False
        return True


def open_journal(data_dir: Path | str | None, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 metrics: Any = None) -> Journal | None:
    """The journal of ``data_dir`` (its directory made 0700), or None without a data dir.
    Files an earlier version of daz left for its next start are taken into it first."""
    if data_dir is None:
        return None
    journal = Journal.in_data_dir(data_dir, max_bytes=max_bytes, metrics=metrics)
    private_dir(journal.directory)
    journal.count_existing()
    adopt_earlier_files(journal, Path(data_dir))
    return journal


# Before the journal, each writer kept its own file of JSON lines in the data dir: the event
# log's spill file, and ``<stream>.jsonl`` for the others (held writes, the retry queue's
# operations, what a stop saved). A daz upgraded during an outage must still write them. Only
# these names are taken: any other file in the data dir is the operator's.
EARLIER_FILES = {"eventlog.spill": "eventlog", "retry-pending.jsonl": "retry-pending",
                 "analytics-unsaved.jsonl": "analytics-unsaved",
                 "eventfilter-history-unsaved.jsonl": "eventfilter-history-unsaved"}
EARLIER_HELD_SUFFIX = "-held.jsonl"  # any plugin's HeldWrites


def adopt_earlier_files(journal: Journal, data_dir: Path) -> int:
    """Move the lines of an earlier version's files into their streams (behind what the stream
    holds, in order) and remove the files; returns how many lines were taken."""
    taken = 0
    try:
        found = sorted(p for p in data_dir.iterdir() if p.is_file() and (
            p.name in EARLIER_FILES or p.name.endswith(EARLIER_HELD_SUFFIX)))
    except FileNotFoundError:
        return 0
    for path in found:
        stream = journal.stream(EARLIER_FILES.get(path.name, path.stem))
        stream._ensure_open()
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
                 if line.strip()]
        data = b"".join(encode(line) for line in lines)
        if data:
            stream._append_bytes(data)  # above the bound if need be: these were accepted
            stream._grew(len(data), len(lines))
        path.unlink()
        taken += len(lines)
        log.warning("journal: %d line(s) an earlier version of daz left in %s moved to %s",
                    len(lines), path, stream.path)
    return taken


def _sync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def stream_at(path: Path | str, **kwargs: Any) -> JournalStream:
    """A stream of its own at ``path`` (in a journal of its directory): tools and tests."""
    path = Path(path)
    return Journal(path.parent, **kwargs).stream(path.name, path)
