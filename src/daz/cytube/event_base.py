"""The base of every CyTube event model, the registry they join by subclassing it, and
``parse_event``, which turns one frame into the model registered for its name (events.py holds
the models; event_fields.py the field tables and the parser written from each).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from daz.cytube.event_fields import FieldSpec, Parser, ShortForm, compile_parser, table
from daz.events import RoomEvent

# Every event with a model of its own, by its CyTube name: filled as the classes are defined.
EVENT_TYPES: dict[str, type[CytubeEvent]] = {}
ANY_EVENT = "*"  # OtherEvent's name: the model for every event without one of its own


@dataclass(slots=True, kw_only=True)
class CytubeEvent(RoomEvent):
    """One event received from a CyTube server, with the payload exactly as it arrived.

    A subclass declares ``name`` (the CyTube event) and ``fields`` (attribute → reader, see
    event_fields.py); ``short_form`` reads a payload that may come abbreviated; ``derive``
    fills attributes computed from the others."""

    name: ClassVar[str] = ""
    fields: ClassVar[Mapping[str, FieldSpec]] = table()
    short_form: ClassVar[ShortForm | None] = None
    _parse: ClassVar[Parser] = staticmethod(lambda payload, problems: {})

    event_name: str = ""
    payload: Any = None
    seq: int = 0  # per-room arrival order
    malformed: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Runs twice per model: for the class as written and for the slotted copy @dataclass
        # makes of it; the copy, made last, is the one registered.
        derive = None if cls.derive is _NOTHING_DERIVED else cls.derive
        cls._parse = staticmethod(compile_parser(
            cls.fields, short_form=cls.short_form, derive=derive, model=cls.__qualname__))
        name = cls.__dict__.get("name")
        if not name or name == ANY_EVENT:
            return
        known = EVENT_TYPES.get(name)
        # By name: the slotted copy gets its __qualname__ only after this has run.
        if known is not None and (known.__module__, known.__name__) != (cls.__module__,
                                                                        cls.__name__):
            raise TypeError(f"{cls.__qualname__}: the CyTube event {name!r} already has a model,"
                            f" {known.__module__}.{known.__qualname__}")
        EVENT_TYPES[name] = cls

    @staticmethod
    def derive(values: dict[str, Any]) -> None:
        """Fill the attributes computed from the others (a model that has some overrides it)."""

    @property
    def topic(self) -> str:
        return "cytube.event." + self.event_name


_NOTHING_DERIVED = CytubeEvent.derive


@dataclass(slots=True, kw_only=True)
class OtherEvent(CytubeEvent):
    """Any event without a model of its own (emoteList, drinkCount, voteskip, newPoll, ...)."""

    name = ANY_EVENT


# --------------------------------------------------------------------------- parsing

_NAME_OK = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def parse_event(event_name: Any, payload: Any, *, room_id: str, channel: str, seq: int = 0,
                received_at: float | None = None) -> CytubeEvent:
    """Build the typed event for one frame. Never raises for any payload."""
    if not isinstance(event_name, str) or not _NAME_OK.match(event_name):
        shown = event_name if isinstance(event_name, str) else type(event_name).__name__
        bad_name = str(shown)[:40]
        event_name = "invalid"
        problems = [f"invalid event name {bad_name!r}"]
        cls: type[CytubeEvent] = OtherEvent
    else:
        cls = EVENT_TYPES.get(event_name, OtherEvent)
        problems = []
    try:
        fields = cls._parse(payload, problems)
    except Exception as exc:  # a parser bug must not lose the event
        problems.append(f"parser error: {exc!r}"[:200])
        fields = {}
    if received_at is not None:
        fields["received_at"] = received_at
    return cls(room_id=room_id, channel=channel, event_name=event_name, payload=payload, seq=seq,
               malformed="; ".join(problems)[:500] if problems else None, **fields)
