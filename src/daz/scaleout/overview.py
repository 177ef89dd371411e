"""Every instance on one database and every room, read from the lease tables: what
``daz status`` prints when several instances share the database (or when asked with ``--dsn``).

Instances come from ``daz_instances`` (alive while their heartbeat keeps ``expires_at`` ahead
of the database's clock; a row whose heartbeat stopped is "stale": the process died without
leaving), with the report each one writes of itself (``holder.RoomHolder``). Rooms are the
configured ones plus any the lease rows name; each is held by whoever holds its live lease,
and is "waiting" (to be joined) while nobody does.
"""
from __future__ import annotations

import json
from typing import Any

import asyncpg

from daz.db.pool import redact
from daz.scaleout.leases import Wanted

STALE_SHOWN_SECONDS = 3600.0  # older rows of dead instances are counted, not listed


class NoLeaseTables(RuntimeError):
    """The database has no ``daz_instances`` table: no daz has run on it."""


async def read_overview(dsn: str, configured: list[Wanted], *,
                        timeout: float = 10.0) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn, timeout=timeout,
                                 server_settings={"application_name": "daz status"})
    try:
        if await conn.fetchval("SELECT to_regclass('daz_instances')", timeout=timeout) is None:
            raise NoLeaseTables(f"{redact(dsn)} has no daz_instances table: no daz has run on"
                                f" this database (or it is not the one daz uses)")
        has_report = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'daz_instances'"
            " AND column_name = 'report' AND table_schema = current_schema()", timeout=timeout)
        report = "i.report::text" if has_report else "NULL::text"
        instance_rows = await conn.fetch(
            "SELECT i.instance_id::text AS id, i.name, i.max_rooms, i.web_url, i.started_at,"
            f" {report} AS report, i.expires_at > now() AS alive,"
            " extract(epoch FROM now() - i.seen_at)::float8 AS heartbeat_age,"
            " extract(epoch FROM now() - i.started_at)::float8 AS uptime"
            " FROM daz_instances i ORDER BY i.started_at, i.name", timeout=timeout)
        lease_rows = await conn.fetch(
            "SELECT lease_key, room_id, channel, holder::text AS holder, holder_name,"
            " expires_at > now() AS live, epoch,"
            " extract(epoch FROM now() - acquired_at)::float8 AS held_for,"
            " extract(epoch FROM now() - expires_at)::float8 AS lapsed_for"
            " FROM daz_room_leases", timeout=timeout)
    finally:
        await conn.close(timeout=timeout)
    return build_overview(redact(dsn), instance_rows, lease_rows, configured)


def build_overview(where: str, instance_rows: list, lease_rows: list,
                   configured: list[Wanted]) -> dict[str, Any]:
    instances: dict[str, dict[str, Any]] = {}
    reports = {row["id"]: json.loads(row["report"]) for row in instance_rows if row["report"]}
    older_stale = 0
    for row in instance_rows:
        if not row["alive"] and row["heartbeat_age"] > STALE_SHOWN_SECONDS:
            older_stale += 1
            continue
        report = reports.get(row["id"])
        about = (report or {}).get("instance", {})
        host, _, pid = row["name"].rpartition(":")
        instances[row["id"]] = {
            "id": row["id"], "name": row["name"], "alive": row["alive"],
            "host": about.get("host", host), "pid": about.get("pid", pid),
            "version": about.get("version"), "state": about.get("state"),
            "healthy": about.get("healthy"), "problems": about.get("problems", []),
            "started_at": row["started_at"].isoformat(timespec="seconds"),
            "uptime_seconds": round(row["uptime"], 1),
            "heartbeat_age_seconds": round(row["heartbeat_age"], 1),
            "max_rooms": row["max_rooms"], "web_url": row["web_url"], "holds": [],
            "database": (report or {}).get("database"), "queues": (report or {}).get("queues"),
            "plugins": _plugins((report or {}).get("plugins")),
            "reported": report is not None,
        }
    leases = {row["lease_key"]: row for row in lease_rows}
    keys = [w.lease_key for w in configured]
    keys += sorted(set(leases) - set(keys))
    wanted = {w.lease_key: w for w in configured}
    rooms = []
    for key in keys:
        lease = leases.get(key)
        if key in wanted:
            room_id, channel = wanted[key].room_id, wanted[key].channel
        else:  # a lease row names every room not in the config
            assert lease is not None
            room_id, channel = lease["room_id"], lease["channel"]
        room: dict[str, Any] = {"room": room_id, "channel": channel, "lease_key": key,
                                "configured": key in wanted, "holder": None,
                                "state": "waiting", "problem": None}
        holder = instances.get(lease["holder"]) if lease is not None else None
        if lease is not None and lease["live"]:
            room.update(holder=lease["holder_name"], holder_id=lease["holder"],
                        held_seconds=round(lease["held_for"], 1), epoch=lease["epoch"])
            if holder is not None:
                holder["holds"].append(room_id)
            seen = (reports.get(lease["holder"], {}).get("rooms") or {}).get(room_id)
            if seen is not None:
                room.update(state=seen.get("state", "held"), users=seen.get("users"),
                            outbox=seen.get("outbox"), problem=seen.get("problem"))
            else:
                room["state"] = "held"  # its holder has not reported since taking it
        elif lease is not None:
            room["problem"] = (f"last held by {lease['holder_name']}, whose lease lapsed"
                               f" {_ago(lease['lapsed_for'])} ago")
        else:
            room["problem"] = "no instance has held it yet"
        rooms.append(room)
    alive = [i for i in instances.values() if i["alive"]]
    # Without a config (``--dsn`` alone) the lease rows are all there is to go by.
    expected = [r for r in rooms if r["configured"] or not configured]
    waiting = [r["room"] for r in expected if r["holder"] is None]
    healthy = (bool(alive) and not waiting
               and all(r["state"] == "joined" for r in expected)
               and all(i["healthy"] is not False for i in alive))
    return {"database": where, "healthy": healthy, "instances": list(instances.values()),
            "older_stale_instances": older_stale, "rooms": rooms, "waiting": waiting,
            "configured_rooms": len(configured)}


def _plugins(reported: dict | None) -> dict[str, Any] | None:
    if reported is None:
        return None
    failed = {name: p.get("failed") for name, p in reported.items() if p.get("failed")}
    return {"running": sorted(name for name, p in reported.items() if p.get("running")),
            "failed": failed,
            "errors": sum(p.get("errors", 0) for p in reported.values()),
            "queued": sum(p.get("queued", 0) for p in reported.values())}


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"
