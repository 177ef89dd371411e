"""The sandbox script keeps a fake room lively: people chat (awkward text included), use the
bot's commands, go AFK, leave and come back, and queued media plays and advances."""
from __future__ import annotations

import asyncio

from daz.sandbox.script import ScriptedRoom
from tests.fakes.cytube import FakeCytubeServer


async def test_script_runs_rounds_with_chat_commands_afk_and_media():
    server = FakeCytubeServer(auto_playback=True, lead_in=0.05, update_interval=0.2,
                              end_grace=0.05, usercount_interval=0.1)
    await server.start()
    script = ScriptedRoom(server, "sandbox", bot_name="dazbot", speed=400,
                          image_url=lambda name: f"http://images.test/img/{name}.png")
    server.add_account("dazbot", "pw")
    server.set_channel_rank("sandbox", "dazbot", 2)
    bot = await server.user("dazbot", channel="sandbox")
    runner = asyncio.create_task(script.run())
    try:
        await bot.wait_for("delete", timeout=8)            # an item played out and left
        while script.rounds < 2:
            assert not runner.done(), runner.exception()
            await asyncio.sleep(0.05)
        said = {name: server.chat_from("sandbox", name) for name in ("alice", "bob", "carol")}
        assert "!ping" in said["bob"] and "!help" in said["carol"]
        assert any("http://images.test/img/daz1.png" in line for line in said["alice"])
        assert any(line.startswith("!tell carol") for line in said["alice"])
        messages = [msg for _, msg in bot.chats()]
        assert any("&lt;b&gt;is this bold?&lt;/b&gt;" in msg for msg in messages)
        assert any('<a href="http://images.test/img/daz' in msg for msg in messages)
        assert {"name": "bob", "afk": True} in bot.received("setAFK")
        assert {"name": "bob", "afk": False} in bot.received("setAFK")
        assert {"name": "carol"} in bot.received("userLeave")
        assert len([u for u in bot.received("addUser") if u["name"] == "carol"]) >= 2
        assert bot.received("changeMedia") and bot.received("mediaUpdate")
        assert all(item["queueby"] == "alice" for item in
                   (q["item"] for q in bot.received("queue")))
    finally:
        await script.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await server.stop()
    assert script.users == {}
