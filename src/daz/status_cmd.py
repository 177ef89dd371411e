"""``daz status``: ask a running daz (its web port, ``GET /status``) and print one table: each
room and its state and holder, each plugin, the database, and what is queued or spilled.

It finds the daz to ask as ``daz run`` would be found: ``--url``, else the config's
``core.web`` host and port; and the web login token from ``--token``/``DAZ_WEB_TOKEN``, the
config's ``core.web.token`` or the ``web-token`` file in the data directory.

When several instances share one database, one web port knows only its own rooms: then the
table comes from the database (``status_db.py``): every instance (alive or stale) with the
report it writes with its heartbeat, and every room with its holder and state. That happens
with ``--dsn`` or ``--database``, and on its own when the config names a database that has
more than one instance (alive, or stale within the hour) or a room no instance holds, or when
the web port does not answer but the database does.
Exit status: 0 healthy, 1 no answer (or the token refused), 2 answering but not healthy.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from daz.config import ConfigError, load_config
from daz.status_db import duration_text, problem_lines, queue_parts, table

UNREACHABLE, UNHEALTHY = 1, 2


class _Unreachable(click.ClickException):
    exit_code = UNREACHABLE


def _config(config_path: Path | None, data_dir: Path | None, dsn: str | None) -> Any:
    try:
        return load_config(config_path, overrides={"data_dir": data_dir, "dsn": dsn})
    except ConfigError as exc:
        raise click.ClickException(f"bad configuration: {exc}") from None


def _where(config: Any, url: str | None, token: str | None,
           data_dir: Path | None) -> tuple[str, str]:
    web = config.core.web
    if not url:
        host = "127.0.0.1" if web.host in ("", "0.0.0.0", "::") else web.host
        url = f"http://{f'[{host}]' if ':' in host else host}:{web.port}"
    if not token:
        token = web.token
    if not token:
        from daz.app import default_data_dir
        from daz.web.auth import TOKEN_FILE

        path = Path(data_dir or config.core.data_dir or default_data_dir()) / TOKEN_FILE
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
    return url.rstrip("/"), token


async def fetch_status(url: str, token: str, timeout: float = 10.0) -> dict[str, Any]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.get(f"{url}/status", headers=headers) as response:
                if response.status == 401:
                    raise click.ClickException(
                        f"{url} refused the web login token: give --token (core.web.token, or"
                        f" the web-token file in daz's data directory)")
                if response.status != 200:
                    raise click.ClickException(f"{url}/status answered HTTP {response.status};"
                                               f" is that a daz web port?")
                return await response.json()
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise click.ClickException(f"no daz answers at {url} ({exc or type(exc).__name__}):"
                                   f" is it running? give --url or --config") from None


def table_rows(status: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for room_id, room in status["rooms"].items():
        details = [f"held by {room['held_by']}", f"as {room['bot'] or 'anonymous'}",
                   f"on {room['server']}"]
        if room["users"] is not None:
            details.append(f"{room['users']} users")
        details += [f"outbox {room['outbox']}", f"reconnects {room['reconnects']}"]
        if room["problem"] and room["state"] != "joined":
            details.append(room["problem"])
        name = room_id if room_id == room["channel"] else f"{room_id} ({room['channel']})"
        rows.append((f"room {name}", room["state"], " · ".join(details)))
    for name, plugin in status["plugins"].items():
        state = "failed" if plugin.get("failed") else "running" if plugin.get("running") \
            else "stopped"
        details = [f"handled {plugin.get('handled', 0)}", f"errors {plugin.get('errors', 0)}",
                   f"queued {plugin.get('queued', 0)}"]
        if plugin.get("failed"):
            details.append(plugin["failed"])
        rows.append((f"plugin {name}", state, " · ".join(details)))
    db = status["database"]
    details = [db["where"]]
    if "pool_size" in db:
        details.append(f"pool {db['pool_size']} ({db['pool_idle']} idle)")
    if db.get("last_error"):
        details.append(db["last_error"])
    rows.append(("database", "ok" if db["ok"] else "DOWN", " · ".join(details)))
    queues = status["queues"]
    waiting = (queues["bus"] + queues["outbox"] + queues["eventlog_in_memory"]
               + queues["eventlog_spilled"])
    rows.append(("queued", "waiting" if waiting else "empty", " · ".join(queue_parts(queues))))
    return rows


def render(status: dict[str, Any]) -> str:
    instance = status["instance"]
    health = "healthy" if instance["healthy"] else "NOT healthy"
    lines = [f"daz {instance['version']} on {instance['name']}: {instance['state']}, up"
             f" {duration_text(instance['uptime_seconds'])}, {health}", ""]
    lines += table(table_rows(status)) + problem_lines(instance["problems"])
    return "\n".join(lines)


@click.command("status")
@click.option("--url", help="Web address of the daz to ask  [default: from the config's"
                            " core.web, else http://127.0.0.1:8080]")
@click.option("--token", envvar="DAZ_WEB_TOKEN",
              help="Web login token  [default: core.web.token, else the data directory's"
                   " web-token file]")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The config the running daz uses (for its web port and token).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="The running daz's data directory (for its web-token file).")
@click.option("--dsn", help="Read every instance and room from this database (the one several"
                            " instances share) instead of asking a web port.")
@click.option("--database", "from_database", is_flag=True,
              help="Read every instance and room from the config's database instead of asking"
                   " a web port.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw JSON instead of a table.")
def status(url, token, config_path, data_dir, dsn, from_database, as_json) -> None:
    """Ask a running daz how it is and print one table: rooms and their state and holder,
    plugins, the database, what is queued or spilled. With several instances on one database,
    every instance and room from that database. Exit status 2 when it is not healthy."""
    import asyncio

    from daz.status_db import overview_for

    config = _config(config_path, data_dir, dsn)
    forced = bool(dsn or from_database)
    overview = None
    if forced or (not url and config.core.database.url()):
        overview = overview_for(config, required=forced)
        if overview is not None and (forced or _more_than_one_port_knows(overview)):
            _print_overview(overview, as_json)
    url, token = _where(config, url, token, data_dir)
    try:
        answer = asyncio.run(fetch_status(url, token))
    except click.ClickException as exc:
        if overview is not None:  # nothing on the web port, but the database knows
            click.echo(f"({exc.format_message()}; read from the database instead)", err=True)
            _print_overview(overview, as_json)
        raise _Unreachable(exc.format_message()) from exc
    click.echo(json.dumps(answer, indent=2) if as_json else render(answer))
    if not answer["instance"]["healthy"]:
        raise SystemExit(UNHEALTHY)


def _more_than_one_port_knows(overview: dict[str, Any]) -> bool:
    """A lone instance that holds every room can say it all on its web port (plugin by
    plugin); anything else (more instances, a stale one, a room nobody holds) needs the
    database's view."""
    return len(overview["instances"]) > 1 or bool(overview["waiting"])


def _print_overview(overview: dict[str, Any], as_json: bool) -> None:
    from daz.status_db import render_overview

    click.echo(json.dumps(overview, indent=2) if as_json else render_overview(overview))
    raise SystemExit(0 if overview["healthy"] else UNHEALTHY)
