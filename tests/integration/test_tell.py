"""tell against a real PostgreSQL, driven through the real plugin manager and bus.

Each test names the Go behaviour it guards against where there was one.
"""
from __future__ import annotations

import asyncio

from daz.clock import FakeClock
from daz.db.pool import Database
from daz.plugins.eventfilter import EventFilter
from daz.plugins.retry import Retry
from daz.plugins.tell import Tell, store
from tests.integration.room_feed import SayRecorder, joined, left
from tests.plugin_kit import Kit

FAST = {"join_delay_seconds": 0}


async def start(database, *, clock=None, plugins=None, extra=None, **cfg):
    kit = await Kit.start({"eventfilter": EventFilter, **(plugins or {}), "tell": Tell},
                          sections={"tell": {**FAST, **cfg}, **(extra or {})}, db=database,
                          clock=clock or FakeClock())
    return kit


async def pending(database):
    rows = await database.fetch("SELECT from_user, to_user, message, is_pm FROM daz_tell_messages"
                                " WHERE delivered = false ORDER BY id")
    return [tuple(r) for r in rows]


async def command(kit, user, text, *, pm=False, clock=None):
    """A command from ``user`` (present in the room when sent in chat); returns new replies."""
    said, pms = len(kit.room.said), len(kit.room.pms)
    if pm:
        await kit.pm(user, text)
    else:
        kit.user(user)
        await kit.chat(user, text)
    if clock is not None:
        clock.advance(5)  # past the command cooldown
    return kit.room.said[said:] + [t for _, t in kit.room.pms[pms:]]


async def test_tell_is_delivered_in_chat_when_the_recipient_joins(database):
    clock = FakeClock()
    kit = await start(database, clock=clock)
    # Go kept 9 words and ate apostrophes; the whole line survives here.
    replies = await command(kit, "alice", "!tell Bob don't forget the \"quotes\" and  spaces,"
                            " we meet at eight at the usual place tomorrow")
    assert replies[0].startswith("OK, I'll tell Bob in chat when they're next around (#")
    clock.advance(7200)
    await joined(kit, "bob")
    assert kit.room.said[-1] == ("bob: alice left you a message 2 hours ago: don't forget the"
                                 " \"quotes\" and spaces, we meet at eight at the usual place"
                                 " tomorrow")
    # Exactly once: more joins and lines from bob deliver nothing again.
    await left(kit, "bob")
    await joined(kit, "bob")
    await kit.chat("bob", "hi all")
    assert sum("left you a message" in s for s in kit.room.said) == 1
    row = await database.fetchrow("SELECT delivered, delivered_at, sent_at, claimed_by"
                                  " FROM daz_tell_messages")
    assert row["delivered"] and row["sent_at"] is not None and row["claimed_by"]
    await kit.stop()


async def test_a_tell_sent_by_pm_is_delivered_by_pm_when_they_speak(database):
    clock = FakeClock()
    kit = await start(database, clock=clock)
    rec = SayRecorder(kit.room)
    replies = await command(kit, "alice", "!tell @carol the secret is 42", pm=True, clock=clock)
    assert replies[0].startswith("OK, I'll tell carol by PM")
    assert kit.room.said == []
    kit.user("Carol")  # present but silent (bot started after she came): nothing yet
    await kit.chat("Carol", "anyone here?")
    assert kit.room.pms[-1] == ("Carol", "alice left you a message just now: the secret is 42")
    assert kit.room.said == []  # never in public chat
    assert all(flag for _, flag in rec.flags)
    # A chat tell is delivered when the recipient PMs the bot, in chat as chosen.
    await command(kit, "alice", "!tell dave public note", clock=clock)
    await kit.pm("dave", "hello bot")
    assert kit.room.said[-1] == "dave: alice left you a message just now: public note"
    await kit.stop()


