"""The whole bot with the ollama plugin, against the fake CyTube server and a fake Ollama."""
from daz.plugins.ollama import Ollama
from daz.sandbox import fake_cytube
from tests.e2e.harness import BOT_NAME, running_bot, wait_until
from tests.fakes.ollama import FakeOllama


async def test_named_in_real_chat_answers_once_and_remembers_its_own_line(migrated_dsn,
                                                                         tmp_path):
    server = fake_cytube.FakeCytubeServer()
    await server.start()
    ollama = FakeOllama(reply=f"{BOT_NAME} here, hi alice")  # our echo names us: no loop
    await ollama.start()
    plugins = {"ollama": {"enabled": True, "ollama_url": ollama.url, "model": "test-model",
                          "timeout": 5, "rate_limit_seconds": 0,
                          "channel_rate_limit_seconds": 0, "follow_up_enabled": False}}
    try:
        async with running_bot(server, migrated_dsn, tmp_path, plugins=plugins,
                               plugin_classes={"ollama": Ollama}) as bot:
            alice = await server.user("alice")
            await alice.chat(f"hey {BOT_NAME} you awake?")
            await wait_until(lambda: server.chat_from("testchan", BOT_NAME), 10,
                             "the bot's reply in chat")
            await alice.chat("that was dazzling")  # not addressed
            ollama.reply = "still here"
            await alice.chat(f"{BOT_NAME} again")
            await wait_until(lambda: len(server.chat_from("testchan", BOT_NAME)) >= 2, 10,
                             "the second reply")
            await bot.settle()
            await bot.plugin("ollama").quiesce()
            assert server.chat_from("testchan", BOT_NAME) == [f"{BOT_NAME} here, hi alice",
                                                              "still here"]
            requests = ollama.chat_requests()
            assert len(requests) == 2
            # The real outbox reported our first line; the model sees it as its own turn.
            assert {"role": "assistant", "content": f"{BOT_NAME} here, hi alice"} in \
                requests[1]["messages"]
    finally:
        await ollama.stop()
        await server.stop()
