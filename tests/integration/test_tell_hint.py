"""tell's list of names that may have messages waiting, against a real PostgreSQL.

A chat line from someone with nothing waiting must cost no tell query; a message stored by
another daz process on the same database must still reach its recipient: at once on a join,
on a chat line after the next reload. Queries are counted by wrapping every function of the
tell store (the real functions still run against the database).
"""
from __future__ import annotations

import inspect
from collections import Counter

import pytest

from daz.clock import FakeClock
from daz.db.pool import Database
from daz.plugins.tell import store
from tests.integration.room_feed import joined, room_joined
from tests.integration.test_tell import command, start

HOUR = 3600  # a reload interval no test waits for, unless it means to


@pytest.fixture
def queries(monkeypatch) -> Counter:
    """Calls of each tell store query function (by name), from every Kit in the test."""
    counts: Counter = Counter()
    for name, fn in list(vars(store).items()):
        if inspect.iscoroutinefunction(fn):
            async def counted(*args, _fn=fn, _name=name, **kwargs):
                counts[_name] += 1
                return await _fn(*args, **kwargs)
            monkeypatch.setattr(store, name, counted)
    return counts


def deliveries(kit, name: str) -> list[str]:
    return [s for s in kit.room.said if s.startswith(f"{name}: ")]


async def insert_tell(database, to_user: str, message: str, clock) -> None:
    """A row as another process (or a Go Daz) would have stored it, behind this one's back."""
    await database.execute(
        "INSERT INTO daz_tell_messages (channel, from_user, to_user, message, is_pm, created_at,"
        " expires_at) VALUES ('testchan', 'elsewhere', $1, $2, false, to_timestamp($3),"
        " to_timestamp($3 + 86400))", to_user, message, clock.time())


async def test_chat_from_speakers_with_nothing_waiting_makes_no_tell_query(database, queries):
    clock = FakeClock()
    kit = await start(database, clock=clock, recipient_refresh_seconds=HOUR)
    await command(kit, "alice", "!tell Bob see you", clock=clock)
    queries.clear()
    for n in range(20):
        await kit.chat(f"user{n}", f"line {n}")
    await kit.pm("carol", "hello bot")
    await kit.chat("alice", "and the sender too")
    assert queries == Counter()
    # Someone with a message waiting is looked up, gets it, and is not looked up again.
    await kit.chat("BOB", "hi")
    assert deliveries(kit, "BOB") == ["BOB: alice left you a message just now: see you"]
    assert queries["claim"] == 1
    await kit.chat("bob", "again")
    await kit.pm("bob", "and by PM")
    assert queries["claim"] == 1
    # A join is always looked up, list or no list.
    await joined(kit, "zed")
    assert queries["claim"] == 2
    await kit.stop()


async def test_a_tell_from_another_process_arrives_on_join_at_once_and_on_chat_after_a_reload(
        database, migrated_dsn, queries):
    clock = FakeClock()
    other_db = Database(migrated_dsn, min_size=1, max_size=3)
    await other_db.start()
    here = await start(database, clock=clock, recipient_refresh_seconds=HOUR)
    there = await start(other_db, clock=clock, recipient_refresh_seconds=HOUR)
    await command(there, "alice", "!tell carol from the other bot", clock=clock)
    await command(there, "alice", "!tell bob also from the other bot", clock=clock)
    await command(there, "alice", "!tell dave a third one", clock=clock)
    await joined(here, "carol")
    assert deliveries(here, "carol") == [
        "carol: alice left you a message just now: from the other bot"]
    # Before a reload this process does not know about bob's message, and does not ask (that
    # is the whole point); the other process, which stored it, would deliver it at once.
    claims = queries["claim"]
    await here.chat("bob", "anything for me?")
    assert deliveries(here, "bob") == [] and queries["claim"] == claims
    assert await here.plugin("tell").refresh_hints()
    await here.chat("bob", "and now?")
    assert deliveries(here, "bob") == [
        "bob: alice left you a message just now: also from the other bot"]
    # Joining the room (again, after a reconnect) reloads too.
    await insert_tell(database, "erin", "stored behind our back", clock)
    await room_joined(here, reconnect=True)
    await here.chat("erin", "hello")
    assert deliveries(here, "erin") == ["erin: elsewhere left you a message just now: stored"
                                        " behind our back"]
    assert await database.fetchval(
        "SELECT count(*) FROM daz_tell_messages WHERE sent_at IS NULL") == 1  # dave's, unsent
    for kit in (here, there):
        await kit.stop()
    await other_db.close()


async def test_the_periodic_reload_picks_up_another_process_s_tell(database, migrated_dsn):
    clock = FakeClock()
    other_db = Database(migrated_dsn, min_size=1, max_size=3)
    await other_db.start()
    here = await start(database, clock=clock, recipient_refresh_seconds=50)
    there = await start(other_db, clock=clock, recipient_refresh_seconds=HOUR)
    await command(there, "alice", "!tell bob via the timer", clock=clock)  # 5 s pass
    await clock.run(40)
    await here.chat("bob", "still waiting")
    assert deliveries(here, "bob") == []  # not known here before the reload
    await clock.run(5)  # 50 s: the reload timer runs (in virtual time)
    await here.chat("bob", "now")
    assert deliveries(here, "bob") == ["bob: alice left you a message just now: via the timer"]
    await here.chat("bob", "once more")
    assert len(deliveries(here, "bob")) == 1
    for kit in (here, there):
        await kit.stop()
    await other_db.close()


async def test_without_the_list_every_speaker_is_looked_up(database, queries):
    # The database is away when the list is reloaded: nothing may be skipped because of that.
    clock = FakeClock()
    kit = await start(database, clock=clock, recipient_refresh_seconds=HOUR)
    tell = kit.plugin("tell")
    await database.execute("ALTER TABLE daz_tell_messages RENAME TO tell_away")
    assert not await tell.refresh_hints()
    await database.execute("ALTER TABLE tell_away RENAME TO daz_tell_messages")
    await insert_tell(database, "bob", "written while we were blind", clock)
    queries.clear()
    await kit.chat("carol", "nothing for me")
    await kit.chat("bob", "something for me?")
    assert queries["claim"] == 2
    assert deliveries(kit, "bob") == [
        "bob: elsewhere left you a message just now: written while we were blind"]
    # Once it loads again, speakers with nothing waiting cost nothing again.
    assert await tell.refresh_hints()
    queries.clear()
    await kit.chat("carol", "quiet again")
    assert queries == Counter()
    await kit.stop()


async def test_a_message_given_back_after_a_failed_send_is_asked_for_again(database, queries):
    clock = FakeClock()
    kit = await start(database, clock=clock, recipient_refresh_seconds=HOUR)
    await command(kit, "alice", "!tell bob first try fails", clock=clock)
    say = kit.room.say

    async def broken_say(text, *, user_input=True):
        raise ConnectionError("outbox gone (test)")

    kit.room.say = broken_say
    await kit.chat("bob", "hi")  # claimed, not sent, released
    kit.room.say = say
    assert await database.fetchval("SELECT delivered FROM daz_tell_messages") is False
    await kit.chat("bob", "hi again")
    assert deliveries(kit, "bob") == ["bob: alice left you a message just now: first try fails"]
    await kit.stop()
