"""Kryten lifecycle subjects and the service registry (docs/scale-out.md, "The Kryten bridge").

daz speaks as ``robot``: ``kryten.lifecycle.robot.startup`` is the cue on which Kryten services
announce themselves again, so it goes out on every (re)connect to NATS. The registry listens to
every service's startup, heartbeat and shutdown and answers ``system.services``.
"""
from __future__ import annotations

import json
import socket
import time
from datetime import UTC, datetime
from typing import Any

from daz import __version__

LIFECYCLE = "kryten.lifecycle"
GROUP_RESTART = "kryten.lifecycle.group.restart"
DISCOVERY_POLL = "kryten.service.discovery.poll"
STALE_AFTER = 90.0  # seconds without a heartbeat: the old bridge's rule


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Lifecycle:
    def __init__(self, started_at: float) -> None:
        self.started_at = started_at
        self.hostname = socket.gethostname()

    def body(self, **extra: Any) -> bytes:
        payload = {"service": "robot", "version": __version__, "hostname": self.hostname,
                   "timestamp": now_iso(),
                   "uptime_seconds": round(time.time() - self.started_at, 1), **extra}
        return json.dumps(payload, default=str).encode("utf-8")

    @staticmethod
    def subject(event: str) -> str:
        return f"{LIFECYCLE}.robot.{event}"


class ServiceRegistry:
    """Kryten services seen on the lifecycle subjects, by name."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, Any]] = {}

    def note(self, subject: str, data: bytes) -> None:
        parts = subject.split(".")
        if len(parts) != 4 or parts[2] == "robot":
            return
        name, event = parts[2], parts[3]
        try:
            body = json.loads(data)
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        now = time.time()
        entry = self.services.setdefault(name, {"name": name, "first_seen": now})
        if event == "shutdown":
            entry["status"] = "shutdown"
        else:
            entry["status"] = "active"
            entry["last_heartbeat"] = now
        for key in ("version", "hostname"):
            if key in body:
                entry[key] = body[key]
        endpoints = (body.get("metadata") or {}).get("endpoints") if isinstance(
            body.get("metadata"), dict) else None
        if isinstance(endpoints, dict):
            entry["endpoints"] = endpoints

    def listing(self) -> dict[str, Any]:
        now = time.time()
        out = []
        for entry in self.services.values():
            item = dict(entry)
            last = entry.get("last_heartbeat", entry["first_seen"])
            if item.get("status") == "active" and now - last > STALE_AFTER:
                item["status"] = "stale"
            item["seconds_since_heartbeat"] = round(now - last, 1)
            out.append(item)
        out.sort(key=lambda item: item["name"])
        active = sum(1 for item in out if item["status"] == "active")
        return {"services": out, "count": len(out), "active_count": active}