async def test_names_are_case_insensitive_and_invalid_ones_get_a_clear_reply(database):
    clock = FakeClock()
    kit = await start(database, clock=clock)
    kit.user("Present")
    assert await command(kit, "alice", "!tell PRESENT hi", clock=clock) == [
        "Present is here right now, tell them yourself."]
    assert await command(kit, "alice", "!tell ALICE hi", clock=clock) == [
        "That's you. Consider it told."]
    assert await command(kit, "alice", "!tell DazBot hi", clock=clock) == [
        "I can't leave a message for myself."]
    assert await command(kit, "alice", "!tell bad/name hi", clock=clock) == [
        "\"bad/name\" isn't a CyTube username (1-20 letters, digits, - or _)."]
    assert (await command(kit, "alice", "!tell " + "x" * 21 + " hi", clock=clock))[0].endswith(
        "isn't a CyTube username (1-20 letters, digits, - or _).")
    assert await command(kit, "alice", "!tell bob", clock=clock) == [
        "Usage: !tell <user> <message>"]
    clock.advance(5)  # refusals are PMs, one per user per notice_interval (10 s)
    assert await command(kit, "alice", "!tell bob \x00\n", clock=clock) == [
        "Usage: !tell <user> <message>"]
    clock.advance(5)
    assert (await command(kit, "alice", "!tell", clock=clock))[0].startswith("Usage: !tell")
    await command(kit, "alice", "!tell BoB: mixed case", clock=clock)
    assert await pending(database) == [("alice", "BoB", "mixed case", False)]
    await joined(kit, "bob")
    assert kit.room.said[-1] == "bob: alice left you a message just now: mixed case"
    await kit.stop()


async def test_unknown_names_are_accepted_with_a_spelling_hint(database):
    kit = await start(database)
    await database.execute(
        "INSERT INTO daz_user_tracker_sessions (channel, username, rank, joined_at,"
        " last_activity, is_active, left_at) VALUES ('testchan', 'Bob', 1, now(), now(), false,"
        " now())")
    reply = (await command(kit, "alice", "!tell bob hi"))[0]
    assert "never seen" not in reply
    reply = (await command(kit, "carol", "!tell bobb hi"))[0]
    assert reply.endswith("(I've never seen bobb here, so check the spelling.)")
    await kit.stop()


async def test_message_length_is_capped_with_a_clear_reply(database):
    clock = FakeClock()
    kit = await start(database, clock=clock, max_message_length=50)
    replies = await command(kit, "alice", "!tell bob " + "y" * 600, clock=clock)
    assert replies == ["That message is 600 characters long; the limit is 50."]
    # A 100 kB line is not even a command (the eventfilter's line limit): nothing stored.
    assert await command(kit, "alice", "!tell bob " + "y" * 100_000, clock=clock) == []
    assert await pending(database) == []
    await kit.stop()


async def test_several_messages_per_recipient_up_to_the_caps(database):
    # Go allowed one pending message per recipient (a unique index) and refused the rest.
    clock = FakeClock()
    kit = await start(database, clock=clock, max_pending_per_recipient=3,
                      max_pending_per_sender=4)
    for n in range(3):
        assert (await command(kit, "alice", f"!tell bob msg{n}", clock=clock))[0].startswith(
            "OK")
    assert await command(kit, "carol", "!tell bob one more", clock=clock) == [
        "bob already has 3 messages waiting; try again once they've been by."]
    await command(kit, "alice", "!tell dave d1", clock=clock)
    assert await command(kit, "alice", "!tell erin e1", clock=clock) == [
        "You already have 4 messages waiting to be delivered; cancel one first (!tells to list"
        " them)."]
    await joined(kit, "bob")
    assert [s for s in kit.room.said if s.startswith("bob:")] == [
        f"bob: alice left you a message just now: msg{n}" for n in range(3)]
    # Delivered messages free the caps.
    assert (await command(kit, "alice", "!tell erin e1", clock=clock))[0].startswith("OK")
    await kit.stop()


async def test_concurrent_tells_cannot_exceed_a_cap(database):
    kit = await start(database, max_pending_per_recipient=2)
    for n in range(6):
        kit.user(f"s{n}")
    await asyncio.gather(*(kit.chat(f"s{n}", f"!tell bob from s{n}", settle=False)
                           for n in range(6)))
    await kit.settle()
    assert len(await pending(database)) == 2
    await kit.stop()


