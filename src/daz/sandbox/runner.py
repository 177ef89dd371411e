"""``daz sandbox``: the fake CyTube room with scripted users, and daz running in it.

A newcomer sees the bot work with no CyTube account: the fake server runs on loopback, a bot
account is created for daz, simulated users chat and use commands, and the dashboard shows it.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

from daz.config import load_config
from daz.stopping import stop_on_signals

log = logging.getLogger(__name__)

BOT_NAME = "daz"


async def run_sandbox_bot(*, port: int = 8765, channel: str = "sandbox", dsn: str | None = None,
                          data_dir: Path | None = None, web_port: int = 8080,
                          speed: float = 1.0) -> None:
    from daz.app import App, default_data_dir
    from daz.sandbox.fake_cytube import FakeCytubeServer
    from daz.sandbox.script import ScriptedRoom

    # auto_playback: queued media plays, ticks and advances by itself, like on a real server
    server = FakeCytubeServer(host="127.0.0.1", port=port, auto_playback=True)
    await server.start()
    password = secrets.token_urlsafe(12)
    server.add_account(BOT_NAME, password)
    server.set_channel_rank(channel, BOT_NAME, 2)
    print(f"fake CyTube server on {server.base_url}, channel {channel!r}; "
          f"bot account {BOT_NAME!r}")
    config = load_config(None, overrides={
        "channel": channel, "username": BOT_NAME, "password": password,
        "server": server.base_url, "dsn": dsn or "", "web_port": web_port,
        "data_dir": str(data_dir or default_data_dir() / "sandbox")})
    app = App(config)
    script = ScriptedRoom(server, channel, bot_name=BOT_NAME, speed=speed)
    scripted: asyncio.Future | None = None
    with stop_on_signals(app.request_stop):
        try:
            if not await app.start_unless_stopped():
                return
            shown_port = app.web.port if app.web is not None else web_port
            print(f"daz is running: open http://127.0.0.1:{shown_port}/c/{channel}"
                  "  (Ctrl-C stops)")
            scripted = asyncio.ensure_future(script.run())
            stopping = asyncio.ensure_future(app.stop_requested.wait())
            await asyncio.wait({scripted, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if scripted.done():
                scripted.result()  # a script that died says why
        finally:
            await script.stop()
            if scripted is not None and not scripted.done():
                scripted.cancel()
            await app.stop()
            await server.stop()
