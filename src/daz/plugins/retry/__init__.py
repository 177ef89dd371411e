"""retry: a persistent queue of failed operations, run again by the plugin that owns them.

A plugin whose write fails calls ``self.defer_retry(operation, payload, key=...)``; that is a bus
request ``retry.enqueue`` answered here with a row in ``daz_retry_queue`` (``correlation_id`` =
the idempotency key, ``plugin_name``, ``operation_type`` = the operation, ``event_data`` = the
payload, ``event_type`` = the bus topic that runs it: ``retry.run.<plugin>``).

Workers poll ``acquire_retry_batch`` (``FOR UPDATE SKIP LOCKED``, so several daz processes share
one queue), hand each row back with ``bus.request("retry.run.<plugin>", {operation, payload})``
and record the outcome: ``complete_retry`` on success; on failure ``fail_retry`` (daz's 025):
a later ``retry_after`` with exponential backoff and jitter, or ``dead_letter`` once
``max_retries`` attempts have failed. A row that can never run (its plugin has no such
operation, or ``event_data`` is not an object, as in rows the Go bot left) is ``failed`` at once.
Rows a crashed process left in ``processing`` are taken back by ``acquire_retry_batch`` after
their ``timeout_seconds`` (that attempt counts), and finished rows are cleaned up daily
(``cleanup_old_retries``). None of that ran in the Go bot (docs/upgrading-from-go.md).

When the database itself is down an enqueue must not lose the operation: it is kept in a bounded
list, written to the journal (``daz.journal``, stream ``retry-pending``) before the enqueue is
answered, and inserted in order when the database answers again (at the latest at the next start);
the journal is rewritten to what is still waiting after every pass. Its key makes a second insert
after a crash harmless (``ON CONFLICT (correlation_id)``). This is how every plugin's deferred write
(tell's delivery marks, greeter's history, eventfilter's switches) survives an outage.

Config: ``plugins.retry`` in docs/config.md.
"""
from __future__ import annotations

import asyncio
import collections
import json
import random
import time
import uuid
from typing import Any

from pydantic import BaseModel, Field

from daz.db.errors import is_transient
from daz.journal import HeldJournal
from daz.plugins.base import Plugin, PluginConfig, every
from daz.plugins.retry.metrics import retry_metrics

JOURNAL_STREAM = "retry-pending"


class Policy(BaseModel):
    """One entry of ``plugins.retry.retry_policies``: what differs for one operation type; an
    unset key takes the plugin-wide default."""

    max_retries: int | None = Field(None, ge=1, description="Attempts before a row is dead "
                                    "letter; default: default_max_retries")
    initial_delay_seconds: float | None = Field(None, ge=0, description="Wait before the "
                                                "second attempt; default: initial_delay_seconds")
    max_delay_seconds: float | None = Field(None, ge=0, description="Longest wait between "
                                            "attempts; default: max_delay_seconds")
    backoff_multiplier: float | None = Field(None, ge=1, description="Each wait is the last "
                                             "one times this; default: backoff_multiplier")
    timeout_seconds: int | None = Field(None, ge=1, description="One attempt may take this "
                                        "long; default: default_timeout_seconds")


class RetryConfig(PluginConfig):
    poll_interval_seconds: float = Field(5.0, gt=0, description="Seconds between two looks for "
                                         "rows that are due")
    first_poll_seconds: float = Field(2.0, ge=0, description="First look after start-up")
    batch_size: int = Field(10, ge=1, le=1000, description="Rows taken per look (at most "
                            "worker_count: a taken row must start at once)")
    worker_count: int = Field(3, ge=1, le=100, description="Operations run at once")
    default_max_retries: int = Field(3, ge=1, description="Attempts before a row is dead "
                                     "letter, unless the caller or a policy says otherwise")
    default_timeout_seconds: int = Field(30, ge=1, description="One attempt may take this "
                                         "long; a row still processing after it (its process "
                                         "died) is taken back")
    initial_delay_seconds: float = Field(2.0, ge=0, description="Wait before the second "
                                         "attempt")
    max_delay_seconds: float = Field(300.0, ge=0, description="Longest wait between attempts")
    backoff_multiplier: float = Field(2.0, ge=1, description="Each wait is the last one times "
                                      "this")
    jitter: float = Field(0.2, ge=0, le=1, description="Waits vary by ± this fraction, so "
                          "failed rows do not retry in step")
    retention_days: int = Field(7, ge=1, description="Finished rows are deleted after this "
                                "many days")
    cleanup_interval_hours: float = Field(24.0, gt=0, description="How often finished rows are "
                                          "cleaned up")
    insert_timeout_seconds: float = Field(3.0, gt=0, description="Queuing a row may take this "
                                          "long; past it the database counts as down and the "
                                          "operation is held in memory")
    max_pending: int = Field(1000, ge=1, description="Operations held while the database is "
                             "down (each also in the journal, <data_dir>/journal/"
                             "retry-pending.journal, until inserted); past it the oldest is "
                             "dropped")
    retry_policies: dict[str, Policy] = Field(default_factory=dict, description="Per operation "
                                              "type, what differs from the defaults above (Go "
                                              "key)")


