"""greeter against a real PostgreSQL, driven through the real plugin manager and bus.

Each test names the Go behaviour it guards against where there was one.
"""
from __future__ import annotations

import asyncio

import pytest

from daz.clock import FakeClock
from daz.plugins.eventfilter import EventFilter
from daz.plugins.greeter import Greeter
from daz.plugins.retry import Retry
from daz.plugins.usertracker import UserTracker
from tests.integration.room_feed import (
    SayRecorder,
    disconnected,
    joined,
    left,
    room_joined,
    userlist,
)
from tests.plugin_kit import Kit

QUIET = {"delay_min_seconds": 0, "delay_max_seconds": 0, "skip_probability": 0,
         "use_greeting_engine": False}


@pytest.fixture
def greetings_file(tmp_path):
    path = tmp_path / "greetings.txt"
    path.write_text("# test greetings\n"
                    "general: HELLO {user} in {channel}\n"
                    "first: FIRST {user}\n", encoding="utf-8")
    return str(path)


async def start(database, greetings_file, *, clock=None, extra=None, admins=(), plugins=None,
                **cfg):
    section = {**QUIET, "greetings_file": greetings_file, **cfg}
    classes = {"eventfilter": EventFilter, **(plugins or {}), "greeter": Greeter}
    kit = await Kit.start(classes, sections={"greeter": section, **(extra or {})}, db=database,
                          clock=clock, admins=list(admins))
    return kit


async def settle(kit):
    await kit.settle()
    await kit.plugin("greeter").idle()
    await kit.settle()


async def history(database, name=None):
    sql = ("SELECT username, greeting_type, greeting_text, greeting_metadata"
           " FROM daz_greeter_history")
    rows = await (database.fetch(sql + " WHERE lower(username) = lower($1) ORDER BY id", name)
                  if name else database.fetch(sql + " ORDER BY id"))
    return [dict(r) for r in rows]


async def arrive(kit, name):
    await joined(kit, name)
    await settle(kit)


async def test_a_real_arrival_is_greeted_once_and_counted_once(database, greetings_file):
    kit = await start(database, greetings_file)
    await room_joined(kit)
    await arrive(kit, "alice")
    assert kit.room.said == ["FIRST alice"]
    rows = await history(database)
    assert [(r["username"], r["greeting_type"], r["greeting_text"]) for r in rows] == [
        ("alice", "first_time", "FIRST alice")]
    assert rows[0]["greeting_metadata"]["source"] == "file"
    # The Go bot's total_greetings_sent went up by two per greeting.
    state = await database.fetchrow("SELECT * FROM daz_greeter_state WHERE channel = 'testchan'")
    assert state["total_greetings_sent"] == 1
    assert state["last_greeting_user"] == "alice"
    await kit.stop()


async def test_the_join_burst_userlist_and_the_bot_itself_are_never_greeted(database,
                                                                             greetings_file):
    kit = await start(database, greetings_file)
    # The join burst: user list and any addUser before RoomJoined.
    await userlist(kit, "alice", "bob", "dazbot")
    await joined(kit, "carol")
    await room_joined(kit)
    # Our own addUser can arrive after the burst (it follows the login reply), in any case.
    await joined(kit, "dazbot")
    await joined(kit, "DAZBOT")
    # A later user list (our rank crossed 2) is not a wave of arrivals either.
    await userlist(kit, "alice", "bob", "carol", "dazbot", "erin")
    await settle(kit)
    assert kit.room.said == []
    assert await history(database) == []
    await kit.stop()


