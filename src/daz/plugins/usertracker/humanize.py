"""Human wording for times ("3 hours ago") and the user-name check of ``!seen``."""
from __future__ import annotations

import re
from datetime import datetime, timezone

# CyTube accepts 1-20 characters of a-z, A-Z, 0-9, - and _ (its login error says so).
USERNAME = re.compile(r"^[A-Za-z0-9_-]{1,20}$")


def clean_username(text: str) -> str | None:
    """``@Alice`` → ``Alice``; None when it cannot be a CyTube name."""
    name = text.strip().lstrip("@").rstrip(":,.!?")
    return name if USERNAME.match(name) else None


def as_utc(value: datetime) -> datetime:
    """Columns may be ``timestamp`` (naive, written as UTC) or ``timestamptz``; make both aware."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _unit(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def ago(then: datetime, now: datetime) -> str:
    """``then`` relative to ``now``: "just now", "5 minutes ago", "3 hours ago", "2 days ago"."""
    seconds = int((as_utc(now) - as_utc(then)).total_seconds())
    if seconds < 0:  # clocks of two writers may disagree by a little
        seconds = 0
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{_unit(seconds, 'second')} ago"
    if seconds < 3600:
        return f"{_unit(seconds // 60, 'minute')} ago"
    if seconds < 86400:
        return f"{_unit(seconds // 3600, 'hour')} ago"
    if seconds < 86400 * 60:
        return f"{_unit(seconds // 86400, 'day')} ago"
    return f"{_unit(seconds // (86400 * 30), 'month')} ago"


def stamp(value: datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")
