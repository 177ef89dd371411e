"""Retention: how long each kind of logged row is kept (``core.retention``), and the pruning.

A busy channel logs about 1 GB a year, plus ~1.7 GB a year of ``mediaUpdate`` events in a room
that plays around the clock (the server sends one every few seconds; they only say where the
video was) and ~0.7 GB of gallery health checks. By default chat, PMs, sessions and plays are
kept forever, mediaUpdate events 30 days and the gallery health log 90 days; 0 keeps forever.

Rows go in small batches, each its own short transaction, oldest first through an index on the
time column, with a pause between batches: a live bot's writers never wait for a prune.
Aggregates (analytics hours, days and people, media stats, the library, gallery stats) are
never pruned: a chart of 2023 stays right after the 2023 chat lines are gone.

``daz db prune [--dry-run]`` runs it once; the running bot runs it daily (``RetentionTask``).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from daz.clock import Clock
from daz.db.pool import rows_affected, table_exists

log = logging.getLogger(__name__)

MEDIA_UPDATE = "cytube.event.mediaUpdate"
CHAT = "cytube.event.chatMsg"
PM_TYPES = ("cytube.event.pm", "cytube.event.pm.sent")


@dataclass(frozen=True)
class Rule:
    kind: str  # what a person calls these rows
    setting: str  # the core.retention key giving the days
    table: str
    time_column: str
    condition: str = "true"  # which rows of the table the rule covers
    aware: bool = False  # timestamptz (else UTC wall clock in a timestamp column)


RULES = (
    Rule("mediaUpdate core events", "media_update_events_days", "daz_core_events", "timestamp",
         f"event_type = '{MEDIA_UPDATE}'"),
    Rule("gallery health checks", "gallery_health_log_days", "daz_gallery_health_log",
         "check_time", aware=True),
    Rule("chat lines", "chat_days", "daz_chat_log", "timestamp"),
    Rule("chat core events", "chat_days", "daz_core_events", "timestamp",
         f"event_type = '{CHAT}'"),
    Rule("private messages", "private_messages_days", "daz_private_messages", "timestamp"),
    Rule("private message core events", "private_messages_days", "daz_core_events", "timestamp",
         "event_type IN (" + ", ".join(f"'{t}'" for t in PM_TYPES) + ")"),
    Rule("closed sessions", "sessions_days", "daz_user_tracker_sessions", "left_at",
         "is_active = false"),
    Rule("finished plays", "plays_days", "daz_mediatracker_plays", "started_at",
         "ended_at IS NOT NULL"),
)


@dataclass
class Outcome:
    rule: Rule
    days: int
    cutoff: datetime | None  # None: kept forever
    rows: int = 0  # removed (or, on a dry run, that would be)
    skipped: str = ""  # why nothing was looked at (table missing)


def _cutoff(rule: Rule, days: int, now: datetime) -> datetime:
    moment = now.astimezone(UTC) - timedelta(days=days)
    return moment if rule.aware else moment.replace(tzinfo=None)


def _where(rule: Rule) -> str:
    return f"{rule.condition} AND {rule.time_column} < $1"


async def prune(db: Any, retention: Any, *, now: datetime | None = None, dry_run: bool = False,
                sleep: Callable[[float], Any] = asyncio.sleep) -> list[Outcome]:
    """Apply every rule once; returns what each removed (or would remove, on a dry run)."""
    now = now or datetime.now(UTC)
    outcomes = []
    for rule in RULES:
        days = int(getattr(retention, rule.setting))
        cutoff = _cutoff(rule, days, now) if days else None
        outcome = Outcome(rule, days, cutoff)
        outcomes.append(outcome)
        if cutoff is None:
            continue
        if not await table_exists(db, rule.table):
            outcome.skipped = f"{rule.table} does not exist"
            continue
        if dry_run:
            outcome.rows = int(await db.fetchval(
                f"SELECT count(*) FROM {rule.table} WHERE {_where(rule)}", outcome.cutoff,
                timeout=600))
            continue
        outcome.rows = await _delete_in_batches(db, rule, cutoff, retention, sleep)
        if outcome.rows:
            log.info("retention: removed %d %s older than %d days", outcome.rows, rule.kind,
                     days)
    return outcomes


async def _delete_in_batches(db: Any, rule: Rule, cutoff: datetime, retention: Any,
                             sleep: Callable[[float], Any]) -> int:
    removed = 0
    while True:
        status = await db.execute(
            f"DELETE FROM {rule.table} WHERE id IN (SELECT id FROM {rule.table}"
            f" WHERE {_where(rule)} LIMIT $2)", cutoff, retention.batch_size, timeout=600)
        count = rows_affected(status)
        removed += count
        if count < retention.batch_size:
            return removed
        await sleep(retention.pause_seconds)


def describe(outcomes: list[Outcome], dry_run: bool) -> list[str]:
    """One line per rule, for ``daz db prune``."""
    lines = []
    verb = "would remove" if dry_run else "removed"
    for o in outcomes:
        if o.cutoff is None:
            lines.append(f"{o.rule.kind:<30} kept forever ({o.rule.setting} = 0)")
        elif o.skipped:
            lines.append(f"{o.rule.kind:<30} skipped: {o.skipped}")
        else:
            lines.append(f"{o.rule.kind:<30} {verb} {o.rows:,} row(s) older than {o.days} days"
                         f" (before {o.cutoff:%Y-%m-%d %H:%M} UTC)")
    return lines


class RetentionTask:
    """The running bot's daily prune. A failed run is logged and tried again next time."""

    def __init__(self, db: Any, retention: Any, clock: Clock | None = None):
        self.db = db
        self.retention = retention
        self.clock = clock or Clock()  # waits on it too, so a test moves days in no time
        self.task: asyncio.Task | None = None
        self.last: list[Outcome] = []
        self.runs = 0

    def start(self) -> None:
        if any(getattr(self.retention, rule.setting) for rule in RULES):
            self.task = asyncio.create_task(self._loop(), name="daz-retention")

    async def _loop(self) -> None:
        await self.clock.sleep(self.retention.first_run_minutes * 60)
        while True:
            try:
                self.last = await prune(self.db, self.retention, now=self.clock.now())
                self.runs += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("retention: pruning failed (%s: %s); trying again in %.0f h",
                            type(exc).__name__, exc, self.retention.interval_hours)
            await self.clock.sleep(self.retention.interval_hours * 3600)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass
            self.task = None
