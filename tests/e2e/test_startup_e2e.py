"""A database that is down when daz starts: daz waits for it instead of crashing, /health says
what is missing meanwhile, and the bot comes up by itself once the database answers."""
from __future__ import annotations

import asyncio
import stat
from urllib.parse import urlsplit

import aiohttp

from daz.app import App
from tests.e2e.harness import BOT_NAME, BOT_PASSWORD, bot_config, wait_until
from tests.e2e.support import CHANNEL, plugins
from tests.fakes.tcp_proxy import TcpProxy


async def _health(port: int) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/health") as response:
            return response.status, await response.json()


def _healthy(app):
    async def check() -> bool:
        try:
            status, _ = await _health(app.web.port)
        except aiohttp.ClientError:
            return False
        return status == 200
    return check


async def test_a_database_down_at_start_up_is_waited_for_and_reported(fake_server, migrated_dsn,
                                                                       tmp_path):
    target = urlsplit(migrated_dsn)
    proxy = await TcpProxy(target.hostname, target.port or 5432).start()
    await proxy.block()
    fake_server.add_account(BOT_NAME, BOT_PASSWORD)
    fake_server.set_channel_rank(CHANNEL, BOT_NAME, 2)
    config = bot_config(fake_server.base_url, proxy.dsn_for(migrated_dsn), plugins=plugins(),
                        web=True, web_port=0)
    app = App(config, data_dir=tmp_path, web=True)
    starting = asyncio.create_task(app.start())
    try:
        await wait_until(lambda: app.web is not None and app.web.port, 10, "web server up")
        status, body = await _health(app.web.port)
        assert status == 503
        assert any(problem.startswith("database") for problem in body["problems"]), body
        assert not starting.done(), "start-up gave up instead of waiting for the database"

        await proxy.unblock()
        await asyncio.wait_for(starting, 30)
        await wait_until(lambda: all(r.status().get("joined") for r in app.rooms), 15,
                         "room joined once the database answered")
        # Plugin pages make the web server rebuild once, so allow it a moment to answer again.
        await wait_until(_healthy(app), 10, "/health 200")
        status, body = await _health(app.web.port)
        assert status == 200, body
        assert body["problems"] == []
    finally:
        if not starting.done():
            starting.cancel()
        await app.stop()
        await proxy.stop()


async def test_with_no_database_configured_daz_runs_on_an_embedded_postgres(fake_server, tmp_path):
    """The README's first command: no DSN anywhere, so daz starts its own PostgreSQL in the data
    directory, migrates it and logs the room's chat into it; a second start reuses it."""
    fake_server.add_account(BOT_NAME, BOT_PASSWORD)
    fake_server.set_channel_rank(CHANNEL, BOT_NAME, 2)
    config = bot_config(fake_server.base_url, "", plugins=plugins())
    assert config.core.database.url() == ""
    for round_number in (1, 2):
        app = App(config, data_dir=tmp_path)
        try:
            await app.start()
            assert app.embedded is not None
            assert (tmp_path / "postgres" / "PG_VERSION").exists()
            # Private: others may not even pass; as root the cluster's own user's group may.
            assert stat.S_IMODE(tmp_path.stat().st_mode) in (0o700, 0o710)
            await wait_until(lambda: all(r.status().get("joined") for r in app.rooms), 15,
                             "room joined")
            alice = await fake_server.user(f"alice{round_number}")
            await alice.chat(f"hello embedded {round_number}")
            await wait_until(lambda: _logged(app, round_number), 15, "chat logged")
        finally:
            await app.stop()


def _logged(app, round_number: int):
    async def check() -> bool:
        rows = await app.db.fetch(
            "SELECT message FROM daz_core_events WHERE event_type = 'cytube.event.chatMsg'"
            " ORDER BY id")
        return [r["message"] for r in rows] == [f"hello embedded {n}"
                                                 for n in range(1, round_number + 1)]
    return check
