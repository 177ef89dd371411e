"""ollama: rate limits, one answer across two processes, ollama.generate, retries, back-pressure."""
import asyncio
import logging

import pytest

from daz.bus import NoResponder
from daz.plugins.ollama.client import OllamaFailure
from tests.integration.ollama_helpers import (
    chat,
    chat_event,
    done,
    start,
)


async def rewind(database, username, hours=2):
    await database.execute(
        "UPDATE daz_ollama_rate_limits SET last_response_at = last_response_at"
        " - make_interval(hours => $2) WHERE username = $1", username, hours)


async def test_per_user_rate_limit(database, fake_ollama, caplog):
    kit = await start(database, fake_ollama.url, rate_limit_seconds=3600)
    try:
        await chat(kit, "alice", "daz hi")
        with caplog.at_level(logging.INFO, logger="daz.plugins.ollama"):
            await chat(kit, "alice", "daz again")
        assert len(kit.room.said) == 1
        assert any("alice" in r.getMessage() and "user rate limit" in r.getMessage()
                   for r in caplog.records)
        await chat(kit, "bob", "daz hi")  # someone else is not limited by alice
        assert len(kit.room.said) == 2
        await rewind(database, "alice")
        await chat(kit, "alice", "daz third time")
        assert len(kit.room.said) == 3
        assert len(fake_ollama.chat_requests()) == 3  # the limited line never reached the model
    finally:
        await kit.stop()


async def test_per_channel_rate_limit_does_not_use_up_the_users_window(database, fake_ollama,
                                                                       caplog):
    kit = await start(database, fake_ollama.url, rate_limit_seconds=3600,
                      channel_rate_limit_seconds=3600)
    try:
        await chat(kit, "alice", "daz hi")
        with caplog.at_level(logging.INFO, logger="daz.plugins.ollama"):
            await chat(kit, "bob", "daz hi")
        assert len(kit.room.said) == 1
        assert any("bob" in r.getMessage() and "channel rate limit" in r.getMessage()
                   for r in caplog.records)
        assert await database.fetchval(
            "SELECT count(*) FROM daz_ollama_rate_limits WHERE username = 'bob'") == 0
        await rewind(database, "*channel*")
        await chat(kit, "bob", "daz now?")
        assert len(kit.room.said) == 2
    finally:
        await kit.stop()


async def test_rate_limit_notice_is_sent_once_by_pm(database, fake_ollama):
    kit = await start(database, fake_ollama.url, rate_limit_seconds=3600,
                      rate_limit_notice="one at a time, mate")
    try:
        for text in ("daz one", "daz two", "daz three", "daz four"):
            await chat(kit, "alice", text)
        assert kit.room.said == ["g'day mate"]
        assert kit.room.pms == [("alice", "one at a time, mate")]
    finally:
        await kit.stop()


async def test_two_processes_on_one_database_answer_each_line_once(migrated_dsn, fake_ollama):
    from daz.db.pool import Database

    fake_ollama.reply = lambda body: "re " + body["messages"][-1]["content"].split(":")[0]
    dbs = [Database(migrated_dsn, min_size=1, max_size=5) for _ in range(2)]
    for db in dbs:
        await db.start()
    kits = [await start(db, fake_ollama.url) for db in dbs]
    try:
        users = [f"user{i}" for i in range(15)]
        for user in users:
            first = chat_event(kits[0], user, f"daz {user} here")
            twin = chat_event(kits[1], user, f"daz {user} here", time_ms=first.time)
            await asyncio.gather(kits[0].bus.publish(first), kits[1].bus.publish(twin))
            await asyncio.gather(*(done(k) for k in kits))  # both race for this one line
        said = kits[0].room.said + kits[1].room.said
        # Go checked "answered?" and inserted after generating: both processes answered.
        assert sorted(said) == sorted(f"re {u}" for u in users)
        assert len(fake_ollama.chat_requests()) == len(users)
        assert sum(k.plugin("ollama").stats["duplicates"] for k in kits) == len(users)
        # And the rate limit is one decision across both: two lines of one user, one reply.
        for kit in kits:
            kit.plugin("ollama").config.rate_limit_seconds = 3600
        a = chat_event(kits[0], "zoe", "daz first")
        b = chat_event(kits[1], "zoe", "daz second")
        await asyncio.gather(kits[0].bus.publish(a), kits[1].bus.publish(b))
        await asyncio.gather(*(done(k) for k in kits))
        assert len(kits[0].room.said) + len(kits[1].room.said) == len(users) + 1
    finally:
        for kit in kits:
            await kit.stop()
        for db in dbs:
            await db.close()


async def test_generate_for_other_plugins(database, fake_ollama):
    fake_ollama.reply = "welcome back alice, " + "lovely to see you " * 20
    kit = await start(database, fake_ollama.url, rate_limit_seconds=3600)
    try:
        payload = {"purpose": "greeting", "prompt": "Greet alice who just came back.",
                   "channel": "testchan", "username": "alice", "max_chars": 60}
        text = await kit.bus.request("ollama.generate", payload, timeout=5)
        again = await kit.bus.request("ollama.generate", payload, timeout=5)  # no rate limit
        assert text == again and text.startswith("welcome back alice") and len(text) <= 60
        body = fake_ollama.chat_requests()[0]
        assert "testchan" in body["messages"][0]["content"]
        assert body["messages"][-1] == {"role": "user",
                                        "content": "Greet alice who just came back."}
        with pytest.raises(ValueError):
            await kit.bus.request("ollama.generate", {"purpose": "greeting"}, timeout=5)
        with pytest.raises(ValueError):
            await kit.bus.request("ollama.generate", "hi", timeout=5)
        fake_ollama.mode = "garbage"
        with pytest.raises(OllamaFailure):
            await kit.bus.request("ollama.generate", payload, timeout=5)
        assert kit.room.said == []  # a generate request never talks in chat itself
    finally:
        await kit.stop()
    with pytest.raises(NoResponder):
        await kit.bus.request("ollama.generate", payload, timeout=5)


