"""What one running daz says about itself: the body of ``GET /status`` and of the report each
instance writes to its ``daz_instances`` row (``scaleout/holder.py``), so ``daz status`` prints
the same table whether it asks the web port or reads the database."""
from __future__ import annotations

import os
import socket
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from daz import __version__

if TYPE_CHECKING:  # pragma: no cover
    from daz.web.host import WebHost


def instance_name() -> str:
    """How this process is named where it says which rooms it holds: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def room_state(status: dict[str, Any]) -> str:
    if status.get("gave_up"):
        return "gave up"
    if status.get("joined"):
        return "joined"
    if status.get("connected"):
        return "joining"
    return "connecting"


def _database(app: WebHost, ok: bool) -> dict[str, Any]:
    from daz.db.pool import redact

    db = app.db
    where = (f"embedded PostgreSQL in {app.data_dir / 'postgres'}" if app.embedded is not None
             else redact(db.dsn) if db is not None else "not connected yet")
    out: dict[str, Any] = {"ok": ok, "where": where}
    if db is not None and getattr(db, "pool", None) is not None:
        out.update(pool_size=db.size, pool_idle=db.idle)
    if db is not None and not ok:
        out["last_error"] = db.last_error
    return out


async def build_status(app: WebHost) -> dict[str, Any]:
    healthy, health = await app.health()
    holder = instance_name()
    rooms = {}
    for room in app.rooms:
        status = health["rooms"].get(room.id, room.status())
        rooms[room.id] = {
            "channel": room.channel, "server": room.config.server_url,
            "state": room_state(status), "held_by": holder, "bot": room.bot_name or None,
            "users": len(room.state.users) if status.get("joined") else None,
            "outbox": status.get("outbox_depth", 0), "reconnects": status.get("reconnects", 0),
            "problem": status.get("gave_up") or status.get("last_error"),
        }
    queued = app.bus.queued_by_owner()
    plugins = {name: {**st, "queued": queued.get(name, 0)}
               for name, st in health["plugins"].items()}
    eventlog = health.get("eventlog") or {}
    return {
        "instance": {"name": holder, "version": __version__, "state": app.state,
                     "host": socket.gethostname(), "pid": os.getpid(),
                     "healthy": healthy, "problems": health["problems"],
                     "started_at": datetime.fromtimestamp(app.started_at, UTC)
                     .isoformat(timespec="seconds"),
                     "uptime_seconds": round(time.time() - app.started_at, 1)},
        "rooms": rooms,
        "plugins": plugins,
        "database": _database(app, health["database"]["ok"]),
        "queues": {
            "bus": sum(queued.values()),
            "outbox": sum(room["outbox"] for room in rooms.values()),
            "eventlog_in_memory": eventlog.get("in_memory", 0),
            "eventlog_spilled": eventlog.get("in_spill_file", 0),
            "spill_file": eventlog.get("spill_file") if eventlog.get("in_spill_file") else None,
        },
    }
