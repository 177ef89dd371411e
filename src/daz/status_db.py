"""``daz status`` from the database: every instance sharing it and every room, as one table
(``scaleout/overview.py`` reads it)."""
from __future__ import annotations

from typing import Any

import click

from daz.scaleout.leases import Wanted, lease_key

TIMEOUT = 5.0


def overview_for(config: Any, *, required: bool) -> dict[str, Any] | None:
    """The overview of the config's database; None when it cannot be read and the caller can
    ask a web port instead (``required`` False), else a ClickException saying why."""
    import asyncio

    import asyncpg

    from daz.db.pool import redact
    from daz.scaleout.overview import NoLeaseTables, read_overview

    dsn = config.core.database.url()
    if not dsn:
        raise click.ClickException("the config names no database (daz runs an embedded one):"
                                   " give --dsn, or ask the web port (--url)")
    configured = [Wanted(lease_key(room.server_url, room.channel, room.username), room.id,
                         room.channel) for room in config.enabled_rooms]
    try:
        return asyncio.run(read_overview(dsn, configured, timeout=TIMEOUT))
    except NoLeaseTables as exc:
        if not required:
            return None
        raise click.ClickException(str(exc)) from None
    except (OSError, ValueError, TimeoutError, asyncpg.PostgresError,
            asyncpg.InterfaceError) as exc:
        if not required:
            return None
        raise click.ClickException(f"cannot read {redact(dsn)}:"  # exit status 1
                                   f" {type(exc).__name__}: {exc}") from None


def duration_text(seconds: float) -> str:
    """``3d 4h 5m``, or ``42s`` under a minute."""
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m")] if seconds >= 60 else [(secs, "s")]
    return " ".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def queue_parts(queues: dict[str, Any]) -> list[str]:
    """What waits in an instance's queues (its /status ``queues``), one part each."""
    spilled = queues.get("eventlog_spilled", 0)
    return [f"bus {queues.get('bus', 0)}", f"outbox {queues.get('outbox', 0)}",
            f"event log {queues.get('eventlog_in_memory', 0)} in memory",
            f"{spilled} spilled to {queues.get('spill_file')}" if spilled else "0 spilled"]


def table(rows: list[tuple[str, str, str]]) -> list[str]:
    """The WHAT / STATE / DETAILS table of ``daz status``, the first two columns aligned."""
    rows = [("WHAT", "STATE", "DETAILS"), *rows]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}".rstrip() for a, b, c in rows]


def problem_lines(problems: list[str]) -> list[str]:
    return ["", "problems:", *(f"  {problem}" for problem in problems)] if problems else []


def instance_row(instance: dict[str, Any]) -> tuple[str, str, str]:
    name = f"instance {instance['name']} ({instance['id'][:8]})"
    details = [f"pid {instance['pid']} on {instance['host']}"]
    if instance["version"]:
        details.append(f"daz {instance['version']}")
    held = instance["holds"]
    if not instance["alive"]:
        details.append(f"last heartbeat {duration_text(instance['heartbeat_age_seconds'])} ago:"
                       f" stopped renewing without leaving (killed, crashed or cut off)")
        details.append(f"still holds {', '.join(held)} until its leases lapse" if held
                       else "holds nothing now (its rooms went to the others)")
        return name, "STALE", " · ".join(details)
    uptime = duration_text(instance["uptime_seconds"])
    details += [f"{instance['state'] or 'starting'}, up {uptime}",
                f"heartbeat {instance['heartbeat_age_seconds']:.1f}s ago",
                f"holds {len(held)}" + (f": {', '.join(held)}" if held else "")]
    if instance["max_rooms"]:
        details.append(f"at most {instance['max_rooms']}")
    plugins = instance["plugins"]
    if plugins is not None:
        text = f"plugins {len(plugins['running'])} running, errors {plugins['errors']}"
        if plugins["failed"]:
            text += "; failed: " + ", ".join(f"{n} ({why})" for n, why in plugins["failed"].items())
        details.append(text)
    database = instance["database"]
    if database is not None:
        details.append("database ok" if database.get("ok") else
                       f"database DOWN ({database.get('last_error') or 'not answering'})")
    if instance["queues"] is not None:
        details.append("queued: " + ", ".join(queue_parts(instance["queues"])))
    if not instance["reported"]:
        details.append("no report yet")
    if instance["web_url"]:
        details.append(f"web {instance['web_url']}")
    state = "alive" if instance["healthy"] is not False else "UNHEALTHY"
    return name, state, " · ".join(details)


def room_row(room: dict[str, Any], config_known: bool = True) -> tuple[str, str, str]:
    name = room["room"] if room["room"] == room["channel"] \
        else f"{room['room']} ({room['channel']})"
    if room["holder"] is None:
        details = ["waiting to be joined: no instance holds it"]
        if room["problem"]:
            details.append(room["problem"])
    else:
        details = [f"held by {room['holder']} for {duration_text(room['held_seconds'])}"]
        if room.get("users") is not None:
            details.append(f"{room['users']} users")
        if room.get("outbox") is not None:
            details.append(f"outbox {room['outbox']}")
        if room["problem"] and room["state"] != "joined":
            details.append(room["problem"])
    if not room["configured"] and config_known:
        details.append("not in this config")
    return f"room {name}", room["state"], " · ".join(details)


def render_overview(overview: dict[str, Any]) -> str:
    instances, rooms = overview["instances"], overview["rooms"]
    alive = sum(1 for i in instances if i["alive"])
    stale = len(instances) - alive
    configured = [r for r in rooms if r["configured"] or not overview["configured_rooms"]]
    held = sum(1 for r in configured if r["holder"])
    joined = sum(1 for r in configured if r["state"] == "joined")
    health = "healthy" if overview["healthy"] else "NOT healthy"
    lines = [f"daz on {overview['database']}: {alive} instance(s) alive"
             + (f", {stale} stale" if stale else "")
             + f"; {held} of {len(configured)} room(s) held, {joined} joined; {health}", ""]
    config_known = bool(overview["configured_rooms"])
    lines += table([*map(instance_row, instances),
                    *(room_row(room, config_known) for room in rooms)])
    if overview["older_stale_instances"]:
        lines.append(f"({overview['older_stale_instances']} instance row(s) stale for over an"
                     f" hour not shown)")
    problems = [f"{i['name']}: {p}" for i in instances if i["alive"] for p in i["problems"]]
    if overview["waiting"]:
        problems.append(f"waiting to be joined: {', '.join(overview['waiting'])}")
    lines += problem_lines(problems)
    return "\n".join(lines)
