"""The Kryten wire format: subjects, the event envelope, and which events go out.

Facts of Kryten's contract (docs/scale-out.md, "The Kryten bridge"): events go out on
``kryten.events.cytube.{token(channel)}.{token(event)}`` as a six-field JSON envelope with the
event name in CyTube's casing, the channel and domain as configured, and the payload unchanged.
"""
from __future__ import annotations

import functools
import itertools
import json
import random
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

EVENT_PREFIX = "kryten.events.cytube"
COMMAND_SUBJECT = "kryten.robot.command"
MAX_TOKEN = 100
_DROPPED_CHARS = set("!@#$%^&*()+=[]{|}\\:;\"'<>,?/`")


class BadToken(ValueError):
    """A channel or event name that is empty once made subject-safe."""


def subject_token(text: str) -> str:
    """A channel or event name as one NATS subject token, by the bridge's published rule."""
    token = text.lower().replace(".", "").replace(" ", "-")
    token = "".join(ch for ch in token if ch not in _DROPPED_CHARS)[:MAX_TOKEN]
    if not token:
        raise BadToken(f"{text!r} leaves nothing usable in a NATS subject")
    return token


_SUBJECTS: dict[tuple[str, str], str] = {}  # rooms × event names seen: bounded by both


def event_subject(channel: str, event_name: str) -> str:
    subject = _SUBJECTS.get((channel, event_name))
    if subject is None:
        subject = f"{EVENT_PREFIX}.{subject_token(channel)}.{subject_token(event_name)}"
        if len(subject) > 255:
            raise BadToken(f"subject for {event_name!r} is longer than 255 characters")
        if len(_SUBJECTS) < 100_000:
            _SUBJECTS[(channel, event_name)] = subject
    return subject


@functools.lru_cache(maxsize=1024)  # a handful of servers, asked on every event
def domain_of(server_url: str) -> str:
    """What Kryten calls the domain: the CyTube server's host name (``cytu.be``)."""
    return (urlsplit(server_url).hostname or server_url).lower()


def envelope(event_name: str, payload: Any, channel: str, domain: str,
             flags: tuple[str, ...] = ()) -> bytes:
    """The six-field envelope; ``flags`` (daz's own marks, e.g. ``own`` for the bot's echo)
    ride in a seventh field, which Kryten clients ignore."""
    # This runs for every event of every room: the parts that are the same for every event of
    # a kind in a room are encoded once, the payload is the one json encoding per event.
    head, middle = _head(event_name), _middle(channel, domain)
    tail = f',"daz_flags":{_encode(list(flags))}}}' if flags else "}"
    return f'{head}{_encode(payload)}{middle}{timestamp()}","correlation_id":"' \
           f'{correlation_id()}"{tail}'.encode()


_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


# Cached apart: one cache keyed on kind × room held 12,000 keys at 1,000 rooms and evicted
# two lookups in three; kinds and rooms each fit (bounded all the same: kinds come from servers).
@functools.lru_cache(maxsize=1024)
def _head(event_name: str) -> str:
    return f'{{"event_name":{_encode(event_name)},"payload":'


@functools.lru_cache(maxsize=8192)
def _middle(channel: str, domain: str) -> str:
    return f',"channel":{_encode(channel)},"domain":{_encode(domain)},"timestamp":"'


_second = [-1, ""]  # the whole second last formatted, and its text


def timestamp() -> str:
    """Now in UTC as ISO 8601 with microseconds (what ``datetime.isoformat`` writes), with the
    date and time formatted once per second rather than once per event."""
    now = time.time()
    whole = int(now)
    if whole != _second[0]:
        _second[0], _second[1] = whole, datetime.fromtimestamp(whole, UTC).strftime(
            "%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}+00:00"


_ids = itertools.count()
_id_prefix = [""]


def correlation_id() -> str:
    """A version-4 UUID as text, unique rather than random: a random prefix drawn once per
    process (74 random bits, so two processes never share one) and a 48-bit counter. Drawing
    all 122 bits per event took a sixth of the envelope's time, and nothing reads them as
    secret."""
    n = next(_ids) & 0xFFFF_FFFF_FFFF
    if n == 0:  # the first, and again each time the counter wraps
        bits = random.getrandbits(80)
        h = f"{bits:020x}"
        variant = "89ab"[int(h[15], 16) & 3]
        _id_prefix[0] = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-{variant}{h[16:19]}-"
    return f"{_id_prefix[0]}{n:012x}"


def leave_out(event: Any) -> bool:
    """Events the old bridge does not publish, so no Kryten service reacts to them: the chat
    history CyTube replays on every join (daz knows exactly which lines those are, where the old
    bridge guessed with a 3 s window), and ``system:`` PMs."""
    name = event.event_name
    if name == "chatMsg":
        return bool(getattr(event, "replayed", False))
    if name == "pm":
        msg = event.payload.get("msg") if isinstance(event.payload, dict) else None
        return isinstance(msg, str) and msg.startswith("system:")
    return False


def marks(event: Any) -> tuple[str, ...]:
    """daz's marks worth telling consumers about (the line is still published)."""
    out = []
    for flag in ("own", "whisper", "shadow"):
        if getattr(event, flag, False):
            out.append(flag)
    return tuple(out)
