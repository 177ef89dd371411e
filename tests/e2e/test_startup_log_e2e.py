"""``daz run --log-format json`` against the fake server: one JSON object per line, room lines
tagged with their room and plugin lines with their plugin, and start-up says each thing once
(the web address, the migrations applied, one line naming every plugin). That bus handlers
tag their lines with room and plugin is tested in tests/unit/test_logs.py."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

from tests.e2e.harness import BOT_NAME, BOT_PASSWORD

CHANNEL = "logchan"


async def test_json_start_up_log_says_each_thing_once(fake_server, fresh_dsn, tmp_path):
    fake_server.add_account(BOT_NAME, BOT_PASSWORD)
    fake_server.set_channel_rank(CHANNEL, BOT_NAME, 2)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"core": {
        "rooms": [{"id": CHANNEL, "channel": CHANNEL, "username": BOT_NAME,
                   "password": BOT_PASSWORD, "enabled": True,
                   "server_url": fake_server.base_url}],
        "database": {"dsn": fresh_dsn}, "web": {"port": 0}},
        "plugins": {"gallery": {"enable_health_check": False}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAZ_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "daz.cli", "run", "--config", str(config), "--data-dir",
        str(tmp_path / "data"), "--log-format", "json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    entries: list[dict] = []
    other: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(proc.stderr.readline(), 60)
            if not raw:
                break
            try:
                entries.append(json.loads(raw))
            except ValueError:
                other.append(raw.decode())
                continue
            if f"joined {CHANNEL}" in entries[-1]["message"]:
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        _rest, err = await asyncio.wait_for(proc.communicate(), 30)
    for raw in err.decode().splitlines():
        try:
            entries.append(json.loads(raw))
        except ValueError:
            other.append(raw)
    messages = [e["message"] for e in entries]
    assert other == [], other  # nothing on stderr but JSON objects
    for entry in entries:
        assert entry["time"].endswith("+00:00") and entry["level"] and "logger" in entry

    assert sum("web server on" in m for m in messages) == 1, messages
    assert sum("025_retry_persistence.sql" in m for m in messages) == 1, messages
    running = [m for m in messages if m.startswith("daz running:")]
    assert len(running) == 1, messages
    for plugin in ("sql", "eventfilter", "usertracker", "greeter", "tell", "gallery"):
        assert plugin in running[0]
    assert not any(m.startswith("plugin ") and m.endswith(" started") for m in messages)

    joined = next(e for e in entries if f"joined {CHANNEL}" in e["message"])
    assert joined["room"] == CHANNEL
    greetings = next(e for e in entries if e["logger"].startswith("daz.plugins.greeter"))
    assert greetings["plugin"] == "greeter"
    assert proc.returncode == 0, messages[-5:]
