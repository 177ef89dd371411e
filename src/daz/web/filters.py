"""Jinja2 filters for the pages. Each returns plain text; autoescaping does the rest."""
from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

import jinja2

from daz.cytube.chat_filters import typed_text


def plain(message: Any) -> str:
    """What a person typed, from the HTML CyTube delivered (stored so by the event log).

    Rendering the stored HTML as it is would either run it (never) or, escaped, show
    ``&lt;`` entities to the reader; the text itself, escaped once by the template, is right.
    """
    return typed_text(message) if isinstance(message, str) else ""


def rank(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if isinstance(value, datetime) else ""


def duration(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return "live" if value == 0 else ""
    seconds = int(value)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def urlpart(value: Any) -> str:
    """One path segment: every reserved character encoded, so a name cannot add a path."""
    return quote(str(value), safe="")


def install(env: jinja2.Environment) -> None:
    env.filters.update(plain=plain, rank=rank, when=when, duration=duration, urlpart=urlpart)