async def test_generate_gives_up_with_its_caller(database, fake_ollama):
    fake_ollama.mode = "hang"
    kit = await start(database, fake_ollama.url, timeout=30)
    plugin = kit.plugin("ollama")
    try:
        with pytest.raises(asyncio.TimeoutError):
            await kit.bus.request("ollama.generate", {"prompt": "hello"}, timeout=0.2)
        # Go kept generating for up to 30 s after its caller had given up.
        assert plugin._generate_slots._value == plugin.config.generate_concurrency
        assert plugin.stats["generated"] == 0
    finally:
        fake_ollama.release()
        await kit.stop()


async def test_failed_reply_write_goes_to_the_retry_queue(database, fake_ollama):
    kit = await start(database, fake_ollama.url)
    plugin = kit.plugin("ollama")
    queued = []

    async def enqueue(request):
        queued.append(request)
        return 1

    kit.bus.respond("retry.enqueue", enqueue, owner="test")
    real_record = plugin.store.record_reply

    async def broken(*args, **kwargs):
        raise ConnectionError("connection reset")

    plugin.store.record_reply = broken
    try:
        await chat(kit, "alice", "daz hi")
        assert kit.room.said == ["g'day mate"]  # the reply went out regardless
        [request] = queued
        assert request["plugin"] == "ollama" and request["operation"] == "record_reply"
        assert "connection reset" in request["error"]
        plugin.store.record_reply = real_record
        for _ in range(2):  # at-least-once delivery: running it twice is harmless
            await kit.bus.request("retry.run.ollama", {"operation": request["operation"],
                                                       "payload": request["payload"]})
        stored = await database.fetch("SELECT response_text FROM daz_ollama_responses")
        assert [r["response_text"] for r in stored] == ["g'day mate"]
    finally:
        await kit.stop()


async def test_back_pressure_per_room(database, fake_ollama, caplog):
    fake_ollama.mode = "hang"
    kit = await start(database, fake_ollama.url, timeout=30, max_pending_per_room=1)
    try:
        await kit.bus.publish(chat_event(kit, "alice", "daz one"))
        await asyncio.wait_for(fake_ollama.started_requests.wait(), 5)
        with caplog.at_level(logging.WARNING, logger="daz.plugins.ollama"):
            await kit.bus.publish(chat_event(kit, "bob", "daz two"))
            await kit.settle()
        assert kit.plugin("ollama").stats["busy"] == 1
        assert any("already waiting" in r.getMessage() for r in caplog.records)
        fake_ollama.release()
        await done(kit)
        assert kit.room.said == [] and len(fake_ollama.chat_requests()) == 1
    finally:
        await kit.stop()


async def test_a_user_named_like_the_bot_is_still_answered(database, fake_ollama):
    # Go ignored users whose names were "mutations" of the bot's (dazz, daza, gaz).
    kit = await start(database, fake_ollama.url)
    try:
        await chat(kit, "dazz", "daz what's up")
        assert kit.room.said == ["g'day mate"]
    finally:
        await kit.stop()


async def test_the_same_line_delivered_twice_is_answered_once(database, fake_ollama):
    kit = await start(database, fake_ollama.url)
    try:
        line = chat_event(kit, "alice", "daz hi")
        for _ in range(2):
            await kit.bus.publish(line)
            await done(kit)
        assert kit.room.said == ["g'day mate"]
    finally:
        await kit.stop()


async def test_hourly_cleanup_drops_old_rows_only(database, fake_ollama):
    kit = await start(database, fake_ollama.url, rate_limit_seconds=1,
                      channel_rate_limit_seconds=1)
    try:
        await chat(kit, "alice", "daz hi")
        await rewind(database, "*channel*")
        await chat(kit, "bob", "daz hi")
        await database.execute(
            "UPDATE daz_ollama_responses SET responded_at = responded_at - interval '25 hours'"
            " WHERE username = 'alice'")
        await rewind(database, "alice")
        await kit.plugin("ollama").cleanup()
        left = await database.fetch("SELECT username FROM daz_ollama_responses")
        assert [r["username"] for r in left] == ["bob"]
        limits = await database.fetch("SELECT username FROM daz_ollama_rate_limits"
                                      " ORDER BY username")
        assert [r["username"] for r in limits] == ["*channel*", "bob"]
    finally:
        await kit.stop()


async def test_chat_replies_off_keeps_generate_working(database, fake_ollama):
    kit = await start(database, fake_ollama.url, chat_replies=False)
    try:
        await chat(kit, "alice", "daz hi")
        assert kit.room.said == [] and fake_ollama.chat_requests() == []
        assert await kit.bus.request("ollama.generate", {"prompt": "say hi"}, timeout=5) == \
            "g'day mate"
    finally:
        await kit.stop()
