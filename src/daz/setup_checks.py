"""The checks ``daz init`` makes before it writes anything: is the CyTube server there, is the
channel a registered one, does the bot account log in, does the database answer.

Each check returns None when the answer is good, or one line saying what is wrong and what to
do, which ``daz init`` prints as it is.
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from daz.cytube.connection import DiscoveryError, choose_server

CHANNEL_NAME = re.compile(r"[\w-]{1,30}")
USER_NAME = re.compile(r"[\w-]{1,20}")
CHECK_TIMEOUT = 10.0
# The real server ends the join sequence with ``channelNotRegistered`` for an unregistered
# channel; how long to wait for it after the userlist and the login reply have come.
NOT_REGISTERED_GRACE = 0.5


@dataclass
class JoinResult:
    """What one join + login on the server showed; ``about`` says which answer the problem is
    with: "channel" or "login" (the account), or "server"."""
    problem: str | None = None
    about: str = ""


async def check_server(server_url: str, channel: str, *,
                       timeout: float = CHECK_TIMEOUT) -> tuple[str | None, str | None]:
    """(socket.io URL, None) when /socketconfig/<channel>.json answers, else (None, problem)."""
    if not server_url.startswith(("http://", "https://")):
        return None, f"the server address must start with https:// (or http://): {server_url}"
    url = f"{server_url.rstrip('/')}/socketconfig/{channel}.json"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.get(url) as response:
                if response.status != 200:
                    return None, (f"{server_url} is not a CyTube server (GET {url} answered"
                                  f" HTTP {response.status})")
                body = await response.json(content_type=None)
        return choose_server(body, prefer_secure=server_url.startswith("https://")), None
    except DiscoveryError as exc:
        return None, f"{server_url} is not a CyTube server ({exc})"
    except ValueError:
        return None, f"{server_url} is not a CyTube server (its socketconfig is not JSON)"
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        return None, f"cannot reach the CyTube server at {server_url}: {reason}"


async def check_join(socket_url: str, server_url: str, channel: str, username: str,
                     password: str, *, timeout: float = CHECK_TIMEOUT) -> JoinResult:
    """Join ``channel`` and log in as ``username`` once, then leave: the channel must be a
    registered one and the login accepted."""
    import socketio

    client = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
    seen: dict[str, Any] = {}
    userlist = asyncio.Event()
    login = asyncio.Event()
    not_registered = asyncio.Event()

    @client.on("userlist")
    async def _userlist(*_: Any) -> None:
        userlist.set()

    @client.on("login")
    async def _login(payload: Any = None, *_: Any) -> None:
        seen["login"] = payload if isinstance(payload, dict) else {}
        login.set()

    @client.on("channelNotRegistered")
    async def _not_registered(*_: Any) -> None:
        not_registered.set()

    @client.on("kick")
    async def _kick(payload: Any = None, *_: Any) -> None:
        seen["kick"] = payload.get("reason") if isinstance(payload, dict) else str(payload)
        login.set()
        userlist.set()

    try:
        await asyncio.wait_for(client.connect(socket_url, transports=["websocket"]), timeout)
    except (TimeoutError, socketio.exceptions.ConnectionError, OSError) as exc:
        return JoinResult(f"cannot open a socket.io connection to {socket_url} (announced by"
                          f" {server_url}): {exc or type(exc).__name__}", "server")
    try:
        await client.emit("joinChannel", {"name": channel})
        await client.emit("login", {"name": username, "pw": password})
        try:
            await asyncio.wait_for(asyncio.gather(userlist.wait(), login.wait()), timeout)
        except TimeoutError:
            return JoinResult(f"{server_url} did not answer the join of channel {channel!r}"
                              f" and the login within {timeout:.0f} s", "server")
        if "kick" in seen:
            return JoinResult(f"{server_url} turned the bot away from {channel!r}:"
                              f" {seen['kick']}", "channel")
        try:
            await asyncio.wait_for(not_registered.wait(), NOT_REGISTERED_GRACE)
        except TimeoutError:
            pass
        if not_registered.is_set():
            return JoinResult(f"there is no channel {channel!r} on {server_url} (it is not"
                              f" registered; check the name, or register it first)", "channel")
        reply = seen.get("login", {})
        if not reply.get("success"):
            error = reply.get("error") or "no reason given"
            return JoinResult(f"{server_url} refused the login of {username!r}: {error}",
                              "login")
        return JoinResult()
    finally:
        await client.disconnect()


async def check_database(dsn: str, *, timeout: float = CHECK_TIMEOUT) -> str | None:
    """None when ``dsn`` accepts a connection and answers a query."""
    import asyncpg

    from daz.db.pool import redact

    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except Exception as exc:
        return f"cannot connect to the database {redact(dsn)}: {exc or type(exc).__name__}"
    try:
        await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    return None


def check_name(kind: str, value: str, pattern: re.Pattern[str], limit: int) -> str | None:
    if pattern.fullmatch(value):
        return None
    return (f"{kind} {value!r} is not valid: 1-{limit} characters of letters, digits, _ or -")
