"""The Kryten wire format: subjects, the event envelope, and which events go out.

Facts of Kryten's contract (docs/scale-out.md, "The Kryten bridge"): events go out on
``kryten.events.cytube.{token(channel)}.{token(event)}`` as a six-field JSON envelope with the
event name in CyTube's casing, the channel and domain as configured, and the payload unchanged.
"""
from __future__ import annotations

import json
import random
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


def domain_of(server_url: str) -> str:
    """What Kryten calls the domain: the CyTube server's host name (``cytu.be``)."""
    return (urlsplit(server_url).hostname or server_url).lower()


def envelope(event_name: str, payload: Any, channel: str, domain: str,
             flags: tuple[str, ...] = ()) -> bytes:
    """The six-field envelope; ``flags`` (daz's own marks, e.g. ``own`` for the bot's echo)
    ride in a seventh field, which Kryten clients ignore."""
    # Assembled from encoded parts: one json.dumps of the payload instead of a whole dict's
    # (this runs for every event of every room).
    text = (f'{{"event_name":{_encoded(event_name)},"payload":{_encode(payload)},'
            f'"channel":{_encoded(channel)},"domain":{_encoded(domain)},'
            f'"timestamp":"{datetime.now(UTC).isoformat()}",'
            f'"correlation_id":"{correlation_id()}"')
    if flags:
        text += f',"daz_flags":{_encode(list(flags))}'
    return (text + "}").encode("utf-8")


_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
_ENCODED: dict[str, str] = {}


def _encoded(name: str) -> str:
    """Event names, channels and domains: few, and the same on every event."""
    found = _ENCODED.get(name)
    if found is None:
        found = _encode(name)
        if len(_ENCODED) < 100_000:
            _ENCODED[name] = found
    return found


_VERSION_4 = (0x4 << 76) | (0x2 << 62)
_KEEP = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)


def correlation_id() -> str:
    """A random (version 4) UUID as text. It only has to be unique, not secret: drawn from
    ``random`` instead of ``os.urandom``, which took a third of the envelope's time."""
    value = (_random_bits(128) & _KEEP) | _VERSION_4
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_random_bits = random.getrandbits


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
