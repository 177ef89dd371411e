"""Writes that wait, in order, while the database is away.

A plugin whose event handlers write state that later events build on (usertracker's sessions,
mediatracker's plays) cannot hand a failed write to the retry queue: that queue runs operations
in any order, and a leave applied before its join is a wrong session. ``HeldWrites`` keeps, per
room, the operations the database could not take, in the order the events came, and re-applies
them in that order when it answers again (a background task tries with a growing pause). While a
room holds anything, its new operations queue behind, so order is kept; the handler never
raises on an outage and never waits for a dead database more than once.

An operation is a JSON-able dict (it can be saved to a file at shutdown and loaded at the next
start); the plugin's ``apply(conn, op)`` runs it and carries the original event times in it.
Because an operation may have reached COMMIT before the connection died, ``apply`` must be
idempotent (a unique index, ``ON CONFLICT``, or a key derived from the event time).

* Transient failures (connection lost or refused, timeouts, "database is not connected", server
  shutting down or out of resources) hold the operation; one warning when a room starts holding,
  one info line when it has drained.
* Any other failure means the operation itself is bad: it is logged with the reason and dropped,
  and never blocks what follows.
* A room holds at most ``limit`` operations; past that the oldest is dropped and counted
  ("lost", logged at error level once per outage).

A plugin mixes ``HeldWritesConfig`` (``held_writes_limit``, ``held_retry_seconds``) into its
config, builds its queue with ``HeldWrites.for_plugin(self, apply)``, and calls ``restore()`` in
setup and ``shutdown()`` in teardown: what is still held when daz stops is saved to
``<data_dir>/<plugin name>-held.jsonl`` and applied first at the next start.

Prometheus: ``daz_held_writes_total{plugin, outcome}`` (held, applied, dropped, lost) and
``daz_held_writes_waiting{plugin}`` (operations waiting now).
"""
from __future__ import annotations

import asyncio
import collections
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, Field

from daz.db.errors import is_transient
from daz.db.jsonlines import append_json_lines, take_json_lines
from daz.metrics import own_series

Op = dict[str, Any]
Apply = Callable[[Any, Op], Awaitable[Any]]


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
                 op_timeout: float = 30.0, path: Path | None = None):
        self.plugin = plugin
        self.path = path  # where shutdown() saves what is still held and restore() reads it
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

    @classmethod
    def for_plugin(cls, plugin, apply: Apply) -> HeldWrites:
        """Held writes of ``plugin`` (config: ``HeldWritesConfig``), saved across restarts in
        ``<data_dir>/<plugin name>-held.jsonl``."""
        ctx, config = plugin.ctx, plugin.config
        return cls(plugin=plugin.name, db=ctx.db, apply=apply, log=plugin.log,
                   limit=config.held_writes_limit, metrics=ctx.metrics,
                   first_delay=min(0.5, config.held_retry_seconds),
                   max_delay=config.held_retry_seconds,
                   path=ctx.data_dir / f"{plugin.name}-held.jsonl"
                   if ctx.data_dir is not None else None)

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
            self._hold(room, op)
            return
        try:
            await self._run(op)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if transient(exc):
                self._hold(room, op, exc)
            else:
                self._drop(room, op, exc)

    async def _run(self, op: Op) -> Any:
        if self.db is None:
            raise ConnectionError("database is not connected")
        async with asyncio.timeout(self.op_timeout):
            async with self.db.acquire() as conn:
                return await self.apply(conn, op)

    def _hold(self, room: str, op: Op, exc: BaseException | None = None) -> None:
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
        if self._task is None or self._task.done():
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
        return done

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
        must not hang on a partitioned database), and return what is still held."""
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
        left = [(room, op) for room, q in self.queues.items() for op in q]
        self.queues.clear()
        self.metrics.waiting.labels(plugin=self.plugin).set(0)
        return left

    # ------------------------------------------------------------------ across restarts

    def save(self, path: Path | None, left: list[tuple[str, Op]]) -> None:
        """Write what is still held at shutdown to ``path`` (JSON lines, in order)."""
        if not left:
            return
        if path is None:
            self.log.error("%s: %d held write(s) lost at shutdown (no data dir)", self.plugin,
                           len(left))
            return
        append_json_lines(path, ({"room": room, "op": op} for room, op in left))
        self.log.warning("%s: database still away at shutdown; %d held write(s) saved to %s,"
                         " applied at the next start", self.plugin, len(left), path)

    def load(self, path: Path | None) -> list[tuple[str, Op]]:
        """Read (and remove) what a previous shutdown saved."""
        out = take_json_lines(path, _saved_item, log=self.log, owner=self.plugin)
        if out:
            self.log.info("%s: %d write(s) held at the last shutdown will be applied",
                          self.plugin, len(out))
        return out

    async def restore(self) -> None:
        """At start: apply (or hold again, in order) what the last shutdown saved to ``path``."""
        if self.db is None:
            return
        for room, op in self.load(self.path):
            await self.submit(room, op)

    async def shutdown(self, keep: Callable[[Op], bool] | None = None) -> None:
        """At stop: try the held writes once more and save the rest (those ``keep`` accepts) to
        ``path`` for the next start."""
        left = await self.close()
        self.save(self.path, [(room, op) for room, op in left if keep is None or keep(op)])

    async def save_now(self, keep: Callable[[Op], bool] | None = None) -> None:
        """At stop, with the database away: no more attempts, everything held (that ``keep``
        accepts) goes to ``path`` now. Writes held after this are saved by a later call."""
        await self._stop_draining()
        left = self._take_all()
        self.save(self.path, [(room, op) for room, op in left if keep is None or keep(op)])


def _saved_item(item: Any) -> tuple[str, Op]:
    return str(item["room"]), dict(item["op"])


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _describe(op: Op) -> str:
    return json.dumps(op, default=str)[:300]
