"""Writes that wait, in order, while the database is away.

A plugin whose event handlers write state that later events build on (usertracker's sessions,
mediatracker's plays) cannot hand a failed write to the retry queue: that queue runs operations
in any order, and a leave applied before its join is a wrong session. ``HeldWrites`` keeps, per
room, the operations the database could not take, in the order the events came, and re-applies
them in that order when it answers again (a background task tries with a growing pause). While a
room holds anything, its new operations queue behind, so order is kept; the handler never
raises on an outage and never waits for a dead database more than once.

An operation is a JSON-able dict; the plugin's ``apply(conn, op)`` runs it and carries the
original event times in it. Because an operation may have reached COMMIT before the connection
died (or before a crash let the journal say so), ``apply`` must be idempotent (a unique index,
``ON CONFLICT``, or a key derived from the event time).

Every held operation is in the journal (``daz/journal.py``, the stream ``<plugin>-held``) before
``submit`` returns, so a crash during the outage loses nothing: the next start finds it there and
applies it first, in order. After each pass that applied something the stream is rewritten to
what is still held, and removed once nothing is.

* Transient failures (connection lost or refused, timeouts, "database is not connected", server
  shutting down or out of resources) hold the operation; one warning when a room starts holding,
  one info line when it has drained.
* Any other failure means the operation itself is bad: it is logged with the reason and dropped,
  and never blocks what follows.
* A room holds at most ``limit`` operations; past that the oldest is dropped and counted
  ("lost", logged at error level once per outage). A journal that cannot be written (a full
  disk, or the journal at its bound) keeps the operation in memory only, as the event log does.

A plugin mixes ``HeldWritesConfig`` (``held_writes_limit``, ``held_retry_seconds``) into its
config, builds its queue with ``HeldWrites.for_plugin(self, apply)``, and calls ``restore()`` in
setup, ``shutdown()`` in teardown and ``save_now()`` in ``save_for_next_start``.

Prometheus: ``daz_held_writes_total{plugin, outcome}`` (held, applied, dropped, lost) and
``daz_held_writes_waiting{plugin}`` (operations waiting now).
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, Field

from daz.db.errors import is_transient
from daz.journal import HeldJournal, JournalStream
from daz.metrics import own_series

Op = dict[str, Any]
Apply = Callable[[Any, Op], Awaitable[Any]]
Keep = Callable[[Op], bool]


def held_metrics(metrics) -> SimpleNamespace:
    return own_series(metrics, "held_writes", lambda registry: SimpleNamespace(
        events=Counter("daz_held_writes_total",
                       "Writes held while the database was away, and what became of them"
                       " (held, applied, dropped, lost)", ["plugin", "outcome"],
                       registry=registry),
        waiting=Gauge("daz_held_writes_waiting", "Writes waiting for the database now",
                      ["plugin"], registry=registry)))


def transient(exc: BaseException) -> bool:
    """Would the same write work once the database answers again?"""
    return is_transient(exc)


class HeldWritesConfig(BaseModel):
    """The config keys of a plugin that holds its writes (mix into its ``PluginConfig``)."""

    held_writes_limit: int = Field(10_000, ge=1, description="Writes held in memory per room "
                                   "while the database is away; past it the oldest are "
                                   "dropped (logged as an error)")
    held_retry_seconds: float = Field(5.0, gt=0, description="Longest pause between two "
                                      "attempts to apply held writes")


class HeldWrites:
    def __init__(self, *, plugin: str, db, apply: Apply, log: logging.Logger, limit: int = 10_000,
                 metrics=None, first_delay: float = 0.5, max_delay: float = 5.0,
                 op_timeout: float = 30.0, journal: JournalStream | None = None,
                 keep: Keep | None = None):
        self.plugin = plugin
        self.keep = keep  # which operations are worth applying at the next start
        self.db = db
        self.apply = apply
        self.log = log
        self.limit = limit
        self.first_delay, self.max_delay = first_delay, max_delay
        self.op_timeout = op_timeout
        self.queues: dict[str, collections.deque[Op]] = {}
        self.lost: dict[str, int] = {}  # per room, during the current outage
        self.dropped = 0
        self.metrics = held_metrics(metrics)
        self._task: asyncio.Task | None = None
        # Every held operation is in the journal until applied.
        self._kept = HeldJournal(journal, lambda: _records(self._held()), owner=plugin,
                                 what="held writes", log=log)
        self._stopped = False  # saved for the next start: no more draining in this run

    @classmethod
    def for_plugin(cls, plugin, apply: Apply, keep: Keep | None = None) -> HeldWrites:
        """Held writes of ``plugin`` (config: ``HeldWritesConfig``), kept in the journal's
        stream ``<plugin name>-held``; ``keep``: which of them the next start applies."""
        ctx, config = plugin.ctx, plugin.config
        journal = ctx.journal_stream(f"{plugin.name}-held")
        return cls(plugin=plugin.name, db=ctx.db, apply=apply, log=plugin.log,
                   limit=config.held_writes_limit, metrics=ctx.metrics,
                   first_delay=min(0.5, config.held_retry_seconds),
                   max_delay=config.held_retry_seconds, journal=journal, keep=keep)

    @property
    def journal(self) -> JournalStream | None:
        return self._kept.stream

    @journal.setter
    def journal(self, stream: JournalStream | None) -> None:
        self._kept.stream = stream

    # ------------------------------------------------------------------ state

    def holding(self, room: str | None = None) -> bool:
        return bool(self.queues.get(room)) if room is not None else any(self.queues.values())

    def waiting(self) -> int:
        return sum(len(q) for q in self.queues.values())

    def last(self, room: str) -> Op | None:
        q = self.queues.get(room)
        return q[-1] if q else None

    def _count(self, outcome: str, n: int = 1) -> None:
        self.metrics.events.labels(plugin=self.plugin, outcome=outcome).inc(n)
        self.metrics.waiting.labels(plugin=self.plugin).set(self.waiting())

    # ------------------------------------------------------------------ writing

    async def submit(self, room: str, op: Op) -> None:
        """Apply ``op`` now, or queue it behind what the room already holds. Never raises for
        a database problem (a bad operation is logged and dropped)."""
        if self.queues.get(room):
            await self._hold(room, op)
            return
        try:
            await self._run(op)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if transient(exc):
                await self._hold(room, op, exc)
            else:
                self._drop(room, op, exc)

    async def _run(self, op: Op) -> Any:
        async with asyncio.timeout(self.op_timeout):
            async with self.db.acquire() as conn:
                return await self.apply(conn, op)

    async def _hold(self, room: str, op: Op, exc: BaseException | None = None) -> None:
        q = self.queues.setdefault(room, collections.deque())
        if not q:
            self.lost[room] = 0
            self.log.warning("%s %s: database unavailable (%s); holding its writes in order"
                             " until it answers", self.plugin, room,
                             _reason(exc) if exc else "earlier writes held")
        if len(q) >= self.limit:
            gone = q.popleft()
            self.lost[room] += 1
            self._count("lost")
            if self.lost[room] == 1:
                self.log.error("%s %s: more than %d writes held; dropping the oldest (first: %s)",
                               self.plugin, room, self.limit, _describe(gone))
        q.append(op)
        self._count("held")
        await self._kept.write("append", _records([(room, op)]), seq=self._kept.hold())
        if not self._stopped and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._drain_forever(), name=f"{self.plugin}:held")

    def _drop(self, room: str, op: Op, exc: BaseException) -> None:
        self.dropped += 1
        self._count("dropped")
        self.log.error("%s %s: write refused by the database, dropped (%s): %s", self.plugin,
                       room, _reason(exc), _describe(op))

    # ------------------------------------------------------------------ draining

    async def drain(self) -> int:
        """One pass: every room's held operations in order, up to its first transient failure.
        Returns how many were applied (or dropped as bad)."""
        done = 0
        for room in list(self.queues):
            q = self.queues[room]
            applied = 0
            while q:
                try:
                    await self._run(q[0])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if transient(exc):
                        break
                    self._drop(room, q[0], exc)
                else:
                    applied += 1
                    self._count("applied")
                q.popleft()
                done += 1
            if not q:
                del self.queues[room]
                lost = self.lost.pop(room, 0)
                self.log.info("%s %s: database answers again; held writes applied in order"
                              " (%d in this pass%s)", self.plugin, room, applied,
                              f", {lost} lost to the limit" if lost else "")
        self.metrics.waiting.labels(plugin=self.plugin).set(self.waiting())
        if done and not self._stopped:
            await self._kept.write("replace", None)
        return done

    def _held(self) -> list[tuple[str, Op]]:
        return [(room, op) for room, q in self.queues.items() for op in q]

    async def _drain_forever(self) -> None:
        delay = self.first_delay
        while self.holding():
            await asyncio.sleep(delay)
            try:
                progressed = await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the task die with work held
                self.log.warning("%s: draining held writes failed: %s", self.plugin, exc)
                progressed = 0
            delay = self.first_delay if progressed else min(delay * 2, self.max_delay)

    async def close(self, timeout: float = 5.0) -> list[tuple[str, Op]]:
        """Stop the background task, try once more (each write bounded by ``timeout``: shutdown
        must not hang on a partitioned database), and return what is still held (the journal
        holds exactly that now, for the next start)."""
        await self._stop_draining()
        if self.holding():
            usual, self.op_timeout = self.op_timeout, min(self.op_timeout, timeout)
            try:
                await self.drain()
            except Exception as exc:
                self.log.warning("%s: last drain of held writes failed: %s", self.plugin, exc)
            finally:
                self.op_timeout = usual
        return self._take_all()

    async def _stop_draining(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _take_all(self) -> list[tuple[str, Op]]:
        left = self._held()
        self.queues.clear()
        self.metrics.waiting.labels(plugin=self.plugin).set(0)
        return left

    # ------------------------------------------------------------------ across restarts

    async def save(self, items: list[tuple[str, Op]]) -> None:
        """Add ``items`` (not held so far: last-chat times, say) to the journal, behind what is
        held, for the next start."""
        if not items:
            return
        if self.journal is None:
            self.log.error("%s: %d write(s) lost at shutdown (no data dir)", self.plugin,
                           len(items))
            return
        if await self._kept.write("append", _records(items)):
            self.log.warning("%s: %d write(s) kept in %s for the next start", self.plugin,
                             len(items), self.journal.path)

    def load(self) -> list[tuple[str, Op]]:
        """Read (and remove) what the journal holds for this plugin (tools and tests; the
        plugin itself uses ``restore``)."""
        if self.journal is None:
            return []
        return self.journal.take_all(_saved_item, owner=self.plugin)

    async def restore(self) -> None:
        """At start: apply, in order, what an earlier run left in the journal (held again if
        the database is away; it stays in the journal until applied)."""
        if self.journal is None:
            return
        self._stopped = False
        saved = await asyncio.to_thread(self.journal.load, _saved_item, owner=self.plugin)
        saved = [(room, op) for room, op in saved if self.keep is None or self.keep(op)]
        if not saved:
            await self._kept.write("replace", [])  # only set-aside or unkept records
            return
        self.log.info("%s: %d write(s) held by an earlier run will be applied", self.plugin,
                      len(saved))
        for room, op in saved:
            self.queues.setdefault(room, collections.deque()).append(op)
            self.lost.setdefault(room, 0)
        await self.drain()
        if self.holding():
            self.log.warning("%s: database unavailable; holding %d earlier write(s) in order"
                             " until it answers", self.plugin, self.waiting())
            self._task = asyncio.create_task(self._drain_forever(), name=f"{self.plugin}:held")

    async def shutdown(self, keep: Keep | None = None) -> None:
        """At stop: try the held writes once more; what is left (what ``keep`` accepts) stays
        in the journal for the next start."""
        left = await self.close()
        await self._keep_for_next_start(left, keep)

    async def save_now(self, keep: Keep | None = None) -> None:
        """At stop, with the database away: no more attempts; what is held (what ``keep``
        accepts) is what the journal keeps for the next start. Writes held after this are
        appended behind it."""
        await self._stop_draining()
        await self._keep_for_next_start(self._take_all(), keep)

    async def _keep_for_next_start(self, left: list[tuple[str, Op]], keep: Keep | None) -> None:
        keep = keep or self.keep
        kept = [(room, op) for room, op in left if keep is None or keep(op)]
        if self._stopped:
            return  # already in the journal, appended when held
        self._stopped = True
        if self.journal is None:
            if kept:
                self.log.error("%s: %d held write(s) lost at shutdown (no data dir)",
                               self.plugin, len(kept))
            return
        # The journal holds every operation still held (and some already applied or pushed
        # out by the limit since the last pass): it becomes exactly what is kept.
        if await self._kept.write("replace", _records(kept)) and kept:
            self.log.warning("%s: database still away at shutdown; %d held write(s) kept in %s,"
                             " applied at the next start", self.plugin, len(kept),
                             self.journal.path)


def _records(items: list[tuple[str, Op]]) -> list[dict]:
    return [{"room": room, "op": op} for room, op in items]


def _saved_item(item: Any) -> tuple[str, Op]:
    return str(item["room"]), dict(item["op"])


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _describe(op: Op) -> str:
    return json.dumps(op, default=str)[:300]
