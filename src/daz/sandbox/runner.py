"""``daz sandbox``: the fake CyTube room with scripted users, and daz running in it.

A newcomer sees the bot work with no CyTube account and no internet: the fake server runs on
loopback, a bot account is created for daz, simulated users chat and use commands, post pictures
from the sandbox's own image host (``images.py``), and the dashboard shows it. The gallery is
told to trust that one origin (``plugins.gallery.unsafe_allow_hosts``, empty unless set here);
its SSRF guard stays closed for every other loopback or private address.
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
                          speed: float = 1.0, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (default: SIGINT or SIGTERM)."""
    from daz.app import App, default_data_dir
    from daz.sandbox.fake_cytube import FakeCytubeServer
    from daz.sandbox.images import SandboxImages
    from daz.sandbox.script import ScriptedRoom

    # auto_playback: queued media plays, ticks and advances by itself, like on a real server
    server = FakeCytubeServer(host="127.0.0.1", port=port, auto_playback=True)
    await server.start()
    images = await SandboxImages().start()
    password = secrets.token_urlsafe(12)
    server.add_account(BOT_NAME, password)
    server.set_channel_rank(channel, BOT_NAME, 2)
    print(f"fake CyTube server on {server.base_url}, channel {channel!r}; "
          f"bot account {BOT_NAME!r}")
    config = load_config(None, overrides={
        "channel": channel, "username": BOT_NAME, "password": password,
        "server": server.base_url, "dsn": dsn or "", "web_port": web_port,
        "data_dir": str(data_dir or default_data_dir() / "sandbox")})
    trust_sandbox_images(config, images.origin)
    app = App(config)
    script = ScriptedRoom(server, channel, bot_name=BOT_NAME, speed=speed, image_url=images.url)
    scripted: asyncio.Future | None = None
    with stop_on_signals(app.request_stop):
        try:
            if not await app.start_unless_stopped():
                return
            shown_port = app.web.port if app.web is not None else web_port
            print(f"daz is running: open http://127.0.0.1:{shown_port}/c/{channel}"
                  "  (Ctrl-C stops)")
            scripted = asyncio.ensure_future(script.run())
            waits = {asyncio.ensure_future(app.stop_requested.wait())}
            if stop is not None:
                waits.add(asyncio.ensure_future(stop.wait()))
            await asyncio.wait({scripted, *waits}, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits:
                waiting.cancel()
            if scripted.done():
                scripted.result()  # a script that died says why
        finally:
            await script.stop()
            if scripted is not None and not scripted.done():
                scripted.cancel()
            await app.stop()
            await server.stop()
            await images.stop()


def trust_sandbox_images(config, origin: str) -> None:
    """Let the gallery fetch from the sandbox's own image host, and from nothing else that
    its SSRF guard refuses."""
    section = config.plugins.setdefault("gallery", {})
    section["unsafe_allow_hosts"] = [origin]