async def test_a_flap_within_the_rejoin_window_is_not_greeted(database, greetings_file):
    clock = FakeClock()
    kit = await start(database, greetings_file, clock=clock, cooldown_minutes=0,
                      channel_cooldown_seconds=0, rejoin_window_minutes=5)
    await room_joined(kit)
    await arrive(kit, "alice")
    assert len(kit.room.said) == 1
    await left(kit, "alice")
    clock.advance(60)
    await arrive(kit, "alice")  # back after a minute: a flap
    assert len(kit.room.said) == 1
    # Someone present when we joined who steps out briefly is no arrival either.
    await userlist(kit, "alice", "bob")
    await left(kit, "bob")
    clock.advance(30)
    await arrive(kit, "bob")
    assert len(kit.room.said) == 1
    await left(kit, "alice")
    clock.advance(301)
    await arrive(kit, "alice")  # a real return, outside the window (no cooldown configured)
    assert kit.room.said == ["FIRST alice", "HELLO alice in testchan"]
    await kit.stop()


async def test_nobody_is_regreeted_after_our_own_reconnect(database, greetings_file):
    clock = FakeClock()
    kit = await start(database, greetings_file, clock=clock, cooldown_minutes=0,
                      channel_cooldown_seconds=0, reconnect_grace_seconds=20,
                      rejoin_window_minutes=5)
    await userlist(kit, "alice", "bob")
    await room_joined(kit)
    await disconnected(kit)
    clock.advance(10)
    # The server restarted: we are back first, the others reconnect one by one.
    await userlist(kit, "dazbot")
    await room_joined(kit, reconnect=True)
    await arrive(kit, "alice")  # inside the grace period
    clock.advance(60)
    await arrive(kit, "bob")  # after the grace, but bob was here before we dropped
    assert kit.room.said == []
    await arrive(kit, "newbie")  # a real newcomer after the grace is greeted
    assert kit.room.said == ["FIRST newbie"]
    await kit.stop()


async def test_first_time_greeting_fires_even_with_the_usertracker_racing(database,
                                                                        greetings_file):
    kit = await start(database, greetings_file, plugins={"usertracker": UserTracker},
                      channel_cooldown_seconds=0)
    # A regular who was never greeted (Go era), last here a week ago.
    await database.execute(
        "INSERT INTO daz_user_tracker_sessions (channel, username, rank, joined_at, left_at,"
        " last_activity, is_active) VALUES ('testchan', 'Regular', 1,"
        " now() - interval '7 days', now() - interval '7 days' + interval '1 hour',"
        " now() - interval '7 days' + interval '1 hour', false)")
    await room_joined(kit)
    await arrive(kit, "newcomer")
    await arrive(kit, "regular")
    assert kit.room.said == ["FIRST newcomer", "HELLO regular in testchan"]
    # The usertracker did write the newcomer's session (the race Go lost), yet it was a first.
    assert await database.fetchval(
        "SELECT count(*) FROM daz_user_tracker_sessions WHERE username = 'newcomer'") == 1
    assert [r["greeting_type"] for r in await history(database)] == ["first_time", "standard"]
    await kit.stop()


async def test_opt_out_is_respected_case_insensitively_and_can_be_undone(database,
                                                                       greetings_file):
    clock = FakeClock()
    kit = await start(database, greetings_file, clock=clock, cooldown_minutes=0,
                      channel_cooldown_seconds=0, rejoin_window_minutes=0, admins=["boss"])
    await room_joined(kit)
    kit.user("Alice")
    await kit.chat("Alice", "!greeter off")
    assert "no more greetings" in kit.room.said[-1]
    said = len(kit.room.said)
    await arrive(kit, "ALICE")
    assert len(kit.room.said) == said
    # An admin's test greeting does not override it either (Go's !greeter test did).
    kit.user("boss", rank=1)  # admins count logged in with an account
    await kit.chat("boss", "!greeter test alice")
    assert kit.room.said[-1] == "ALICE has opted out of greetings."
    clock.advance(10)
    await kit.chat("alice", "!greeter on")
    await left(kit, "ALICE")
    await arrive(kit, "Alice")
    assert kit.room.said[-1] == "FIRST Alice"
    rows = await database.fetch("SELECT username, opted_out FROM daz_greeter_preferences")
    assert [(r["username"], r["opted_out"]) for r in rows] == [("Alice", False)]
    await kit.stop()


