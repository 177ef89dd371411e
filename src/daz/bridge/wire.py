"""The Kryten wire format: subjects, the event envelope, and which events go out.

Facts from reference/kryten-protocol.md §1-2: events go out on
``kryten.events.cytube.{token(channel)}.{token(event)}`` as a six-field JSON envelope with the
event name in CyTube's casing, the channel and domain as configured, and the payload unchanged.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
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


def event_subject(channel: str, event_name: str) -> str:
    subject = f"{EVENT_PREFIX}.{subject_token(channel)}.{subject_token(event_name)}"
    if len(subject) > 255:
        raise BadToken(f"subject for {event_name!r} is longer than 255 characters")
    return subject


def domain_of(server_url: str) -> str:
    """What Kryten calls the domain: the CyTube server's host name (``cytu.be``)."""
    return (urlsplit(server_url).hostname or server_url).lower()


def envelope(event_name: str, payload: Any, channel: str, domain: str,
             flags: tuple[str, ...] = ()) -> bytes:
    """The six-field envelope; ``flags`` (daz's own marks, e.g. ``own`` for the bot's echo)
    ride in a seventh field, which Kryten clients ignore."""
    body: dict[str, Any] = {
        "event_name": event_name, "payload": payload, "channel": channel, "domain": domain,
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "correlation_id": str(uuid.uuid4()),
    }
    if flags:
        body["daz_flags"] = list(flags)
    return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")


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