async def test_expired_messages_are_never_delivered_and_never_block(database):
    # Go delivered expired tells until the daily purge, and they blocked new ones.
    clock = FakeClock()
    kit = await start(database, clock=clock, expiry_days=7, max_pending_per_recipient=1)
    await command(kit, "alice", "!tell bob old news", clock=clock)
    clock.advance(8 * 86400)
    assert (await command(kit, "carol", "!tell bob fresh news", clock=clock))[0].startswith("OK")
    await joined(kit, "bob")
    assert [s for s in kit.room.said if s.startswith("bob:")] == [
        "bob: carol left you a message just now: fresh news"]
    assert await kit.plugin("tell").sweep_now() == (0, 1)  # the expired one is purged
    assert await database.fetchval("SELECT count(*) FROM daz_tell_messages") == 1
    await kit.stop()


async def test_sender_lists_and_cancels_pending_tells(database):
    clock = FakeClock()
    kit = await start(database, clock=clock)
    assert await command(kit, "alice", "!tells", clock=clock) == [
        "You have no messages waiting to be delivered."]
    await command(kit, "alice", "!tell bob first", clock=clock)
    await command(kit, "alice", "!tell bob second", clock=clock)
    await command(kit, "alice", "!tell carol " + "z" * 80, clock=clock)
    await command(kit, "mallory", "!tell bob not alice's", clock=clock)
    ids = [r["id"] for r in await database.fetch("SELECT id FROM daz_tell_messages ORDER BY id")]
    listing = await command(kit, "alice", "!tell list", clock=clock)
    assert listing == [
        "Your 3 message(s) waiting (cancel with !tell cancel <id|user>):",
        f"#{ids[0]} for bob, just now: first", f"#{ids[1]} for bob, just now: second",
        f"#{ids[2]} for carol, just now: " + "z" * 57 + "..."]
    assert all(to == "alice" for to, _ in kit.room.pms[-4:])  # by PM, even from chat
    # Cancel by id: only your own.
    assert await command(kit, "mallory", f"!tell cancel {ids[0]}", clock=clock) == [
        f"You have no undelivered message #{ids[0]}."]
    assert await command(kit, "alice", f"!tell cancel #{ids[0]}", clock=clock) == [
        f"Cancelled #{ids[0]} (for bob)."]
    assert await command(kit, "alice", "!tell cancel BOB", clock=clock) == [
        "Cancelled 1 message(s) for BOB."]
    assert await command(kit, "alice", "!tell cancel bob", clock=clock) == [
        "You have no undelivered messages for bob."]
    assert await command(kit, "alice", "!tell cancel 99999999999", clock=clock) == [
        "You have no undelivered message #99999999999."]
    assert await command(kit, "alice", "!tell cancel bad/name", clock=clock) == [
        "Usage: !tell cancel <id|user> (an id from !tells, or a username)"]
    assert await pending(database) == [("alice", "carol", "z" * 80, False),
                                       ("mallory", "bob", "not alice's", False)]
    clock.advance(60)
    await joined(kit, "bob")
    assert [s for s in kit.room.said if s.startswith("bob:")] == [
        "bob: mallory left you a message 1 minute ago: not alice's"]
    await kit.stop()


async def test_join_delay_waits_and_a_quick_leave_postpones(database):
    kit = await start(database, clock=FakeClock(), join_delay_seconds=0.2)
    await command(kit, "alice", "!tell bob hello")
    await joined(kit, "bob")
    await left(kit, "bob")
    await kit.plugin("tell").idle()
    assert not any(s.startswith("bob:") for s in kit.room.said)
    await joined(kit, "bob")
    await kit.plugin("tell").idle()
    assert kit.room.said[-1] == "bob: alice left you a message just now: hello"
    await kit.stop()