async def test_opting_out_cancels_a_greeting_already_scheduled(database, greetings_file):
    kit = await start(database, greetings_file, delay_min_seconds=0.3, delay_max_seconds=0.3)
    await room_joined(kit)
    await joined(kit, "alice")
    await kit.chat("alice", "!greeter off")
    await settle(kit)
    assert kit.room.said == ["OK alice, no more greetings for you in this channel"
                             " (!greeter on to undo)."]
    await kit.stop()


async def test_leaving_before_the_delay_ends_cancels_the_greeting(database, greetings_file):
    kit = await start(database, greetings_file, delay_min_seconds=0.3, delay_max_seconds=0.3)
    await room_joined(kit)
    await joined(kit, "alice")
    await left(kit, "alice")
    await settle(kit)
    assert kit.room.said == []
    assert await history(database) == []
    await kit.stop()


async def test_cooldowns_survive_a_restart(database, greetings_file):
    clock = FakeClock()
    cfg = dict(cooldown_minutes=60, channel_cooldown_seconds=120, rejoin_window_minutes=1)
    kit = await start(database, greetings_file, clock=clock, **cfg)
    await room_joined(kit)
    await arrive(kit, "alice")
    assert kit.room.said == ["FIRST alice"]
    await kit.stop()

    clock.advance(30)
    kit = await start(database, greetings_file, clock=clock, **cfg)  # a new process
    await room_joined(kit)
    await arrive(kit, "bob")  # channel cooldown (from daz_greeter_state) still running
    assert kit.room.said == []
    clock.advance(300)
    await arrive(kit, "ALICE")  # the per-user cooldown (from history, any case) still running
    assert kit.room.said == []
    await arrive(kit, "carol")
    assert kit.room.said == ["FIRST carol"]
    await kit.stop()

    clock.advance(3600)
    kit = await start(database, greetings_file, clock=clock, **cfg)
    await room_joined(kit)
    await arrive(kit, "alice")  # an hour later: greeted again, and not as a first-timer
    assert kit.room.said == ["HELLO alice in testchan"]
    await kit.stop()
    assert await database.fetchval(
        "SELECT total_greetings_sent FROM daz_greeter_state WHERE channel = 'testchan'") == 3


async def test_the_channel_cooldown_drops_a_burst_of_arrivals(database, greetings_file):
    kit = await start(database, greetings_file, channel_cooldown_seconds=300)
    await room_joined(kit)
    for name in ("a1", "a2", "a3", "a4", "a5"):
        await joined(kit, name, settle=False)
    await settle(kit)
    assert len(kit.room.said) == 1  # Go queued them all and spoke for up to 15 minutes
    await kit.stop()


async def test_the_skip_chance_is_drawn_per_join(database, greetings_file):
    kit = await start(database, greetings_file, channel_cooldown_seconds=0, skip_probability=1)
    await room_joined(kit)
    for n in range(5):
        await arrive(kit, f"u{n}")
    assert kit.room.said == []
    await kit.stop()
    kit = await start(database, greetings_file, channel_cooldown_seconds=0,
                      skip_probability=0.5)
    kit.plugin("greeter").random.seed(7)
    await room_joined(kit)
    for n in range(40):
        await arrive(kit, f"v{n}")
    assert 8 <= len(kit.room.said) <= 32  # neither all nor none: a fresh draw each time
    await kit.stop()


async def test_two_processes_on_one_database_greet_once(database, greetings_file):
    kits = [await start(database, greetings_file) for _ in range(2)]
    for kit in kits:
        await room_joined(kit)
    await asyncio.gather(*(joined(kit, "alice", settle=False) for kit in kits))
    for kit in kits:
        await settle(kit)
    assert sum(len(kit.room.said) for kit in kits) == 1
    assert len(await history(database)) == 1
    for kit in kits:
        await kit.stop()


