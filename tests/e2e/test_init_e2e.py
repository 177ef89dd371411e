"""``daz init`` against the fake CyTube server: each answer checked before anything is written,
bad answers refused with one line, and the config it writes runs the bot."""
from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest
from click.testing import CliRunner

from daz.app import App
from daz.cli import main
from daz.config import load_config
from tests.e2e.harness import BOT_NAME, BOT_PASSWORD, wait_until
from tests.e2e.support import unused_http_address

CHANNEL = "initchan"


@pytest.fixture
def server(fake_server):
    fake_server.add_account(BOT_NAME, BOT_PASSWORD)
    fake_server.set_channel_rank(CHANNEL, BOT_NAME, 2)
    return fake_server


async def _init(args: list[str], input: str | None = None):
    """Run ``daz init`` in a thread (it runs its own event loop) while the fake server serves."""
    runner = CliRunner()
    env = {k: None for k in os.environ if k.startswith("DAZ_")}
    return await asyncio.to_thread(runner.invoke, main, ["init", *args], input=input, env=env)


def _flags(server, tmp_path, **change: str) -> list[str]:
    values = {"--config": str(tmp_path / "etc" / "config.json"), "--server": server.base_url,
              "--channel": CHANNEL, "--username": BOT_NAME, "--password": BOT_PASSWORD,
              "--admin": "alice", **change}
    args = ["--non-interactive"]
    for flag, value in values.items():
        args += [flag, value]
    return args


def _one_line_error(result) -> str:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


async def test_non_interactive_writes_a_config_and_a_private_password_file_that_run(
        server, migrated_dsn, tmp_path):
    result = await _init(_flags(server, tmp_path, **{"--dsn": migrated_dsn}) +
                         ["--admin", "bob", "--web-port", "0"])
    assert result.exit_code == 0, result.output
    config_path = tmp_path / "etc" / "config.json"
    secret = tmp_path / "etc" / "cytube-password"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert secret.read_text() == BOT_PASSWORD + "\n"
    raw = json.loads(config_path.read_text())
    assert BOT_PASSWORD not in config_path.read_text()
    room = raw["core"]["rooms"][0]
    assert room["password_file"] == "cytube-password" and "password" not in room
    assert raw["core"]["admin_users"] == ["alice", "bob"]

    config = load_config(config_path, env={})  # from another working directory too
    assert config.core.rooms[0].password == BOT_PASSWORD
    app = App(config, data_dir=tmp_path / "data", web=False)
    try:
        await app.start()
        await wait_until(lambda: all(r.status().get("joined") for r in app.rooms), 15,
                         "joined with the config daz init wrote")
        assert next(iter(app.rooms)).state.logged_in
    finally:
        await app.stop()


async def test_a_given_password_file_is_named_not_copied(server, tmp_path):
    given = tmp_path / "pw"
    given.write_text(BOT_PASSWORD + "\n")
    args = [a for a in _flags(server, tmp_path) if a not in ("--password", BOT_PASSWORD)]
    result = await _init(args + ["--password-file", str(given)])
    assert result.exit_code == 0, result.output
    room = json.loads((tmp_path / "etc" / "config.json").read_text())["core"]["rooms"][0]
    assert room["password_file"] == str(given.resolve())
    assert not (tmp_path / "etc" / "cytube-password").exists()
    given.write_text("")
    line = _one_line_error(await _init(args + ["--password-file", str(given), "--force"]))
    assert "is empty" in line


async def test_a_wrong_password_is_one_line_and_nothing_is_written(server, tmp_path):
    line = _one_line_error(await _init(_flags(server, tmp_path, **{"--password": "wrong"})))
    assert f"refused the login of {BOT_NAME!r}" in line
    assert "Invalid username/password" in line
    assert not (tmp_path / "etc").exists()


async def test_an_unknown_channel_is_one_line_and_nothing_is_written(server, tmp_path):
    server.channel("nosuchchan", registered=False)  # what the real server has for any new name
    line = _one_line_error(await _init(_flags(server, tmp_path, **{"--channel": "nosuchchan"})))
    assert "there is no channel 'nosuchchan'" in line
    assert not (tmp_path / "etc").exists()


async def test_an_unreachable_server_is_one_line_and_nothing_is_written(tmp_path):
    closed = unused_http_address()
    args = ["--non-interactive", "--config", str(tmp_path / "c.json"), "--server", closed,
            "--channel", CHANNEL, "--username", BOT_NAME, "--password", BOT_PASSWORD]
    line = _one_line_error(await _init(args))
    assert f"cannot reach the CyTube server at {closed}" in line
    assert list(tmp_path.iterdir()) == []


async def test_a_database_that_does_not_answer_is_one_line(server, tmp_path):
    line = _one_line_error(await _init(_flags(
        server, tmp_path, **{"--dsn": "postgresql://nobody:secret@127.0.0.1:1/none"})))
    assert "cannot connect to the database" in line and "secret" not in line
    assert not (tmp_path / "etc").exists()


async def test_an_existing_config_is_kept_without_force(server, tmp_path):
    config_path = tmp_path / "etc" / "config.json"
    config_path.parent.mkdir()
    config_path.write_text("{}")
    line = _one_line_error(await _init(_flags(server, tmp_path)))
    assert "exists; give --force" in line and config_path.read_text() == "{}"


async def test_interactive_asks_again_after_each_bad_answer(server, tmp_path):
    server.channel("ghost", registered=False)
    config_path = tmp_path / "config.json"
    lines = [
        server.base_url, f"{CHANNEL} bad!name",   # a malformed channel name: asked again
        server.base_url, "ghost",                 # a channel nobody registered ...
        BOT_NAME, BOT_PASSWORD,                   # ... found at the login: back to where
        server.base_url, CHANNEL,
        BOT_NAME, "wrong",                        # a wrong password: asked again
        BOT_NAME, BOT_PASSWORD,
        "alice bad!admin",                        # a malformed admin name: asked again
        "alice",
        "postgresql://nobody@127.0.0.1:1/none",   # a database that does not answer
        "",                                       # embedded
    ]
    result = await _init(["--config", str(config_path)], input="\n".join(lines) + "\n")
    assert result.exit_code == 0, result.output
    assert "'bad!name' is not valid" in result.output
    assert "there is no channel 'ghost'" in result.output
    assert "refused the login" in result.output
    assert "'bad!admin' is not valid" in result.output
    assert "cannot connect to the database" in result.output
    assert BOT_PASSWORD not in result.output and "wrong" not in result.output
    raw = json.loads(config_path.read_text())
    assert [r["channel"] for r in raw["core"]["rooms"]] == [CHANNEL]
    assert raw["core"]["admin_users"] == ["alice"] and "database" not in raw["core"]
    assert load_config(config_path, env={}).core.rooms[0].password == BOT_PASSWORD
