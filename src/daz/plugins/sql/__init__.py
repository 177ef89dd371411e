"""sql: the event log. Every CyTube event a room receives is recorded, once, in PostgreSQL.

Tables (Go Daz names, ``migrations/``): ``daz_core_events`` (every event: type, channel, time,
sender, message HTML, CyTube ms time, media fields, the payload as received in ``raw_data``),
``daz_chat_log`` (public chat, with the sender's rank), ``daz_user_activity`` (joins, leaves,
rank and AFK changes), ``daz_private_messages`` (PMs to and from the bot). Rows carry an
``event_uid``: for received chat and PMs with a CyTube time, derived from channel, ms time,
sender (PMs: and recipient) and text; for the rest, including PMs daz sends, random and fixed on
receipt. Chat is also unique on (channel, ms time, sender, md5 of the text):
Go's key plus the text, so a sender's two different lines in one millisecond are both kept, and
Go-era rows (no uid) still match. So the history the server replays at every join, and a batch
retried or replayed from the journal, is not stored twice. A replayed line that was never
stored (said while daz was away) is stored once, with the time it was said (its CyTube ``time``)
as ``timestamp`` in every table, not the time daz rejoined.

The plugin subscribes to ``cytube.event.*`` including what other plugins ignore (replayed
history, our own echoes, ``[server]`` lines) with back-pressure instead of drops, plus
``daz.room.sent`` for the PMs daz sends (``cytube.event.pm.sent``; our public chat comes back
as a chatMsg echo). Writing is done by ``eventlog.EventLog`` (this package; ``eventrows`` turns
an event into rows): batched, deduplicated, row by row when a batch is refused, spilled to the
journal's ``eventlog`` stream (``<data_dir>/journal/eventlog.journal``, see ``daz.journal``)
while the database is away and replayed in order when it returns or at the next start.

Config: ``plugins.sql`` in docs/config.md (Go Daz's keys, same defaults but the batch size).
Without ``logger_rules`` every ``cytube.event.*`` goes to ``daz_core_events``, chat to
``daz_chat_log``, addUser/userLeave/setUserRank/setAFK to ``daz_user_activity``, pm and pm.sent
to ``daz_private_messages``; with them, the rules alone decide (a Go config with its one core
rule logs to ``daz_core_events`` only). In memory while the database writes, a burst is held up
to ``core_event_burst_queue_size``; past that, the room reads its socket only as fast as the
database writes (back-pressure through this plugin's bus lane) instead of spilling, which costs
more CPU than the writes and would only slow the writer (see ``eventlog``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from daz.cytube.events import CytubeEvent
from daz.events import MessageSent
from daz.journal import Journal, JournalStream
from daz.plugins.base import Plugin, PluginConfig, on
from daz.plugins.sql.eventlog import EventLog
from daz.plugins.sql.rules import PM_SENT, LoggerRule, Router, entry_for_event, entry_for_sent_pm

JOURNAL_STREAM = "eventlog"


class SqlConfig(PluginConfig):
    # 256, not Go's 64: under a chat flood 256 wrote ~7 % more events/s end to end (512 no
    # more than 256); below ~1,300 events/s the flush interval decides anyway.
    core_event_batch_size: int = Field(256, ge=1, le=100_000, description="Write as soon as "
                                       "this many events wait (Go Daz: 64)")
    core_event_flush_ms: float = Field(200, ge=0, description="... or when the oldest waiting "
                                       "event is this old (milliseconds)")
    core_event_queue_size: int = Field(4000, ge=1, description="Events held in memory while "
                                       "the database is away; past that, new ones go to the "
                                       "journal (nothing is dropped)")
    core_event_burst_queue_size: int = Field(20_000, ge=1, description="Events held in memory "
                                             "while the database writes but a burst outruns it "
                                             "(about 12 MB at most); past that the room reads "
                                             "its socket only as fast as the database writes")
    core_event_max_batch: int | None = Field(None, ge=1, le=100_000, description="Largest "
                                             "batch a backlog is written in; default: "
                                             "core_event_batch_size × 16")
    logger_rules: list[LoggerRule] | None = Field(None, description="Which events go to which "
                                                  "table; when absent: every event to "
                                                  "daz_core_events, chat, joins/leaves/ranks/"
                                                  "AFK and PMs to their own tables as well. "
                                                  "When present, the rules alone decide")
    spill_file: str = Field("", description="The event log's journal file, where events wait "
                                            "while the database is away; default: "
                                            "<data_dir>/journal/eventlog.journal")
    write_timeout_seconds: float = Field(10.0, gt=0, description="One batch write may take "
                                         "this long; past it the database counts as away")
    shutdown_timeout_seconds: float = Field(10.0, ge=0, description="Time for writing what is "
                                            "queued at a stop (core.stop_timeout_seconds comes "
                                            "first; what is not written is kept in the "
                                            "journal)")


class Sql(Plugin[SqlConfig]):
    name = "sql"
    description = "Records every CyTube event in the database (batched, deduplicated, lossless)"
    health_section = "eventlog"  # /health's "eventlog": the writer's status, and what is at risk

    async def setup(self) -> None:
        cfg = self.config
        self.router = Router(cfg.logger_rules)
        self.eventlog = EventLog(
            self.ctx.db, journal=self._journal(), batch_size=cfg.core_event_batch_size,
            max_batch=cfg.core_event_max_batch, flush_interval=cfg.core_event_flush_ms / 1000,
            max_queue=cfg.core_event_queue_size, burst_queue=cfg.core_event_burst_queue_size,
            write_timeout=cfg.write_timeout_seconds,
            shutdown_timeout=cfg.shutdown_timeout_seconds, metrics=self.ctx.metrics)
        await self.eventlog.start()

    def _journal(self) -> JournalStream | None:
        """The event log's stream of the journal (where ``spill_file`` says, if it does)."""
        path = Path(self.config.spill_file).expanduser() if self.config.spill_file else None
        if self.ctx.journal is None:
            if path is None:
                return None
            self.ctx.journal = Journal(path.parent)
        return self.ctx.journal.stream(JOURNAL_STREAM, path)

    async def teardown(self) -> None:
        await self.eventlog.close()

    async def save_for_next_start(self) -> None:
        await self.eventlog.save_to_spill()

    @on("cytube.event.*", include_ignored=True, overflow="block", max_queue=10_000)
    async def record(self, event: CytubeEvent) -> None:
        tables = self.router.tables("cytube.event." + event.event_name)
        if not tables:
            return
        room = self.ctx.rooms.get(event.room_id)
        rank_of = room.state.rank_of if room is not None else None
        await self.eventlog.admit(entry_for_event(event, tables, rank_of))

    @on(MessageSent, include_ignored=True, overflow="block", max_queue=10_000)
    async def record_sent(self, event: MessageSent) -> None:
        if event.to is None:
            return  # public chat: the server echoes it back as a chatMsg, logged there
        tables = self.router.tables(PM_SENT)
        if not tables:
            return
        room = self.ctx.rooms.get(event.room_id)
        bot_name = room.bot_name if room is not None else ""
        self.eventlog.put(entry_for_sent_pm(event, bot_name, tables))

    def status(self) -> dict:
        return self.eventlog.status()

    def health_report(self) -> tuple[dict[str, Any], list[str]]:
        eventlog = self.status()
        problems = []
        if eventlog.get("at_risk"):
            problems.append(
                f"eventlog: {eventlog['at_risk']} event(s) only in memory, lost if daz stops"
                f" now: the database does not answer and the journal cannot take them"
                f" ({eventlog.get('spill_error')})")
        elif eventlog.get("spill_error"):
            problems.append(f"eventlog: the journal cannot be written ({eventlog['spill_error']});"
                            f" events go straight to the database while it answers")
        return eventlog, problems
