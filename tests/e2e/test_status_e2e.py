"""``daz status`` asks a running bot (on the fake server) over its web port and prints one table;
/status itself wants the web login token."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import AsyncIterator

import aiohttp
from click.testing import CliRunner

from daz.app import App
from daz.cli import main
from tests.e2e.harness import BOT_NAME, BOT_PASSWORD, bot_config, wait_until
from tests.e2e.support import CHANNEL, plugins, unused_http_address

TOKEN = "status-test-token-0123456789"


async def _status(*args: str):
    env = {k: None for k in os.environ if k.startswith("DAZ_")}
    return await asyncio.to_thread(CliRunner().invoke, main, ["status", *args], env=env)


@contextlib.asynccontextmanager
async def running_app(fake_server, dsn, tmp_path) -> AsyncIterator[App]:
    fake_server.add_account(BOT_NAME, BOT_PASSWORD)
    fake_server.set_channel_rank(CHANNEL, BOT_NAME, 2)
    config = bot_config(fake_server.base_url, dsn, plugins=plugins(), web=True, web_port=0)
    config.core.web.token = TOKEN
    app = App(config, data_dir=tmp_path / "data", web=True)
    try:
        await app.start()
        await wait_until(lambda: all(r.status().get("joined") for r in app.rooms), 15,
                         "joined")
        yield app
    finally:
        await app.stop()


async def test_status_prints_rooms_plugins_database_and_queues(fake_server, migrated_dsn,
                                                               tmp_path):
    async with running_app(fake_server, migrated_dsn, tmp_path) as app:
        url = f"http://127.0.0.1:{app.web.port}"
        alice = await fake_server.user("alice", channel=CHANNEL)
        room = next(iter(app.rooms))
        await wait_until(lambda: room.state.user("alice") is not None, 10, "alice seen")
        result = None

        async def healthy_answer() -> bool:
            nonlocal result
            result = await _status("--url", url, "--token", TOKEN)
            return result.exit_code == 0
        await wait_until(healthy_answer, 15, "daz status exit 0")
        out = result.output
        first = out.splitlines()[0]
        assert first.startswith("daz ") and ": running, up " in first and "healthy" in first
        row = next(line for line in out.splitlines() if line.startswith(f"room {CHANNEL}"))
        assert " joined " in row and f"as {BOT_NAME}" in row and "2 users" in row
        assert f"held by {socket.gethostname()}:{os.getpid()}" in row
        for plugin in ("sql", "usertracker", "greeter"):
            line = next(row for row in out.splitlines() if row.startswith(f"plugin {plugin} "))
            assert " running " in line and "errors 0" in line
        database = next(line for line in out.splitlines() if line.startswith("database"))
        assert " ok " in database and migrated_dsn.rsplit("/", 1)[1] in database
        assert any(line.startswith("queued") and "0 spilled" in line
                   for line in out.splitlines())

        as_json = await _status("--url", url, "--token", TOKEN, "--json")
        body = json.loads(as_json.output)
        assert body["rooms"][CHANNEL]["state"] == "joined"
        assert body["database"]["ok"] is True

        # The database goes away: the table says so and the exit status is 2.
        await app.db.close()
        down = await _status("--url", url, "--token", TOKEN)
        assert down.exit_code == 2, down.output
        assert "NOT healthy" in down.output and "problems:" in down.output
        await alice.leave()


async def test_status_finds_port_and_token_from_config_and_data_dir(fake_server, migrated_dsn,
                                                                    tmp_path):
    async with running_app(fake_server, migrated_dsn, tmp_path) as app:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"core": {"web": {"port": app.web.port}}}))
        (tmp_path / "data" / "web-token").write_text(TOKEN + "\n")
        result = await _status("--config", str(config), "--data-dir", str(tmp_path / "data"))
        assert result.exit_code in (0, 2), result.output
        assert f"room {CHANNEL}" in result.output


async def test_status_wants_the_token_and_says_when_nothing_answers(fake_server, migrated_dsn,
                                                                    tmp_path):
    async with running_app(fake_server, migrated_dsn, tmp_path) as app:
        url = f"http://127.0.0.1:{app.web.port}"
        async with aiohttp.ClientSession() as http, http.get(f"{url}/status") as response:
            assert response.status == 401
        refused = await _status("--url", url, "--token", "wrong")
        assert refused.exit_code == 1 and "refused the web login token" in refused.output
    closed = unused_http_address()
    nobody = await _status("--url", closed, "--token", TOKEN)
    assert nobody.exit_code == 1
    assert f"no daz answers at {closed}" in nobody.output
    assert len(nobody.output.strip().splitlines()) == 1
