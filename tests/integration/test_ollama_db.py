"""ollama against a real PostgreSQL and a fake Ollama server: when it answers, what it sends."""
import logging

import pytest

from daz.clock import FakeClock
from daz.cytube.events import Media
from tests.integration.ollama_helpers import (
    BOT,
    chat,
    chat_event,
    done,
    start,
)


async def rows(database):
    return await database.fetch(
        "SELECT channel, username, message_hash, message_time, response_text"
        " FROM daz_ollama_responses ORDER BY id")


async def test_named_line_gets_exactly_one_reply_and_is_recorded(database, fake_ollama):
    kit = await start(database, fake_ollama.url)
    try:
        line = chat_event(kit, "alice", "hey daz, how&#39;s it going?")
        await kit.bus.publish(line)
        await done(kit)
        assert kit.room.said == ["g'day mate"]
        assert kit.room.say_flags == [True]  # model text may start with "/": neutralised
        assert len(fake_ollama.chat_requests()) == 1
        body = fake_ollama.chat_requests()[0]
        assert body["model"] == "test-model" and body["stream"] is False
        assert body["options"]["num_predict"] == 200  # Go asked for 2048 tokens
        [row] = await rows(database)
        assert (row["channel"], row["username"], row["response_text"]) == \
            ("testchan", "alice", "g'day mate")
        assert len(row["message_hash"]) == 64
        # The same frame delivered again (a resync, another listener) is not answered again.
        assert row["message_time"] == line.time
        await kit.bus.publish(line)
        await done(kit)
        assert kit.room.said == ["g'day mate"]
        assert kit.plugin("ollama").stats["duplicates"] == 1
    finally:
        await kit.stop()


async def test_words_containing_the_name_and_other_lines_get_nothing(database, fake_ollama):
    kit = await start(database, fake_ollama.url, ignored_users=["OtherBot"])
    try:
        for text in ("that was dazzling", "I'm dazed", "dazza is not me", "daz_fan"):
            await chat(kit, "alice", text)
        await chat(kit, "alice", "!daz help")           # a command
        await chat(kit, "alice", "/daz")                # a chat command
        await chat(kit, "otherbot", "daz hello")        # another bot (case-insensitive)
        await chat(kit, "DAZ", "daz talking to myself")  # our own name from another socket
        await chat(kit, "alice", "daz old line", replayed=True)
        await chat(kit, "alice", "daz own echo", own=True)
        await chat(kit, "[server]", "daz whisper")
        await chat(kit, "alice", "daz shadow", shadow=True)
        assert kit.room.said == []
        assert fake_ollama.chat_requests() == []
        assert await rows(database) == []
    finally:
        await kit.stop()


async def test_aliases_and_a_non_default_prefix(database, fake_ollama):
    kit = await start(database, fake_ollama.url, aliases=["Dazza"], command_prefix="$")
    try:
        await chat(kit, "alice", "oi DAZZA")
        await chat(kit, "bob", "$daz help")
        assert kit.room.said == ["g'day mate"]
    finally:
        await kit.stop()


async def test_follow_up_window(database, fake_ollama):
    clock = FakeClock()
    kit = await start(database, fake_ollama.url, clock=clock, follow_up_window_seconds=60,
                      follow_up_max_messages=2)
    for name in ("alice", "bob"):
        kit.user(name)
    try:
        await chat(kit, "alice", "daz what's good")
        await chat(kit, "bob", "anyone up for pizza")   # bob never spoke to daz
        clock.advance(30)
        await chat(kit, "alice", "and what about you")  # no name, inside the window
        assert len(kit.room.said) == 2
        clock.advance(30)
        await chat(kit, "alice", "bob: you there?")     # turned to someone else: window closes
        await chat(kit, "alice", "still there?")
        assert len(kit.room.said) == 2
        await chat(kit, "alice", "daz back again")      # naming reopens it
        clock.advance(61)
        await chat(kit, "alice", "hello?")              # past 60 s
        assert len(kit.room.said) == 3
        await chat(kit, "alice", "daz one")
        await chat(kit, "alice", "two")
        await chat(kit, "alice", "three")               # follow-up turn 2: the limit
        await chat(kit, "alice", "four")
        assert len(kit.room.said) == 6
    finally:
        await kit.stop()


