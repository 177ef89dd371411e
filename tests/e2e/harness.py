"""Run the whole bot in-process against the fake CyTube server and a real PostgreSQL.

    async with running_bot(fake_server, migrated_dsn, tmp_path) as bot:
        alice = await fake_server.user("alice")
        await alice.chat("!ping")
        await bot.wait_for(lambda: ...)

``bot`` is the real ``daz.app.App``: real sockets, real bus, real plugins, real database.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daz.app import App
from daz.config import load_config

BOT_NAME = "dazbot"
BOT_PASSWORD = "dazbot-pw"


def bot_config(server_url: str, dsn: str, *, channel: str = "testchan",
               username: str = BOT_NAME, password: str = BOT_PASSWORD,
               plugins: dict[str, dict] | None = None, rooms: list[dict] | None = None,
               admin_users: list[str] | None = None, web_port: int = 0, web: bool = False):
    raw = {
        "core": {
            "rooms": rooms or [{"id": channel, "channel": channel, "username": username,
                                "password": password, "enabled": True,
                                "server_url": server_url}],
            "database": {"dsn": dsn, "max_connections": 10},
            "admin_users": admin_users or [],
            "web": {"enabled": web, "port": web_port},
        },
        "plugins": plugins or {},
    }
    import json
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(raw, f)
    try:
        return load_config(f.name, env={})
    finally:
        Path(f.name).unlink(missing_ok=True)


class RunningBot:
    def __init__(self, app: App):
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    @property
    def room(self):
        return next(iter(self.app.rooms))

    def plugin(self, name: str):
        return self.app.plugins.get(name)

    async def wait_joined(self, timeout: float = 15.0) -> None:
        await wait_until(lambda: all(r.status().get("joined") for r in self.app.rooms),
                         timeout, "all rooms joined")

    async def settle(self, timeout: float = 5.0) -> None:
        """Let every queued bus event be handled."""
        await self.app.bus.drain(timeout)


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0,
                     what: str = "condition", interval: float = 0.02) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_bot(server, dsn: str, data_dir: Path, *, channel: str = "testchan",
                      plugins: dict[str, dict] | None = None, only: list[str] | None = None,
                      admin_users: list[str] | None = None, web: bool = False,
                      join: bool = True, username: str = BOT_NAME,
                      password: str = BOT_PASSWORD, rooms: list[dict] | None = None,
                      plugin_classes: dict | None = None, keep_heap: bool = False):
    """Start daz against ``server`` (a started FakeCytubeServer); the bot account is created."""
    if username and password:
        server.add_account(username, password)
        server.set_channel_rank(channel, username, 2)
    config = bot_config(server.base_url, dsn, channel=channel, username=username,
                        password=password, plugins=plugins, admin_users=admin_users, web=web,
                        rooms=rooms)
    app = App(config, data_dir=data_dir, only_plugins=only, plugin_classes=plugin_classes,
              web=web, keep_heap=keep_heap)
    bot = RunningBot(app)
    try:
        await app.start()
        if join:
            await bot.wait_joined()
        yield bot
    finally:
        await app.stop()
