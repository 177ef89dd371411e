"""``state.*`` and ``system.*`` queries: data shapes as Kryten clients read them
(docs/scale-out.md, "The Kryten bridge")."""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from daz import __version__
from daz.bridge.actions import CommandError
from daz.bridge.mirror import RoomMirror

if TYPE_CHECKING:  # pragma: no cover
    from daz.bridge.bridge import KrytenBridge


def state_query(command: str, mirror: RoomMirror, request: dict) -> dict[str, Any]:
    what = command.split(".", 1)[1]
    if what == "emotes":
        return {"emotes": mirror.emotes}
    if what == "playlist":
        return {"playlist": mirror.playlist}
    if what == "userlist":
        return {"userlist": mirror.users}
    if what == "user":
        name = request.get("username") or (request.get("args") or {}).get("username")
        if not isinstance(name, str) or not name:
            raise CommandError("state.user needs a username")
        user = mirror.user(name)
        return {"user": user, "profile": user.get("profile") if user else None}
    if what == "profiles":
        return {"profiles": mirror.profiles()}
    if what in ("motd", "css", "js"):
        return {what: getattr(mirror, what)}
    if what == "options":
        return {"options": mirror.options}
    if what == "permissions":
        return {"permissions": mirror.permissions}
    if what == "all":
        return {"emotes": mirror.emotes, "playlist": mirror.playlist, "userlist": mirror.users,
                "stats": {"users": len(mirror.users), "playlist": len(mirror.playlist),
                          "emotes": len(mirror.emotes)}}
    raise CommandError(f"unknown command {command!r}")


def system_query(command: str, bridge: KrytenBridge, request: dict) -> dict[str, Any]:
    what = command.split(".", 1)[1]
    uptime = round(time.time() - bridge.started_at, 1)
    if what == "ping":
        return {"pong": True, "timestamp": time.time(), "uptime_seconds": uptime,
                "service": "robot", "version": __version__, "instance": bridge.instance_name}
    if what == "version":
        return {"version": __version__}
    if what == "health":
        return {"service": "robot", "status": "healthy", "version": __version__,
                "uptime_seconds": uptime, "nats_connected": bridge.connected,
                "nats_reconnect_count": bridge.reconnects, "instance": bridge.instance_name,
                "channels": bridge.channel_listing()}
    if what == "channels":
        return {"channels": bridge.channel_listing()}
    if what == "stats":
        rooms = bridge.held_mirrors()
        return {"uptime_seconds": uptime, "events": dict(bridge.counts),
                "commands": {"handled": bridge.counts["commands"],
                             "failed": bridge.counts["command_errors"]},
                "connections": {"nats": {"connected": bridge.connected,
                                         "reconnects": bridge.reconnects},
                                "cytube": {"rooms": len(rooms)}},
                "state": {"users": sum(len(m.users) for m in rooms),
                          "playlist": sum(len(m.playlist) for m in rooms),
                          "emotes": sum(len(m.emotes) for m in rooms)},
                "memory": {"rss_mib": _rss_mib()}}
    if what == "services":
        return bridge.registry.listing()
    if what == "config":
        return bridge.redacted_config()
    raise CommandError(f"unknown command {command!r} (daz answers system.ping, version, health,"
                       " channels, stats, services and config)")


def _rss_mib() -> float | None:
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None
