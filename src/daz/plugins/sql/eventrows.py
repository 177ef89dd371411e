"""What the event log writes: one ``LogEntry`` per event, the rows it becomes in each table,
and the cleaning that makes any text storable.

PostgreSQL cannot store everything a socket may carry:

* ``text``/``varchar`` cannot hold NUL (U+0000), and UTF-8 cannot encode lone surrogates
  (U+D800..U+DFFF, which Python's JSON decoder produces from an unpaired ``\\ud83d`` escape).
  Both are replaced by U+FFFD, so the line is kept and it is visible that something was there.
* ``jsonb`` refuses the ``\\u0000`` escape and NaN/Infinity: the payload is stored with the same
  replacement, and non-finite numbers become null.
* ``varchar(n)`` columns refuse longer values: names and types are cut to the column width (a
  CyTube name is at most 20 characters, so only hostile input is affected); free text (message,
  title, raw_data) is stored whole, however long.

Every entry carries an ``event_uid``. Chat and PMs get one derived from their natural key, text
included (so a replayed line gets the same uid as the live one and deduplicates in every table,
while two different lines of one sender in the same millisecond stay two); other events get
a random one, fixed when the event is received, so a batch retried after a partial write, or
replayed from the journal, is written exactly once.
"""
from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from daz.db.pool import JsonText
from daz.db.text import clean_json, clean_text  # re-exported for callers

CORE = "daz_core_events"
CHAT = "daz_chat_log"
ACTIVITY = "daz_user_activity"
PRIVATE = "daz_private_messages"
TABLES = (CORE, CHAT, ACTIVITY, PRIVATE)

# Column widths of the Go schema (the tables in plugins/sql/migrations).
EVENT_TYPE_WIDTH = 50
NAME_WIDTH = 100
VIDEO_ID_WIDTH = 255
VIDEO_TYPE_WIDTH = 50

_UID_NAMESPACE = uuid.UUID("6f1d2c3e-8a4b-5c6d-9e0f-a1b2c3d4e5f6")
# Built once: json.dumps() with keyword arguments builds a new encoder on every call.
_UID_JSON = json.JSONEncoder(ensure_ascii=False)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC).replace(tzinfo=None)  # naive UTC, as the columns
_INT32 = (-(2 ** 31), 2 ** 31 - 1)
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


def clean_optional(value: Any, width: int | None = None) -> str | None:
    return None if value is None else clean_text(value, width)