class DatabaseUnavailable(Exception):
    pass


def transient(exc: BaseException) -> bool:
    """Could this write work later unchanged (the database is down or restarting)? An error
    without an SQLSTATE is not enough: a value that cannot be encoded never will be."""
    return is_transient(exc)


class Retry(Plugin[RetryConfig]):
    name = "retry"
    after = ("sql",)
    description = "Persistent retry queue for failed operations of other plugins"

    async def setup(self) -> None:
        self.pending: collections.deque[dict] = collections.deque()
        self.unmarked: list[int] = []  # succeeded, but complete_retry did not reach the db
        self.lost = 0
        self.metrics = retry_metrics(self.ctx.metrics)
        self._workers = asyncio.Semaphore(self.config.worker_count)
        # The first poll cleans up: a bot restarted more often than daily must still clean.
        self._last_cleanup: float | None = None
        self._saved = False  # kept for the next start: later holds are appended behind
        self._kept = HeldJournal(self.ctx.journal_stream(JOURNAL_STREAM),
                                 lambda: list(self.pending), owner="retry",
                                 what="held operations", log=self.log)
        self._load_spill()
        self.ctx.bus.respond("retry.enqueue", self.enqueue, owner=self.name)

    async def teardown(self) -> None:
        self.ctx.bus.stop_responding("retry.enqueue")
        await self._flush_pending()
        await self._spill()

    async def save_for_next_start(self) -> None:
        await self._spill()

    # ------------------------------------------------------------------ enqueue

    def _policy(self, operation: str) -> dict[str, Any]:
        c = self.config
        base = {"max_retries": c.default_max_retries, "initial": c.initial_delay_seconds,
                "max": c.max_delay_seconds, "factor": c.backoff_multiplier,
                "timeout": c.default_timeout_seconds}
        p = c.retry_policies.get(operation)
        if p is not None:
            for key, value in (("max_retries", p.max_retries), ("initial", p.initial_delay_seconds),
                               ("max", p.max_delay_seconds), ("factor", p.backoff_multiplier),
                               ("timeout", p.timeout_seconds)):
                if value is not None:
                    base[key] = value
        return base

    async def enqueue(self, request: dict) -> int | None:
        """The ``retry.enqueue`` responder: the row id, or None while the database is down
        (the operation is then held and inserted later; it is not lost)."""
        if not isinstance(request, dict) or not request.get("plugin") or not request.get(
                "operation"):
            raise ValueError("retry.enqueue needs at least 'plugin' and 'operation'")
        payload = request.get("payload") or {}
        policy = self._policy(str(request["operation"]))
        item = {
            "key": str(request.get("key") or f"retry-{uuid.uuid4()}")[:255],
            "plugin": str(request["plugin"])[:100],
            "operation": str(request["operation"])[:100],
            "payload": json.dumps(payload),  # fails here, to the caller, if it is not JSON
            "error": str(request.get("error") or "")[:2000],
            "max_retries": int(request.get("max_retries") or policy["max_retries"]),
            "priority": int(request.get("priority") or 0),
            "timeout": int(policy["timeout"]),
            "delay": float(policy["initial"]),
        }
        try:
            return await self._insert(item)
        except DatabaseUnavailable as exc:
            await self._hold(item, exc)
            return None

    async def _insert(self, item: dict) -> int:
        db = self.ctx.db
        try:
            # Same key = same operation: a second enqueue returns the first row, unchanged.
            row_id = await asyncio.wait_for(db.fetchval(
                "WITH ins AS (INSERT INTO daz_retry_queue (correlation_id, plugin_name,"
                " operation_type, event_type, event_data, max_retries, retry_after, priority,"
                " timeout_seconds, last_error)"
                " VALUES ($1, $2, $3, $4, $5::text::jsonb, $6,"
                " now() + make_interval(secs => $7), $8, $9, $10)"
                " ON CONFLICT (correlation_id) DO NOTHING RETURNING id)"
                " SELECT id FROM ins UNION ALL"
                " SELECT id FROM daz_retry_queue WHERE correlation_id = $1 LIMIT 1",
                item["key"], item["plugin"], item["operation"], f"retry.run.{item['plugin']}",
                item["payload"], item["max_retries"], item["delay"], item["priority"],
                item["timeout"], item["error"] or None), self.config.insert_timeout_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if transient(exc):
                raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
            raise
        self.metrics.events.labels(plugin=item["plugin"], outcome="queued").inc()
        return row_id

    async def _hold(self, item: dict, exc: BaseException) -> None:
        if len(self.pending) >= self.config.max_pending:
            dropped = self.pending.popleft()
            self.lost += 1
            self.metrics.events.labels(plugin=dropped["plugin"], outcome="lost").inc()
            self.log.error("retry: memory queue full while the database is down; lost %s %s",
                           dropped["operation"], dropped["key"])
        self.pending.append(item)
        self.metrics.events.labels(plugin=item["plugin"], outcome="held").inc()
        self.metrics.held.set(len(self.pending))
        self.log.warning("retry: database unavailable (%s); holding %s %s in memory (%d held)",
                         exc, item["operation"], item["key"], len(self.pending))
        await self._kept.write("append", [item], seq=self._kept.hold())

    async def _flush_pending(self) -> int:
        done = 0
        while self.pending:
            try:
                await self._insert(self.pending[0])
            except DatabaseUnavailable:
                break
            except Exception as exc:  # the row itself is bad: it will never insert
                self.log.error("retry: dropping held %s: %s", self.pending[0]["key"], exc)
            self.pending.popleft()
            done += 1
        self.metrics.held.set(len(self.pending))
        if done and not self._saved:
            await self._kept.write("replace", None)
        return done

    # ------------------------------------------------------------------ workers

    # first_poll_seconds may be 0 (poll at once), which a config-named first delay refuses.
    @every(config="poll_interval_seconds", initial_delay=lambda config: config.first_poll_seconds)
    async def poll_timer(self) -> None:
        await self.poll()

    async def poll(self) -> int:
        """One pass: held items in, due (and abandoned) rows run. Returns rows run."""
        await self._flush_pending()
        await self._mark_completed()
        if self._last_cleanup is None or (time.monotonic() - self._last_cleanup
                                          >= self.config.cleanup_interval_hours * 3600):
            await self.cleanup()
        # A claimed row must start at once: acquire_retry_batch takes back (from any process) a
        # row still 'processing' after its timeout_seconds, so a row left waiting for a worker
        # here could be run twice. Claim no more than there are workers.
        size = min(self.config.batch_size, self.config.worker_count)
        ran = 0
        while True:
            rows = await self.ctx.db.fetch("SELECT * FROM acquire_retry_batch($1)", size)
            if not rows:
                break
            await asyncio.gather(*(self._run(dict(row)) for row in rows))
            ran += len(rows)
            if len(rows) < size:
                break
        return ran

    async def _run(self, row: dict) -> None:
        async with self._workers:
            payload = row["event_data"]
            try:
                if isinstance(payload, str):
                    payload = json.loads(payload)
                if not isinstance(payload, dict):
                    raise ValueError(f"event_data is {type(payload).__name__}, not an object")
            except ValueError as exc:  # a row we did not write (Go's failure events): never runs
                await self._give_up(row, f"unusable event_data: {exc}")
                return
            topic = row["event_type"] or f"retry.run.{row['plugin_name']}"
            started = time.perf_counter()
            try:
                await self.ctx.bus.request(topic, {"operation": row["operation_type"],
                                                   "payload": payload},
                                           timeout=row["timeout_seconds"] or 30)
            except asyncio.CancelledError:
                raise
            except NotImplementedError as exc:  # the plugin has no such operation: trying again
                await self._give_up(row, f"not runnable: {exc}")  # would change nothing
                return
            except Exception as exc:
                await self._failed(row, exc)
                return
            finally:
                self.metrics.seconds.labels(plugin=row["plugin_name"]).observe(
                    time.perf_counter() - started)
            self.metrics.events.labels(plugin=row["plugin_name"], outcome="succeeded").inc()
            try:
                await self.ctx.db.execute("SELECT complete_retry($1)", row["id"])
            except Exception as exc:
                # It ran; only the bookkeeping failed. Mark it later rather than run it again.
                self.log.warning("retry: %s ran but could not be marked done (%s)",
                                 row["correlation_id"], exc)
                self.unmarked.append(row["id"])

    async def _give_up(self, row: dict, error: str) -> None:
        """A row that can never succeed: ``failed`` at once (``dead_letter`` is for rows that
        ran out of attempts)."""
        self.metrics.events.labels(plugin=row["plugin_name"], outcome="failed").inc()
        self.log.error("retry: %s %s cannot be run; marked failed: %s", row["plugin_name"],
                       row["correlation_id"], error)
        await self.ctx.db.execute(
            "UPDATE daz_retry_queue SET status = 'failed', last_error = $2, updated_at = now()"
            " WHERE id = $1", row["id"], error[:2000])

    async def _failed(self, row: dict, exc: BaseException) -> None:
        """One failed attempt: ``fail_retry`` backs the row off (exponential, capped, with
        jitter, computed in the database so every daz process agrees) or dead-letters it."""
        error = f"{type(exc).__name__}: {exc}"[:2000]
        attempt = (row["retry_count"] or 0) + 1
        plugin = row["plugin_name"]
        p = self._policy(row["operation_type"])
        status = await self.ctx.db.fetchval(
            "SELECT fail_retry($1, $2, $3, $4, $5, $6)", row["id"], error, float(p["initial"]),
            float(p["max"]), float(p["factor"]), float(self.config.jitter))
        if status == "dead_letter":
            self.metrics.events.labels(plugin=plugin, outcome="dead_letter").inc()
            self.log.error("retry: %s %s failed %d times; moved to dead letter: %s", plugin,
                           row["correlation_id"], attempt, error)
            return
        self.metrics.events.labels(plugin=plugin, outcome="retried").inc()
        self.log.info("retry: %s %s failed (attempt %d of %d), next try in about %.0fs: %s",
                      plugin, row["correlation_id"], attempt, row["max_retries"],
                      self.backoff(row["operation_type"], attempt, jitter=False), error)

    def backoff(self, operation: str, attempt: int, *, jitter: bool = True) -> float:
        """Seconds before attempt ``attempt + 1``: initial·factor^(attempt-1), capped, ± jitter
        (the formula ``fail_retry`` applies in the database)."""
        p = self._policy(operation)
        delay = min(p["initial"] * p["factor"] ** (attempt - 1), p["max"])
        j = self.config.jitter if jitter else 0.0
        return max(0.0, delay * (1 + random.uniform(-j, j)))

    async def _mark_completed(self) -> None:
        while self.unmarked:
            await self.ctx.db.execute("SELECT complete_retry($1)", self.unmarked[0])
            self.unmarked.pop(0)

    async def cleanup(self) -> int:
        self._last_cleanup = time.monotonic()
        deleted = await self.ctx.db.fetchval("SELECT cleanup_old_retries($1)",
                                             self.config.retention_days)
        if deleted:
            self.log.info("retry: removed %d finished row(s) older than %d days", deleted,
                          self.config.retention_days)
        return deleted or 0

    # ------------------------------------------------------------------ across restarts

    async def _spill(self) -> None:
        """At stop: what is still held is what the journal keeps for the next start (operations
        held after this were appended when they were)."""
        stream = self._kept.stream
        held, self._saved = self._saved, True
        if held:
            self.pending.clear()  # in the journal already
            return
        if stream is None:
            if self.pending:
                self.log.error("retry: %d held operation(s) lost at shutdown (no data dir)",
                               len(self.pending))
            return

        def lost(exc: OSError) -> None:
            self.log.error("retry: %d held operation(s) lost at shutdown: %s cannot be written"
                           " (%s)", len(self.pending), stream.path, exc)

        # Through the held journal: an append of a hold may still be writing in its thread.
        if not await self._kept.write("replace", list(self.pending), on_error=lost):
            return
        if self.pending:
            self.log.warning("retry: database still down at shutdown; %d operation(s) kept in"
                             " %s", len(self.pending), stream.path)
        self.pending.clear()

    def _load_spill(self) -> None:
        """At start: what an earlier run held (it stays in the journal until inserted)."""
        stream = self._kept.stream
        if stream is None:
            return
        self.pending.extend(stream.load(_as_is, owner="retry"))
        if self.pending:
            self.log.info("retry: %d operation(s) from an earlier run will be queued",
                          len(self.pending))


def _as_is(item: Any) -> Any:
    return item