async def test_two_processes_deliver_each_message_exactly_once(database, migrated_dsn):
    clock = FakeClock()
    other_db = Database(migrated_dsn, min_size=1, max_size=5)
    await other_db.start()
    kit1 = await start(database, clock=clock)
    kit2 = await start(other_db, clock=clock)
    senders = [f"s{n}" for n in range(5)]
    for rounds in range(10):
        for n, sender in enumerate(senders):
            await database.execute(
                "INSERT INTO daz_tell_messages (channel, from_user, to_user, message, is_pm,"
                " created_at, expires_at) VALUES ('testchan', $1, $2, $3, $4,"
                " to_timestamp($5), to_timestamp($5 + 86400))", sender, f"r{rounds}",
                f"m{rounds}.{n}", n % 2 == 0, clock.time())
    # Every recipient joins, both processes see it at the same moment, and speaks at once too.
    for r in range(10):
        name = f"r{r}"
        await asyncio.gather(joined(kit1, name, settle=False), joined(kit2, name, settle=False),
                             kit1.chat(name, "hey", settle=False),
                             kit2.chat(name, "hey", settle=False))
    await asyncio.gather(kit1.settle(), kit2.settle())
    lines = [s for k in (kit1, kit2) for s in k.room.said if "left you a message" in s]
    lines += [t for k in (kit1, kit2) for _, t in k.room.pms if "left you a message" in t]
    texts = sorted(line.rsplit(": ", 1)[1] for line in lines)
    assert texts == sorted(f"m{r}.{n}" for r in range(10) for n in range(5))
    assert await database.fetchval(
        "SELECT count(*) FROM daz_tell_messages WHERE sent_at IS NULL") == 0
    await kit1.stop()
    await kit2.stop()
    await other_db.close()


async def test_a_claim_lost_in_a_crash_is_delivered_after_the_timeout(database):
    clock = FakeClock()
    kit = await start(database, clock=clock, claim_timeout_seconds=600)
    await command(kit, "alice", "!tell bob survive the crash")
    # Another process claimed it and died before sending.
    async with database.pool.acquire() as conn:
        assert len(await store.claim(conn, "testchan", "bob", clock.time(), "dead:1:x")) == 1
    await joined(kit, "bob")
    assert not any(s.startswith("bob:") for s in kit.room.said)
    clock.advance(300)
    assert await kit.plugin("tell").sweep_now() == (0, 0)  # not stale yet
    clock.advance(301)
    assert await kit.plugin("tell").sweep_now() == (1, 0)
    await kit.chat("bob", "back")
    assert [s for s in kit.room.said if s.startswith("bob:")] == [
        "bob: alice left you a message 10 minutes ago: survive the crash"]
    await kit.stop()


async def test_a_failed_delivery_record_is_retried(database):
    clock = FakeClock()
    kit = await start(database, clock=clock, plugins={"retry": Retry},
                      extra={"retry": {"initial_delay_seconds": 0, "first_poll_seconds": 3600}})
    await command(kit, "alice", "!tell bob noted")
    await database.execute(
        "CREATE FUNCTION refuse_sent() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN IF NEW.sent_at IS NOT NULL THEN RAISE EXCEPTION 'disk full (test)'; END IF;"
        " RETURN NEW; END$$")
    await database.execute("CREATE TRIGGER refuse BEFORE UPDATE ON daz_tell_messages"
                           " FOR EACH ROW EXECUTE FUNCTION refuse_sent()")
    await joined(kit, "bob")
    assert kit.room.said[-1] == "bob: alice left you a message just now: noted"
    assert await database.fetchval("SELECT sent_at FROM daz_tell_messages") is None
    await database.execute("DROP TRIGGER refuse ON daz_tell_messages")
    assert await kit.plugin("retry").poll() == 1
    assert await database.fetchval("SELECT sent_at FROM daz_tell_messages") is not None
    # Confirmed: a later sweep never hands it out again.
    clock.advance(3600)
    assert await kit.plugin("tell").sweep_now() == (0, 0)
    await kit.stop()


async def test_the_database_being_down_loses_nothing(database):
    kit = await start(database)
    await command(kit, "alice", "!tell bob later")
    await database.execute("ALTER TABLE daz_tell_messages RENAME TO tell_away")
    await joined(kit, "bob")  # lookup fails: logged, nothing claimed
    assert (await command(kit, "carol", "!tell zed x"))[0] == (
        "I couldn't save that message; please try again later.")
    await database.execute("ALTER TABLE tell_away RENAME TO daz_tell_messages")
    await kit.chat("bob", "still here")
    assert kit.room.said[-1] == "bob: alice left you a message just now: later"
    await kit.stop()


