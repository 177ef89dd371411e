"""Which events go to which table (``logger_rules``), and how an event becomes a ``LogEntry``.

Go Daz's rule shape is kept: ``{"event_pattern": "cytube.event.*", "enabled": true,
"table": "daz_core_events", "fields": [], "transform": ""}``. ``*`` matches anything (dots
included). A pattern matches every event type it names, and the side tables can be targets.
``fields`` and ``transform`` have no effect (a warning says so). How the Go bot read the same
rules: docs/upgrading-from-go.md, "The event log".

An event fits a side table only if it has what the table needs: ``daz_chat_log`` takes chat,
``daz_private_messages`` PMs (received, and ``cytube.event.pm.sent`` for our own), and
``daz_user_activity`` any event about one user (joins, leaves, rank and AFK changes...). A rule
sending another event there has no effect on it; the event still goes to its other tables.
"""
from __future__ import annotations

import fnmatch
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from daz.cytube import events as ev
from daz.events import MessageSent
from daz.plugins.sql.eventrows import (
    ACTIVITY,
    CHAT,
    CORE,
    PRIVATE,
    TABLES,
    LogEntry,
    chat_uid,
    pm_uid,
    random_uid,
)

log = logging.getLogger(__name__)

PM_SENT = "cytube.event.pm.sent"


class LoggerRule(BaseModel):
    """One entry of ``plugins.sql.logger_rules`` (Go Daz's format)."""

    model_config = ConfigDict(extra="allow")
    event_pattern: str = Field(description="The event topic, * matching anything (dots "
                                           "included): cytube.event.chatMsg, cytube.event.*")
    table: str = Field(description="daz_core_events, daz_chat_log, daz_user_activity or "
                                   "daz_private_messages; other tables are ignored with a "
                                   "warning")
    enabled: bool = Field(True, description="A rule that is off is skipped")
    fields: list[str] = Field(default_factory=list, description="Go key; ignored with a "
                              "warning (every table gets its own columns)")
    transform: str = Field("", description="Go key; ignored with a warning")


DEFAULT_RULES = (
    LoggerRule(event_pattern="cytube.event.*", table=CORE),
    LoggerRule(event_pattern="cytube.event.chatMsg", table=CHAT),
    LoggerRule(event_pattern="cytube.event.addUser", table=ACTIVITY),
    LoggerRule(event_pattern="cytube.event.userLeave", table=ACTIVITY),
    LoggerRule(event_pattern="cytube.event.setUserRank", table=ACTIVITY),
    LoggerRule(event_pattern="cytube.event.setAFK", table=ACTIVITY),
    LoggerRule(event_pattern="cytube.event.pm", table=PRIVATE),
    LoggerRule(event_pattern=PM_SENT, table=PRIVATE),
)


class Router:
    """event type → tables, from the rules (cached per event type)."""

    def __init__(self, rules: list[LoggerRule] | None) -> None:
        chosen = list(DEFAULT_RULES) if rules is None else list(rules)
        self.rules: list[LoggerRule] = []
        for rule in chosen:
            if not rule.enabled:
                continue
            if rule.table not in TABLES:
                log.warning("sql: logger rule %r names table %r, which the event log does not"
                            " write (it writes %s); rule ignored", rule.event_pattern, rule.table,
                            ", ".join(TABLES))
                continue
            if rule.fields or rule.transform:
                log.warning("sql: logger rule %r: 'fields' and 'transform' are ignored (every"
                            " column is written, as Go did for the core table)",
                            rule.event_pattern)
            self.rules.append(rule)
        self._cache: dict[str, tuple[str, ...]] = {}

    def tables(self, event_type: str) -> tuple[str, ...]:
        found = self._cache.get(event_type)
        if found is None:
            found = tuple(dict.fromkeys(r.table for r in self.rules
                                        if fnmatch.fnmatchcase(event_type, r.event_pattern)))
            if len(self._cache) < 10_000:  # event names come from the server: bound the cache
                self._cache[event_type] = found
        return found


# ---------------------------------------------------------------------------- events → entries

def _rank(value: float | None) -> int | None:
    if value is None or value < 0:
        return None
    return int(value)


def entry_for_event(event: ev.CytubeEvent, tables: tuple[str, ...],
                    rank_of: Any = None) -> LogEntry:
    """The log entry of one received event. ``rank_of(name)`` gives a user's rank in the room
    (chat carries none); -1 or None when unknown."""
    event_type = "cytube.event." + event.event_name
    fields: dict[str, Any] = {}
    uid = None
    timestamp = event.received_at
    if isinstance(event, ev.ChatMessage):
        timestamp = event.said_at
        fields = dict(username=event.username, message=event.msg,
                      message_time=event.time if event.time > 0 else None)
        if rank_of is not None and event.username:
            fields["rank"] = _rank(rank_of(event.username))
        if event.time > 0:
            uid = chat_uid(event.channel, event.time, event.username, event.msg)
    elif isinstance(event, ev.PrivateMessage):
        fields = dict(username=event.username, to_user=event.to, message=event.msg,
                      message_time=event.time if event.time > 0 else None)
        if event.own:
            # Our own PM, echoed by the server: daz.room.sent already recorded it as pm.sent.
            tables = tuple(t for t in tables if t != PRIVATE)
        if event.time > 0:
            uid = pm_uid(event.channel, event.time, event.username, event.to, event.msg)
    elif isinstance(event, ev.UserJoined):
        fields = dict(username=event.user.name, rank=_rank(event.user.rank))
    elif isinstance(event, ev.UserRankChanged):
        fields = dict(username=event.username, rank=_rank(event.rank))
    elif isinstance(event, (ev.UserLeft, ev.AfkChanged, ev.UserMetaChanged, ev.LeaderChanged)):
        fields = dict(username=event.username)
        if rank_of is not None and event.username:
            fields["rank"] = _rank(rank_of(event.username))
    elif isinstance(event, ev.MediaChanged):
        media = event.media
        fields = dict(video_id=media.id, video_type=media.type, title=media.title,
                      duration=media.seconds)
    elif isinstance(event, ev.MediaQueued):
        media = event.item.media
        fields = dict(video_id=media.id, video_type=media.type, title=media.title,
                      duration=media.seconds, username=event.item.queueby or None)
    return LogEntry.build(uid=uid or random_uid(), event_type=event_type, channel=event.channel,
                          timestamp=timestamp, payload=event.payload, tables=tables, **fields)


def entry_for_sent_pm(event: MessageSent, bot_name: str, tables: tuple[str, ...]) -> LogEntry:
    """Our own outgoing PM. ``message_time`` is in milliseconds like every other row (the Go bot
    wrote seconds here)."""
    millis = int(event.sent_at * 1000)
    return LogEntry.build(uid=random_uid(), event_type=PM_SENT, channel=event.channel,
                          timestamp=event.sent_at, tables=tables,
                          payload={"to": event.to, "msg": event.text, "time": millis},
                          username=bot_name, to_user=event.to, message=event.text,
                          message_time=millis)