async def test_prompt_has_persona_room_and_history_including_our_own_lines(database,
                                                                           fake_ollama):
    kit = await start(database, fake_ollama.url,
                      system_prompt="You are {bot_name}, a cricket tragic.")
    for name in (BOT, "alice", "bob"):
        kit.user(name)
    kit.room.state.current_media = Media(id="abc", title="Ashes Highlights 2005", type="yt")
    try:
        await chat(kit, "bob", "the cricket was unreal last night")
        await kit.room.say("the ashes are coming home")  # another plugin's line, via the outbox
        await done(kit)
        fake_ollama.reply = "mate it was brilliant"
        await chat(kit, "alice", "daz did you watch it?")
        fake_ollama.reply = "sure was"
        await chat(kit, "alice", "daz really?")
        first, second = fake_ollama.chat_requests()
        system = first["messages"][0]
        assert system["role"] == "system"
        assert system["content"].startswith("You are daz, a cricket tragic.")
        for fact in ("testchan", "alice", "bob", "Ashes Highlights 2005"):
            assert fact in system["content"]
        turns = [(m["role"], m["content"]) for m in first["messages"][1:]]
        assert turns == [("user", "bob: the cricket was unreal last night"),
                         ("assistant", "the ashes are coming home"),
                         ("user", "alice: daz did you watch it?")]  # the line once, at the end
        # Go dropped the bot's own replies from the history; here the model sees them.
        turns = [(m["role"], m["content"]) for m in second["messages"][1:]]
        assert ("assistant", "mate it was brilliant") in turns
        assert turns[-1] == ("user", "alice: daz really?")
        assert turns.count(("user", "alice: daz really?")) == 1
    finally:
        await kit.stop()


@pytest.mark.parametrize("mode", ["fail", "garbage", "wrong_shape", "empty", "slow", "hang"])
async def test_a_bad_server_means_no_reply_and_a_log_line(database, fake_ollama, caplog, mode):
    fake_ollama.mode = mode
    fake_ollama.delay = 5.0
    kit = await start(database, fake_ollama.url, timeout=0.3)
    try:
        with caplog.at_level(logging.WARNING, logger="daz.plugins.ollama"):
            await chat(kit, "alice", "daz are you alive?")
        # Go answered "yeah"/"haha"/"true" when its model failed: nothing canned here.
        assert kit.room.said == []
        assert any("no reply to alice" in r.getMessage() for r in caplog.records)
        assert kit.plugin("ollama").stats["failures"] == 1
        logged = await database.fetch("SELECT log_data FROM daz_plugin_logs"
                                      " WHERE plugin_name = 'ollama'")
        assert any("no reply to alice" in str(r["log_data"]) for r in logged)
        # The message stays claimed: another process does not answer it later either.
        [row] = await rows(database)
        assert row["response_text"] is None
    finally:
        await kit.stop()


async def test_unreachable_server(database, caplog):
    kit = await start(database, "http://127.0.0.1:9")  # discard port: nothing listens
    try:
        with caplog.at_level(logging.WARNING, logger="daz.plugins.ollama"):
            await chat(kit, "alice", "daz hello")
        assert kit.room.said == []
        assert any("no reply to alice" in r.getMessage() for r in caplog.records)
    finally:
        await kit.stop()


async def test_stale_line_is_not_answered(database, fake_ollama, caplog):
    kit = await start(database, fake_ollama.url, max_message_age_seconds=30)
    try:
        event = chat_event(kit, "alice", "daz hello")
        event.received_at -= 45  # sat in a backlog: the moment has passed
        with caplog.at_level(logging.INFO, logger="daz.plugins.ollama"):
            await kit.bus.publish(event)
            await done(kit)
        assert kit.room.said == [] and fake_ollama.chat_requests() == []
        assert any("45s old" in r.getMessage() for r in caplog.records)
    finally:
        await kit.stop()


async def test_hostile_input_and_replies_are_bounded(database, fake_ollama):
    fake_ollama.reply = "<think>plan</think>daz: " + "blah " * 2000
    kit = await start(database, fake_ollama.url, max_reply_chars=120)
    try:
        await chat(kit, "alice", "daz \x00\x01 " + "A" * 100_000)
        [body] = fake_ollama.chat_requests()
        last = body["messages"][-1]["content"]
        assert last.startswith("alice: daz") and "\x00" not in last and len(last) < 600
        [reply] = kit.room.said
        assert len(reply) <= 120 and reply.startswith("blah") and "<think>" not in reply
    finally:
        await kit.stop()


async def test_database_down_means_no_reply(fake_ollama, caplog):
    from daz.db.pool import Database

    dead = Database("postgresql://root@127.0.0.1:9/none")  # never started: every call fails
    kit = await start(dead, fake_ollama.url)
    try:
        with caplog.at_level(logging.WARNING, logger="daz.plugins.ollama"):
            await chat(kit, "alice", "daz hello")
        # Go failed open and answered; without the claim two processes could both answer.
        assert kit.room.said == [] and fake_ollama.chat_requests() == []
        assert any("database unavailable" in r.getMessage() for r in caplog.records)
    finally:
        await kit.stop()