async def test_greeter_test_is_for_admins_and_bypasses_cooldowns(database, greetings_file):
    kit = await start(database, greetings_file, admins=["boss"], channel_cooldown_seconds=600)
    await room_joined(kit)
    await arrive(kit, "alice")
    kit.user("pleb")
    kit.user("boss", rank=1)  # admins count logged in with an account
    await kit.chat("pleb", "!greeter test alice")
    assert kit.room.pms[-1] == ("pleb", "!greeter test is for bot admins only.")
    await kit.chat("boss", "!greeter test @alice")
    assert kit.room.said[-1] == "HELLO alice in testchan"
    await kit.chat("boss", "!greeter test ghost")
    assert kit.room.said[-1] == "ghost isn't here."
    await kit.chat("boss", "!greeter test dazbot")
    assert kit.room.said[-1] == "I'm not going to greet myself."
    await kit.chat("boss", "!greeter test no/such")
    assert "doesn't look like a CyTube username" in kit.room.said[-1]
    kit.user("other")
    await kit.chat("other", "!greeter")
    assert kit.room.pms[-1][0] == "other" and kit.room.pms[-1][1].startswith("Usage:")
    assert [r["greeting_type"] for r in await history(database)] == ["first_time", "test"]
    await kit.stop()


async def test_hostile_names_are_inserted_as_plain_text(database, greetings_file):
    kit = await start(database, greetings_file, channel_cooldown_seconds=0)
    rec = SayRecorder(kit.room)
    await room_joined(kit)
    for name in ("{channel}", "<user>", "/kick bob", "a\x00b\ncd\u202e", "x" * 100_000):
        await arrive(kit, name)
    # Names are text, not templates; a NUL/newline or 100 kB name (no server sends one) is
    # ignored with a log line, and nothing breaks.
    assert kit.room.said == ["FIRST {channel}", "FIRST <user>", "FIRST /kick bob"]
    assert all(flag for _, flag in rec.flags)  # the outbox neutralises a leading "/"
    await kit.stop()


async def test_failed_history_write_goes_through_the_retry_queue_once(database,
                                                                     greetings_file):
    kit = await start(database, greetings_file, plugins={"retry": Retry},
                      extra={"retry": {"initial_delay_seconds": 0, "first_poll_seconds": 3600}})
    await database.execute(
        "CREATE FUNCTION refuse_insert() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN RAISE EXCEPTION 'disk full (test)'; END$$")
    await database.execute("CREATE TRIGGER refuse BEFORE INSERT ON daz_greeter_history"
                           " FOR EACH ROW EXECUTE FUNCTION refuse_insert()")
    await room_joined(kit)
    await arrive(kit, "alice")
    assert kit.room.said == ["FIRST alice"]  # the greeting itself went out
    assert await history(database) == []
    queued = await database.fetch("SELECT plugin_name, operation_type, correlation_id"
                                  " FROM daz_retry_queue")
    assert [(r["plugin_name"], r["operation_type"]) for r in queued] == [
        ("greeter", "record_greeting")]
    await database.execute("DROP TRIGGER refuse ON daz_greeter_history")
    assert await kit.plugin("retry").poll() == 1
    rows = await history(database)
    assert [(r["username"], r["greeting_text"]) for r in rows] == [("alice", "FIRST alice")]
    # At-least-once retries cannot record it twice: the greeting_id makes the write idempotent.
    payload = (await database.fetchval("SELECT event_data FROM daz_retry_queue"))
    await kit.plugin("greeter").retry_operation("record_greeting", payload)
    assert len(await history(database)) == 1
    await kit.stop()


class FakeModel:
    """A stand-in for the ollama plugin's bus responder."""

    def __init__(self, kit, behaviour):
        self.requests = []
        self.behaviour = behaviour
        kit.bus.respond("ollama.generate", self.generate, owner="test")

    async def generate(self, payload):
        self.requests.append(payload)
        return await self.behaviour(payload)


async def _slow(payload):
    await asyncio.sleep(5)
    return "too late"


async def _broken(payload):
    raise ConnectionError("ollama server unreachable")


async def _garbage(payload):
    return {"not": "text"}


