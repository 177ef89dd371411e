"""The event log's overflow: an append-only file of JSON lines, read back in order.

Lines are appended in groups (one write and one ``fsync`` per group, done in a worker thread so
the event loop never waits on the disk). A line handed to ``append()`` is in the file within one
flush interval, and on the platter once ``flush()`` returned: the writer drops an entry from
memory only after that, so an entry is always in memory, on disk, or in the database. Syncing
per group rather than per line costs one fsync per burst however large it is, which is what
keeps spilling cheap enough to absorb a full-speed event stream while the database is away.

Reading keeps its own offset. Entries are consumed only after the database accepted them
(``consume()``), so a crash between a read and the write reads the same lines again; the
writer's event_uid makes that harmless. When everything was read, the file is truncated.

A torn last line (a crash in the middle of a write) is ended at start-up so later appends start
a line of their own; it, like any line that does not parse, is set aside by the caller, never
retried forever. ``prepend()`` and ``read()`` are not meant to overlap (prepend is for shutdown,
after the writer stopped).
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from daz.private_files import open_private

log = logging.getLogger(__name__)


class SpillFile:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._pending: list[str] = []  # appended, not yet written
        self._read_offset = 0  # bytes of the file already consumed
        self._size = 0  # bytes written (and synced) so far
        self.unread = 0  # lines written and not consumed yet
        self.write_error: str | None = None  # why the last write failed (a full disk), if it did
        self._lock = asyncio.Lock()
        self._flushing = False

    # ------------------------------------------------------------------ state

    def open_existing(self) -> int:
        """Adopt what an earlier run left; returns how many lines are waiting."""
        lines = 0
        size = 0
        last = b"\n"
        try:
            with open(self.path, "rb") as f:
                while chunk := f.read(1 << 20):
                    lines += chunk.count(b"\n")
                    size += len(chunk)
                    last = chunk[-1:]
        except FileNotFoundError:
            pass
        if last != b"\n":
            # A run died mid-write: end the torn line, so the next append starts a line of its
            # own (the torn one fails to parse and is set aside; it was never acknowledged).
            with open(self.path, "ab") as f:
                f.write(b"\n")
                f.flush()
                os.fsync(f.fileno())
            size += 1
            lines += 1
        self._size = size
        self._read_offset = 0
        self.unread = lines
        return lines

    @property
    def pending(self) -> int:
        """Lines appended but not yet on disk."""
        return len(self._pending)

    @property
    def has_unread(self) -> bool:
        """Lines on disk not consumed yet."""
        return self._read_offset < self._size

    @property
    def waiting(self) -> int:
        return self.unread + len(self._pending)

    @property
    def idle(self) -> bool:
        return not self._pending and not self._flushing

    # ------------------------------------------------------------------ writing

    def take_pending(self, max_lines: int) -> list[str]:
        """Take up to ``max_lines`` of the oldest lines not yet on disk, for the caller to
        write elsewhere (the database, while the disk is full); ``give_back`` what it could
        not."""
        taken, self._pending = self._pending[:max_lines], self._pending[max_lines:]
        return taken

    def give_back(self, lines: list[str]) -> None:
        self._pending[:0] = lines

    def append(self, line: str) -> None:
        if "\n" in line:  # JSON never has a raw newline; keep the one-line-per-entry rule
            line = line.replace("\n", "\\n")
        self._pending.append(line)

    async def flush(self) -> int:
        """Write and fsync what was appended; returns lines written. Raises OSError."""
        async with self._lock:
            if not self._pending:
                return 0
            lines, self._pending = self._pending, []
            self._flushing = True
            try:
                data = ("\n".join(lines) + "\n").encode("utf-8")
                await asyncio.to_thread(self._append_bytes, data)
            except BaseException as exc:
                self._pending[:0] = lines  # still ours; nothing is lost
                self._failed(exc)
                raise
            finally:
                self._flushing = False
            self.write_error = None
            self._size += len(data)
            self.unread += len(lines)
            return len(lines)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, OSError):
            self.write_error = f"{type(exc).__name__}: {exc}"

    def _append_bytes(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        except OSError:
            # A full disk may have taken part of the group: cut the file back to the last
            # whole line written before, so nothing half-written is ever read (the group
            # stays pending and is written again, whole).
            try:
                os.ftruncate(fd, self._size)
            except OSError:
                pass  # then the torn line is set aside at the next start, as after a crash
            raise
        finally:
            os.close(fd)

    async def prepend(self, lines: list[str]) -> None:
        """Put ``lines`` before everything not yet consumed (shutdown: memory is older than the
        file). Rewrites the unread part into a new file, then renames it over the old one."""
        if not lines:
            return
        async with self._lock:
            pending, self._pending = self._pending, []
            head = ("\n".join(line.replace("\n", "\\n") for line in lines) + "\n").encode()
            tail = ("\n".join(pending) + "\n").encode() if pending else b""
            try:
                size = await asyncio.to_thread(self._rewrite, head, tail)
            except BaseException as exc:
                self._pending[:0] = pending
                self._failed(exc)
                raise
            self.write_error = None
            self.unread += len(lines) + len(pending)
            self._size = size
            self._read_offset = 0

    def _rewrite(self, head: bytes, tail: bytes) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(self.path, "rb") as old:
                old.seek(self._read_offset)
                middle = old.read()
        except FileNotFoundError:
            middle = b""
        if middle and not middle.endswith(b"\n"):
            middle += b"\n"
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

    def read(self, max_lines: int) -> list[tuple[str, int]]:
        """Up to ``max_lines`` unread lines from disk, each with the offset just past it."""
        if self._read_offset >= self._size:
            return []
        out: list[tuple[str, int]] = []
        with open(self.path, "rb") as f:
            f.seek(self._read_offset)
            offset = self._read_offset
            while len(out) < max_lines and offset < self._size:
                raw = f.readline(self._size - offset)
                if not raw:
                    break
                offset += len(raw)
                out.append((raw.rstrip(b"\n").decode("utf-8", errors="replace"), offset))
        return out

    def consume(self, next_offset: int, lines: int) -> None:
        self._read_offset = next_offset
        self.unread = max(0, self.unread - lines)

    async def reset_if_drained(self) -> bool:
        """Empty the file once everything in it was consumed; True if it is empty now."""
        async with self._lock:
            if self._pending or self._read_offset < self._size:
                return False
            await asyncio.to_thread(self._truncate)
            self._size = self._read_offset = 0
            self.unread = 0
            self.write_error = None  # the file is gone; the next write tells again
            return True

    def _truncate(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


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
