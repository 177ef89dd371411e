"""Text every plugin words the same way: CyTube user names, "3 hours ago", one-line text.

Shared here because plugins never import each other (DESIGN.md), and the greeter, tell,
analytics and usertracker all need the same answers.
"""
from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

# CyTube accepts 1-20 characters of a-z, A-Z, 0-9, - and _ (its login error says so).
USERNAME = re.compile(r"^[A-Za-z0-9_-]{1,20}$")

# Punctuation people type after a name ("!tell bob: hi", "!seen alice?") that is never part of it.
NAME_TRAILERS = ":,.!?"


def clean_username(text: str) -> str | None:
    """``@Alice:`` → ``Alice``; None when what is left cannot be a CyTube name."""
    name = text.strip().lstrip("@").rstrip(NAME_TRAILERS)
    return name if USERNAME.match(name) else None


def one_line(text: str, limit: int | None = None) -> str:
    """One line of printable text: control and format characters (NUL, newlines, bidi marks)
    become spaces, runs of spaces one; cut to ``limit`` characters when given."""
    out = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch
                  for ch in text)
    out = " ".join(out.split())
    return out if limit is None else out[:limit]


def as_utc(value: datetime) -> datetime:
    """Columns may be ``timestamp`` (naive, written as UTC) or ``timestamptz``; make both aware."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _unit(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def ago(then: datetime, now: datetime | float) -> str:
    """``then`` relative to ``now`` (a datetime or epoch seconds): "just now" (under a minute),
    "5 minutes ago", "3 hours ago", "2 days ago", "3 months ago"."""
    if not isinstance(now, datetime):
        now = datetime.fromtimestamp(now, UTC)
    seconds = int((as_utc(now) - as_utc(then)).total_seconds())
    if seconds < 0:  # clocks of two writers may disagree by a little
        seconds = 0
    if seconds < 60:  # a count of seconds reads as noise in chat
        return "just now"
    if seconds < 3600:
        return f"{_unit(seconds // 60, 'minute')} ago"
    if seconds < 86400:
        return f"{_unit(seconds // 3600, 'hour')} ago"
    if seconds < 86400 * 60:
        return f"{_unit(seconds // 86400, 'day')} ago"
    return f"{_unit(seconds // (86400 * 30), 'month')} ago"


def stamp(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")
