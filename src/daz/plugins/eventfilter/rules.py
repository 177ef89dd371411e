"""Routing rules: forward matching CyTube events to a plugin as ``plugin.<target>.forward``.

A rule is what a channel owner writes in ``plugins.eventfilter.rules`` (or a row in
``daz_eventfilter_rules``)::

    {"event_type": "chatMsg", "target_plugin": "ollama",
     "conditions": {"text": "(?i)\\bdaz\\b", "username": "^(?!guest)", "channel": "mychan"}}

* ``event_type`` is a glob on the topic (``cytube.event.chatMsg``, ``cytube.event.*``) or, when it
  has no dot, on the CyTube event name (``chatMsg``, ``addUser``, ``*``).
* ``conditions`` (all optional, all must hold): ``text`` regex searched in the plain chat text,
  ``username`` regex matched case-insensitively at the start of the sender's name, ``channel``
  equal to the channel name (case-insensitive).
* The target receives ``PluginEvent(name="plugin.<target>.forward", room_id=…, data={...})``
  with ``data["event"]`` the original typed event, so it subscribes with
  ``@on("plugin.<target>.forward")``.

The Go bot's rules never ran (docs/upgrading-from-go.md); its config spelling
(``EventType``/``TargetPlugin``/``Priority``/``Enabled`` under ``routing_rules``) is accepted
too.
"""
from __future__ import annotations

import fnmatch
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

log = logging.getLogger(__name__)

# Go's field names (no JSON tags, matched case-insensitively) → ours.
_GO_KEYS = {"eventtype": "event_type", "targetplugin": "target_plugin", "priority": "priority",
            "enabled": "enabled", "conditions": "conditions"}


class RuleConfig(BaseModel):
    """One routing rule (Go's spelling, EventType/TargetPlugin/..., is read too)."""

    model_config = ConfigDict(extra="forbid")
    event_type: str = Field(description="A glob on the topic (cytube.event.chatMsg, "
                                        "cytube.event.*) or, without a dot, on the CyTube "
                                        "event name (chatMsg, addUser, *)")
    target_plugin: str = Field(pattern=r"^[A-Za-z0-9_]+$", description="The plugin that "
                               "receives plugin.<target>.forward")
    conditions: dict[str, str] = Field(default_factory=dict, description="All must hold: text "
                                       "(regex searched in the chat text), username (regex "
                                       "matched at the start of the name, ignoring case), "
                                       "channel (equal, ignoring case)")
    priority: int = Field(0, description="Targets are forwarded to in priority order, highest "
                                         "first")
    enabled: bool = Field(True, description="A rule that is off is skipped")

    @model_validator(mode="before")
    @classmethod
    def _go_spelling(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {_GO_KEYS.get(str(k).lower().replace("_", ""), k): v for k, v in raw.items()}
        return raw


@dataclass(frozen=True)
class Rule:
    source: str  # "config[0]" or "db:17", for log lines
    event_type: str
    target: str
    priority: int = 0
    text: re.Pattern | None = None
    username: re.Pattern | None = None
    channel: str | None = None

    def matches(self, event: Any) -> bool:
        pattern = self.event_type
        subject = event.topic if "." in pattern else getattr(event, "event_name", "") or ""
        if not fnmatch.fnmatchcase(subject, pattern):
            return False
        if self.channel is not None and str(getattr(event, "channel", "")).lower() != self.channel:
            return False
        if self.username is not None:
            name = getattr(event, "username", None)
            if not isinstance(name, str) or not self.username.match(name):
                return False
        if self.text is not None:
            text = getattr(event, "text", None)
            if not isinstance(text, str) or not self.text.search(text):
                return False
        return True


def build_rule(source: str, event_type: str, target: str, conditions: Any,
               priority: int = 0) -> Rule | None:
    """A compiled rule, or None (logged) when it cannot work (bad regex, unknown condition)."""
    if isinstance(conditions, str):
        try:
            conditions = json.loads(conditions)
        except ValueError:
            log.warning("eventfilter: rule %s: conditions are not JSON; rule skipped", source)
            return None
    conditions = conditions or {}
    if not isinstance(conditions, dict):
        log.warning("eventfilter: rule %s: conditions must be an object; rule skipped", source)
        return None
    unknown = set(conditions) - {"text", "username", "channel"}
    if unknown:
        log.warning("eventfilter: rule %s: unknown condition(s) %s; rule skipped", source,
                    ", ".join(sorted(unknown)))
        return None
    if not event_type or not re.fullmatch(r"[A-Za-z0-9_]+", target or ""):
        log.warning("eventfilter: rule %s needs an event_type and a plugin name; skipped", source)
        return None
    try:
        text = re.compile(conditions["text"]) if conditions.get("text") else None
        user = (re.compile(conditions["username"], re.I) if conditions.get("username") else None)
    except re.error as exc:
        log.warning("eventfilter: rule %s: bad regular expression (%s); rule skipped", source, exc)
        return None
    channel = str(conditions["channel"]).lower() if conditions.get("channel") else None
    return Rule(source=source, event_type=event_type, target=target, priority=priority,
                text=text, username=user, channel=channel)


def targets_for(rules: list[Rule], event: Any) -> list[tuple[str, Rule]]:
    """Each target plugin once (its highest-priority matching rule), in priority order."""
    out: dict[str, Rule] = {}
    for rule in rules:  # already sorted by priority, highest first
        if rule.target not in out and rule.matches(event):
            out[rule.target] = rule
    return list(out.items())