async def test_two_processes_store_one_public_tell_per_chat_line(database, migrated_dsn):
    # Two bot accounts in one channel both run a public !tell. The caps are 1 so that a loser
    # that counted its twin's fresh row would answer "already has 1 message" instead of nothing.
    clock = FakeClock()
    other_db = Database(migrated_dsn, min_size=1, max_size=5)
    await other_db.start()
    caps = {"max_pending_per_sender": 1, "max_pending_per_recipient": 1}
    kit1 = await start(database, clock=clock, **caps)
    kit2 = await start(other_db, clock=clock, **caps)
    lines = [(f"s{n}", f"!tell r{n} note {n}", 1_800_000_000_000 + n) for n in range(8)]
    for kit in (kit1, kit2):
        for sender, _, _ in lines:
            kit.user(sender)
    # The same line (same server time) reaches both processes at the same moment.
    await asyncio.gather(*(kit.chat(sender, text, settle=False, time=ms)
                           for sender, text, ms in lines for kit in (kit1, kit2)))
    await asyncio.gather(kit1.settle(), kit2.settle())
    replies = kit1.room.said + kit2.room.said
    assert len(replies) == len(lines)  # one answer per line in total, no cap refusals
    assert all(r.startswith("OK, I'll tell r") for r in replies), replies
    rows = await database.fetch("SELECT from_user, to_user, message, source_key"
                                " FROM daz_tell_messages ORDER BY from_user")
    assert [(r["from_user"], r["to_user"], r["message"]) for r in rows] == [
        (f"s{n}", f"r{n}", f"note {n}") for n in range(8)]
    assert len({r["source_key"] for r in rows}) == 8 and None not in {
        r["source_key"] for r in rows}
    # Each recipient shows up in front of both processes: one delivery each.
    await asyncio.gather(*(joined(kit, f"r{n}", settle=False)
                           for n in range(8) for kit in (kit1, kit2)))
    await asyncio.gather(kit1.settle(), kit2.settle())
    delivered = sorted(s for k in (kit1, kit2) for s in k.room.said if "left you a message" in s)
    assert delivered == sorted(f"r{n}: s{n} left you a message just now: note {n}"
                               for n in range(8))
    await kit1.stop()
    await kit2.stop()
    await other_db.close()


async def test_only_the_same_line_is_merged(database):
    clock = FakeClock()
    kit = await start(database, clock=clock)
    kit.user("alice")
    # The same line delivered twice (as a second process would see it): stored and answered once.
    for _ in range(2):
        await kit.chat("alice", "!tell bob same words", time=5_000)
        clock.advance(5)  # past the cooldown
    # The same words typed again later, or without a server time, are new tells.
    await kit.chat("alice", "!tell bob same words", time=6_000)
    clock.advance(5)
    await kit.chat("alice", "!tell bob same words", time=0)
    clock.advance(5)
    # A PM has a key too, and is never merged with a chat line of the same time and text.
    await kit.pm("alice", "!tell bob same words", time=5_000)
    clock.advance(5)
    await kit.pm("alice", "!tell bob same words", time=5_000)
    confirmations = [t for t in kit.room.said + [t for _, t in kit.room.pms]
                     if t.startswith("OK, I'll tell bob")]
    assert len(confirmations) == 4
    rows = await database.fetch("SELECT is_pm, source_key FROM daz_tell_messages ORDER BY id")
    assert [r["is_pm"] for r in rows] == [False, False, False, True]
    assert [r["source_key"] is None for r in rows] == [False, False, True, False]
    assert len({r["source_key"] for r in rows}) == 4
    await kit.stop()


def test_source_keys_tell_lines_apart():
    base = dict(sender="alice", text="!tell bob hi", server_ms=1000)
    key = store.source_key("chan", **base)
    assert key == store.source_key("chan", **{**base, "sender": "ALICE"})
    assert len(key) == 64
    others = [store.source_key("other", **base),
              store.source_key("chan", **{**base, "server_ms": 1001}),
              store.source_key("chan", **{**base, "sender": "carol"}),
              store.source_key("chan", **{**base, "text": "!tell bob hi!"}),
              store.source_key("chan", **base, pm_to="dazbot"),
              store.source_key("chan", **base, pm_to="dazbot2")]
    assert len({key, *others}) == 7
    assert store.source_key("chan", **{**base, "server_ms": 0}) is None
    assert store.source_key("chan", **{**base, "text": "bad \ud800 \x00"})  # hostile text hashes