async def _chatty(payload):
    return '\n  "/me waves at ' + payload["username"] + ' and says hi"  \nsecond line'


async def test_model_text_is_used_and_cleaned(database, greetings_file):
    kit = await start(database, greetings_file, use_greeting_engine=True,
                      channel_cooldown_seconds=0)
    model = FakeModel(kit, _chatty)
    await room_joined(kit)
    await arrive(kit, "alice")
    assert kit.room.said == ["me waves at alice and says hi"]
    request = model.requests[0]
    assert request["purpose"] == "greeting" and request["username"] == "alice"
    assert request["channel"] == "testchan" and request["max_chars"] == 200
    assert "first visit" in request["prompt"]
    assert (await history(database))[0]["greeting_metadata"]["source"] == "ollama"
    await kit.stop()


@pytest.mark.parametrize("behaviour", [_slow, _broken, _garbage, None],
                         ids=["timeout", "error", "garbage", "no-responder"])
async def test_model_failure_falls_back_to_the_file(database, greetings_file, behaviour):
    kit = await start(database, greetings_file, use_greeting_engine=True,
                      ollama_timeout_seconds=0.2)
    if behaviour is not None:
        FakeModel(kit, behaviour)
    await room_joined(kit)
    await arrive(kit, "alice")
    assert kit.room.said == ["FIRST alice"]
    assert (await history(database))[0]["greeting_metadata"]["source"] == "file"
    await kit.stop()


async def test_a_missing_greetings_file_falls_back_to_the_packaged_one(database, tmp_path):
    kit = await start(database, str(tmp_path / "nope.txt"))
    await room_joined(kit)
    await arrive(kit, "alice")
    assert len(kit.room.said) == 1 and "alice" in kit.room.said[0]
    await kit.stop()


async def test_presence_is_the_live_user_list_not_the_session_table(database, greetings_file):
    # Go asked daz_user_tracker_sessions whether the user was "still present"; idle users had
    # been marked inactive there and were never greeted.
    kit = await start(database, greetings_file, delay_min_seconds=0.2, delay_max_seconds=0.2)
    await room_joined(kit)
    await joined(kit, "lurker")
    await database.execute(
        "INSERT INTO daz_user_tracker_sessions (channel, username, rank, joined_at,"
        " last_activity, is_active) VALUES ('testchan', 'lurker', 1, now(), now(), false)")
    await settle(kit)
    assert kit.room.said == ["FIRST lurker"]
    await kit.stop()


async def test_greeter_test_with_preferences_unreadable_says_so_without_the_error(
        database, greetings_file, caplog):
    kit = await start(database, greetings_file, admins=["boss"], channel_cooldown_seconds=0)
    await room_joined(kit)
    await arrive(kit, "alice")
    kit.user("boss", rank=1)  # admins count logged in with an account
    await database.execute("ALTER TABLE daz_greeter_preferences RENAME TO prefs_away")
    said = len(kit.room.said)
    await kit.chat("boss", "!greeter test alice")
    assert kit.room.said[said:] == [
        "I can't check alice's preferences right now; try again later."]
    assert "daz_greeter_preferences" in caplog.text  # the database's words go to the log only
    await database.execute("ALTER TABLE prefs_away RENAME TO daz_greeter_preferences")
    await kit.stop()


async def test_with_preferences_unreadable_nobody_is_greeted_and_nothing_breaks(database,
                                                                              greetings_file,
                                                                              caplog):
    kit = await start(database, greetings_file, channel_cooldown_seconds=0)
    await room_joined(kit)
    await database.execute("ALTER TABLE daz_greeter_preferences RENAME TO prefs_away")
    await arrive(kit, "alice")  # cannot tell whether alice opted out: stay quiet
    assert kit.room.said == []
    assert "cannot check alice's opt-out" in caplog.text
    await database.execute("ALTER TABLE prefs_away RENAME TO daz_greeter_preferences")
    await arrive(kit, "bob")
    assert kit.room.said == ["FIRST bob"]
    await kit.stop()
