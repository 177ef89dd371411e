"""Greeting texts: the greetings file, time-of-day categories, safe placeholder filling, and
the clean-up of a model's answer.

File format (one greeting per line; blank lines and ``#`` comments are skipped)::

    general: Hey {user}, good to see you in {channel}
    first: Welcome to {channel}, {user}! First time here?
    evening: Evening {user}
    Hi {user}!                       <- no category: general

Categories: ``general``, ``first``, ``morning`` (05-11), ``afternoon`` (12-16), ``evening``
(17-21), ``night`` (22-04) and ``first-<time of day>``, in the configured time zone. First-time
visitors try ``first-<tod>``, ``first``, ``<tod>``, ``general``; others ``<tod>``, ``general``.
Placeholders: ``{user}``, ``{channel}`` (and the Go file's ``<user>``). They are filled in one
pass, so a name that itself looks like a placeholder is inserted as plain text, never expanded.
"""
from __future__ import annotations

import logging
import random
import re
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daz.humanize import one_line

log = logging.getLogger(__name__)

DEFAULT_FILE = Path(__file__).with_name("greetings.txt")
CATEGORIES = ("general", "first", "morning", "afternoon", "evening", "night")
KNOWN = set(CATEGORIES) | {f"first-{tod}" for tod in CATEGORIES[2:]}
_LINE = re.compile(r"^([a-z][a-z-]*)\s*:\s*(.*)$")
_PLACEHOLDER = re.compile(r"\{user\}|\{channel\}|<user>")
MAX_TEMPLATE = 400
NAME_CHARS = 60  # a name or channel inserted into a greeting is cut to this
FALLBACK = "Hi {user}, welcome to {channel}!"
QUESTION_WORDS = {"how", "what", "who", "where", "when", "why", "which", "are", "is", "do",
                  "did", "have", "has", "can", "could", "would", "will", "you", "anyone"}


def time_of_day(hour: int) -> str:
    if 5 <= hour <= 11:
        return "morning"
    if 12 <= hour <= 16:
        return "afternoon"
    if 17 <= hour <= 21:
        return "evening"
    return "night"


def zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        log.warning("greeter: unknown time zone %r (%s); using UTC", name, exc)
        return UTC


def fill(template: str, user: str, channel: str) -> str:
    """Insert the name and channel as plain text (one pass: inserted text is never re-read)."""
    values = {"{user}": one_line(user, NAME_CHARS), "<user>": one_line(user, NAME_CHARS),
              "{channel}": one_line(channel, NAME_CHARS)}
    return _PLACEHOLDER.sub(lambda m: values[m.group(0)], template)


def parse(text: str, source: str = "greetings") -> dict[str, list[str]]:
    """Templates by category; lines that cannot be used are logged and skipped."""
    out: dict[str, list[str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        category, template = "general", line
        match = _LINE.match(line)
        if match:
            if match.group(1) not in KNOWN:
                log.warning("greeter: %s line %d: unknown category %r, line skipped", source,
                            number, match.group(1))
                continue
            category, template = match.group(1), match.group(2).strip()
        template = one_line(template, MAX_TEMPLATE)
        if template:
            out.setdefault(category, []).append(template)
    return out


class Greetings:
    def __init__(self, templates: dict[str, list[str]], tz: tzinfo,
                 fallback: str = FALLBACK, rng: random.Random | None = None):
        self.templates = templates
        self.tz = tz
        self.fallback = fallback
        self.random = rng or random.Random()

    @classmethod
    def load(cls, path: str | None, tz: tzinfo, fallback: str = FALLBACK,
             rng: random.Random | None = None) -> Greetings:
        """The configured file, else the packaged one; a broken file is logged, never fatal."""
        templates: dict[str, list[str]] = {}
        for candidate in ([Path(path).expanduser()] if path else []) + [DEFAULT_FILE]:
            try:
                templates = parse(candidate.read_text(encoding="utf-8", errors="replace"),
                                  str(candidate))
            except OSError as exc:
                log.error("greeter: cannot read greetings file %s (%s)", candidate, exc)
                continue
            if templates:
                log.info("greeter: %d greetings from %s",
                         sum(len(v) for v in templates.values()), candidate)
                break
            log.error("greeter: greetings file %s has no usable lines", candidate)
        return cls(templates, tz, fallback, rng)

    def candidates(self, first_time: bool, when: datetime) -> list[str]:
        tod = time_of_day(when.astimezone(self.tz).hour)
        order = ([f"first-{tod}", "first"] if first_time else []) + [tod, "general"]
        for category in order:
            if self.templates.get(category):
                return self.templates[category]
        return [self.fallback]

    def pick(self, user: str, channel: str, *, first_time: bool, when: datetime,
             avoid: str | None = None) -> str:
        """A filled greeting; not the same text as ``avoid`` when there is another choice."""
        options = self.candidates(first_time, when)
        texts = [fill(t, user, channel) for t in options]
        fresh = [t for t in texts if t != avoid] or texts
        return self.random.choice(fresh)


def clean_generated(raw: Any, max_chars: int) -> str | None:
    """The model's answer as one safe line, or None when there is nothing usable."""
    if not isinstance(raw, str):
        return None
    for line in raw.splitlines():
        text = one_line(line, 2000).strip().strip('"').strip("'").strip()
        text = text.lstrip("/").strip()  # the outbox neutralises it too; never rely on one guard
        if text:
            if len(text) > max_chars:
                cut = text[:max_chars].rsplit(" ", 1)[0]
                text = cut if len(cut) >= max_chars // 2 else text[:max_chars]
            return text
    return None


def as_question(text: str) -> str:
    """Go's ``enforce_question_greeting``: a greeting that invites an answer."""
    if "?" in text:
        return text
    words = text.split()
    if words and words[0].lower().strip(",.!") in QUESTION_WORDS:
        return text.rstrip(".! ") + "?"
    return text.rstrip(".! ") + ", how's it going?"