def clamp(value: Any, bounds: tuple[int, int]) -> int | None:
    """An int for an integer column, or None when it is missing or does not fit."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if bounds[0] <= number <= bounds[1] else None


def _natural_uid(*parts: str | int) -> str:
    # JSON keeps the parts apart whatever they contain (a separator character would let
    # ("a\x1f", "b") and ("a", "\x1fb") share a uid, and one of two lines be dropped).
    # uuid.uuid5(_UID_NAMESPACE, name), without building a UUID object only to format it.
    name = _UID_JSON.encode(parts).encode("utf-8")
    digest = bytearray(hashlib.sha1(_UID_NAMESPACE.bytes + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def chat_uid(channel: str, time_ms: int, username: str, message: str) -> str:
    """The uid of a chat line: channel, CyTube ms time, sender and the text, taken from the
    values as stored so it agrees with idx_events_chatmsg_text_unique. The text is part of the
    key because one sender can say two different lines in one millisecond (CyTube stamps chat
    with Date.now()); the join replay re-sends the very same msg, so a replay still matches."""
    return _natural_uid("chatMsg", clean_text(channel, NAME_WIDTH), time_ms,
                        clean_text(username, NAME_WIDTH), clean_text(message))


def pm_uid(channel: str, time_ms: int, sender: str, recipient: str, text: str) -> str:
    return _natural_uid("pm", clean_text(channel, NAME_WIDTH), time_ms,
                        clean_text(sender, NAME_WIDTH), clean_text(recipient, NAME_WIDTH),
                        clean_text(text))


def random_uid() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True)
class LogEntry:
    """One event to log, already cleaned; ``tables`` says where it goes."""

    uid: str
    event_type: str
    channel: str
    timestamp: float  # epoch seconds (UTC)
    raw_json: str  # the payload as received, as JSON text
    tables: tuple[str, ...] = (CORE,)
    username: str | None = None
    message: str | None = None
    message_time: int | None = None
    to_user: str | None = None
    video_id: str | None = None
    video_type: str | None = None
    title: str | None = None
    duration: int | None = None
    rank: int | None = None

    @classmethod
    def build(cls, *, uid: str, event_type: str, channel: str, timestamp: float, payload: Any,
              tables: tuple[str, ...] = (CORE,), username: Any = None, message: Any = None,
              message_time: Any = None, to_user: Any = None, video_id: Any = None,
              video_type: Any = None, title: Any = None, duration: Any = None,
              rank: Any = None) -> LogEntry:
        """An entry from raw values: every field cleaned and fitted to its column."""
        return cls(
            uid=uid, event_type=clean_text(event_type, EVENT_TYPE_WIDTH),
            channel=clean_text(channel, NAME_WIDTH), timestamp=float(timestamp),
            raw_json=clean_json(payload), tables=tuple(tables),
            username=clean_optional(username, NAME_WIDTH), message=clean_optional(message),
            message_time=clamp(message_time, _INT64), to_user=clean_optional(to_user, NAME_WIDTH),
            video_id=clean_optional(video_id, VIDEO_ID_WIDTH),
            video_type=clean_optional(video_type, VIDEO_TYPE_WIDTH),
            title=clean_optional(title), duration=clamp(duration, _INT32),
            rank=clamp(rank, _INT32))

    # ------------------------------------------------------------------ spill file form

    def to_json(self) -> str:
        data = asdict(self)
        data["tables"] = list(self.tables)
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> LogEntry:
        data = json.loads(line)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["tables"] = tuple(data.get("tables") or (CORE,))
        return cls(**data)

    def describe(self) -> str:
        """A short, safe description for log lines (never the whole message)."""
        who = f" from {self.username!r}" if self.username else ""
        return f"{self.event_type} in {self.channel!r}{who} (event_uid {self.uid})"


def stamp(epoch_seconds: float) -> datetime:
    """Epoch seconds as the naive UTC datetime the Go ``timestamp`` columns hold."""
    return _EPOCH + timedelta(seconds=epoch_seconds)


# ---------------------------------------------------------------------------- per table
#
# A batch is written one of two ways, each in one transaction:
#
# * direct: one binary COPY straight into each target table. It cannot skip duplicates (COPY
#   has no ON CONFLICT), so the writer uses it only for a batch of fresh, live events, where a
#   duplicate is rare (the history CyTube replays at a join, a second daz logging the same
#   channel); when one is there anyway, the unique index refuses the COPY, the transaction is
#   rolled back and the batch is written staged. Measured with every default index: about
#   17 µs of PostgreSQL CPU per chat event against about 24 µs staged (a chat line is two rows,
#   daz_core_events and daz_chat_log).
# * staged: one binary COPY into a temporary staging table (one row per entry, with a flag per
#   target table), then one INSERT … SELECT … ON CONFLICT DO NOTHING per table. Measured
#   (bench/bench_eventlog.py) about twice as fast as INSERT … SELECT FROM unnest(<arrays>) for
#   64-row batches.
#
# Why ON CONFLICT has no target: daz_core_events has two unique keys that both mean "this event
# is already stored": event_uid (our rows), and for chat idx_events_chatmsg_text_unique
# (channel_name, message_time, username, md5(message)), which also covers Go-era rows that have
# no event_uid. A conflict target names one arbiter only; a row hitting the other key would then
# raise and cost the whole batch. Relying on event_uid alone is not sound either: a line the Go
# bot (or an older daz, whose chat uid left out the text) stored has another or no uid, and its
# replay after the upgrade must still be skipped. Without a target, any of them skips the row.
#
# daz_chat_log has no natural key (its timestamp is when we received the line, which differs
# between the live line and its replay), so a chat line goes there only when it is new to
# daz_core_events, or is stored there under the same event_uid (a retried batch; the chat_log
# row then dedups on event_uid). A line core skipped on the natural key alone (Go-era or old-uid
# row) is a replay of something already logged, and would otherwise be a second chat_log row.
#
# The row-by-row fallback uses the unnest form with one-element arrays: one statement per row.

STAGE = "daz_eventlog_stage"
STAGE_COLUMNS = ("ord", "to_core", "to_chat", "to_activity", "to_private", "event_uid",
                 "event_type", "channel", "timestamp", "username", "message", "message_time",
                 "to_user", "video_id", "video_type", "title", "duration", "rank", "raw_data")
STAGE_DDL = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} (ord int, to_core bool, to_chat bool,"
    " to_activity bool, to_private bool, event_uid uuid, event_type text, channel text,"
    " timestamp timestamp, username text, message text, message_time bigint, to_user text,"
    " video_id text, video_type text, title text, duration int, rank int, raw_data text)"
    " ON COMMIT DELETE ROWS")
# Whether daz_core_events holds this event_uid: a correlated scalar subquery, so it is one
# index probe per row. (EXISTS (...) in an OR may be planned as a hashed subplan that reads the
# whole table for every batch, which happens while the table's statistics are stale.)
_IN_CORE = ("coalesce((SELECT true FROM daz_core_events c WHERE c.event_uid = {0}.event_uid"
            " LIMIT 1), false)")
_FLAG = {CORE: "to_core", CHAT: "to_chat", ACTIVITY: "to_activity", PRIVATE: "to_private"}
FROM_STAGE = {
    CORE: "INSERT INTO daz_core_events (event_uid, event_type, channel_name, timestamp, username,"
          " message, message_time, to_user, video_id, video_type, title, duration, raw_data)"
          " SELECT event_uid, event_type, channel, timestamp, username, message, message_time,"
          " to_user, video_id, video_type, title, duration, raw_data::jsonb"
          f" FROM {STAGE} WHERE to_core ORDER BY ord ON CONFLICT DO NOTHING",
    CHAT: "INSERT INTO daz_chat_log (event_uid, username, message, user_rank, channel, timestamp)"
          " SELECT s.event_uid, s.username, s.message, s.rank, s.channel, s.timestamp"
          f" FROM {STAGE} s WHERE s.to_chat AND (NOT s.to_core OR {_IN_CORE.format('s')})"
          " ORDER BY s.ord ON CONFLICT DO NOTHING",
    ACTIVITY: "INSERT INTO daz_user_activity (event_uid, event_type, username, user_rank, channel,"
              " timestamp, raw_data) SELECT event_uid, event_type, username, rank, channel,"
              f" timestamp, raw_data::jsonb FROM {STAGE} WHERE to_activity ORDER BY ord"
              " ON CONFLICT DO NOTHING",
    PRIVATE: "INSERT INTO daz_private_messages (event_uid, event_type, from_user, to_user,"
             " message, channel, message_time, timestamp) SELECT event_uid, event_type, username,"
             " to_user, coalesce(message, ''), channel, coalesce(message_time, 0), timestamp"
             f" FROM {STAGE} WHERE to_private ORDER BY ord ON CONFLICT DO NOTHING",
}


def fits(table: str, e: LogEntry) -> bool:
    """Whether the event has what ``table`` needs (its NOT NULL columns)."""
    if table == CORE:
        return True
    if table == CHAT:
        return e.username is not None and e.message is not None
    if table == ACTIVITY:
        return bool(e.username)
    if table == PRIVATE:
        return e.username is not None and e.to_user is not None
    return False


def stage_records(batch: list[LogEntry]) -> tuple[list[tuple], list[str]]:
    """The staging rows of a batch, and the tables that get at least one row."""
    records = []
    used: dict[str, None] = {}
    for ord_, e in enumerate(batch):
        flags = {t: t in e.tables and fits(t, e) for t in TABLES}
        for table, wanted in flags.items():
            if wanted:
                used[table] = None
        records.append((ord_, flags[CORE], flags[CHAT], flags[ACTIVITY], flags[PRIVATE], e.uid,
                        e.event_type, e.channel, stamp(e.timestamp), e.username, e.message,
                        e.message_time, e.to_user, e.video_id, e.video_type, e.title,
                        e.duration, e.rank, e.raw_json))
    return records, [t for t in TABLES if t in used]


def _insert(table: str, columns: tuple[str, ...], types: tuple[str, ...],
            casts: dict[str, str] | None = None, where: str = "") -> str:
    casts = casts or {}
    arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, 1))
    names = ", ".join(columns)
    picked = ", ".join(f"x.{c}{casts.get(c, '')}" for c in columns)
    return (f"INSERT INTO {table} ({names}) SELECT {picked} "
            f"FROM unnest({arrays}) WITH ORDINALITY AS x({names}, ord) {where}"
            f"ORDER BY x.ord ON CONFLICT DO NOTHING")


CORE_COLUMNS = ("event_uid", "event_type", "channel_name", "timestamp", "username", "message",
                "message_time", "to_user", "video_id", "video_type", "title", "duration",
                "raw_data")
CHAT_COLUMNS = ("event_uid", "username", "message", "user_rank", "channel", "timestamp")
ACTIVITY_COLUMNS = ("event_uid", "event_type", "username", "user_rank", "channel", "timestamp",
                    "raw_data")
PRIVATE_COLUMNS = ("event_uid", "event_type", "from_user", "to_user", "message", "channel",
                   "message_time", "timestamp")

COLUMNS = {CORE: CORE_COLUMNS, CHAT: CHAT_COLUMNS, ACTIVITY: ACTIVITY_COLUMNS,
           PRIVATE: PRIVATE_COLUMNS}

INSERT_SQL = {
    CORE: _insert(CORE, CORE_COLUMNS,
                  ("uuid", "text", "text", "timestamp", "text", "text", "bigint", "text", "text",
                   "text", "text", "int", "text"), {"raw_data": "::jsonb"}),
    CHAT: _insert(CHAT, CHAT_COLUMNS, ("uuid", "text", "text", "int", "text", "timestamp")),
    ACTIVITY: _insert(ACTIVITY, ACTIVITY_COLUMNS,
                      ("uuid", "text", "text", "int", "text", "timestamp", "text"),
                      {"raw_data": "::jsonb"}),
    PRIVATE: _insert(PRIVATE, PRIVATE_COLUMNS,
                     ("uuid", "text", "text", "text", "text", "text", "bigint", "timestamp")),
}
# The fallback's daz_chat_log insert after daz_core_events skipped the same line (see above).
CHAT_IF_IN_CORE_SQL = _insert(
    CHAT, CHAT_COLUMNS, ("uuid", "text", "text", "int", "text", "timestamp"),
    where=f"WHERE {_IN_CORE.format('x')} ")


def row_for(table: str, e: LogEntry, when: datetime | None = None) -> tuple | None:
    """The row ``e`` becomes in ``table``; None when it does not fit there. ``when``: the
    entry's ``stamp`` if the caller has it already (a chat line is two rows)."""
    if not fits(table, e):
        return None
    if when is None:
        when = stamp(e.timestamp)
    if table == CORE:
        return (e.uid, e.event_type, e.channel, when, e.username, e.message, e.message_time,
                e.to_user, e.video_id, e.video_type, e.title, e.duration, JsonText(e.raw_json))
    if table == CHAT:
        return (e.uid, e.username, e.message, e.rank, e.channel, when)
    if table == ACTIVITY:
        return (e.uid, e.event_type, e.username, e.rank, e.channel, when, JsonText(e.raw_json))
    return (e.uid, e.event_type, e.username, e.to_user, e.message or "", e.channel,
            e.message_time or 0, when)


def table_records(batch: list[LogEntry]) -> dict[str, list[tuple]]:
    """The rows of a batch per target table, in batch order (the direct COPY form; the
    columns are ``COLUMNS[table]``)."""
    out: dict[str, list[tuple]] = {}
    for e in batch:
        when = stamp(e.timestamp)
        for table in e.tables:
            row = row_for(table, e, when)
            if row is not None:
                out.setdefault(table, []).append(row)
    return out


def columns_of(rows: list[tuple]) -> list[list]:
    """Rows → one list per column (the unnest parameters)."""
    return [list(column) for column in zip(*rows, strict=True)]
