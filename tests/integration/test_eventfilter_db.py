"""eventfilter against a real PostgreSQL: command mirror, persisted switches, batched history,
rules from the table."""
import json

from daz.plugins.base import Plugin, command, on
from daz.plugins.basics import Basics
from daz.plugins.eventfilter import EventFilter
from tests.plugin_kit import Kit

SLOW_FLUSH = {"eventfilter": {"history_flush_seconds": 3600}}


class Toy(Plugin):
    name = "toy"

    async def setup(self):
        self.forwarded = []

    @command("tell", aliases=("msg",), usage="!tell <user> <message>", description="Leave a note")
    async def tell(self, ctx, user, *message):
        await ctx.reply("ok")

    @on("plugin.toy.forward")
    async def forward(self, event):
        self.forwarded.append(event.data)


async def start(database, **kw):
    kw.setdefault("admins", ["mia"])
    k = await Kit.start({"eventfilter": EventFilter, "basics": Basics, "toy": Toy}, db=database,
                        **kw)
    k.user("alice", 0)
    k.user("mia", 3)
    return k


async def test_registry_is_mirrored_with_aliases(database):
    k = await start(database)
    rows = {r["command"]: r for r in await database.fetch(
        "SELECT command, plugin_name, is_alias, primary_command, enabled, admin_only, description"
        " FROM daz_eventfilter_commands")}
    assert rows["tell"]["plugin_name"] == "toy" and rows["tell"]["description"] == "Leave a note"
    assert rows["msg"]["is_alias"] and rows["msg"]["primary_command"] == "tell"
    assert rows["command"]["admin_only"] and rows["command"]["plugin_name"] == "eventfilter"
    assert {"ping", "help", "commands", "about", "uptime", "up"} <= set(rows)
    await k.stop()


async def test_disabling_a_command_survives_a_restart(database):
    k = await start(database)
    await k.chat("mia", "!command disable msg")
    assert k.room.said[-1] == "!tell is off."
    await k.stop()

    k = await start(database)  # a new registry, built from the declarations (enabled=True)
    await k.chat("alice", "!tell bob hi")
    assert k.room.said == [] and k.room.pms == [("alice", "!tell is switched off.")]
    await k.chat("mia", "!command enable tell")
    await k.stop()

    k = await start(database)
    await k.chat("alice", "!tell bob hi")
    assert k.room.said == ["ok"]
    await k.stop()


async def test_history_is_written_in_batches_never_per_message(database):
    k = await start(database, sections=SLOW_FLUSH)
    await k.chat("alice", "!tell bob don&#39;t go")
    await k.chat("alice", "!nonsense spam")
    await k.chat("alice", "!command list")  # admin-only refusal
    for _ in range(20):
        await k.chat("alice", "!nonsense")
    # Everything has been handled (replies sent), and still nothing is in the table.
    assert k.room.said == ["ok"]
    assert await database.fetchval("SELECT count(*) FROM daz_eventfilter_history") == 0
    written = await k.plugin("eventfilter").history.flush()
    assert written == 23
    rows = await database.fetch("SELECT command, username, channel, args, success, error_message"
                                " FROM daz_eventfilter_history ORDER BY id")
    assert (rows[0]["command"], rows[0]["args"], rows[0]["success"]) == (
        "tell", ["bob", "don't", "go"], True)
    assert rows[1]["command"] == "nonsense" and rows[1]["success"] is False
    assert rows[1]["args"] is None and rows[1]["error_message"].startswith("unknown")
    assert rows[2]["error_message"].startswith("admin: !command is for bot admins only")
    assert rows[0]["channel"] == "testchan"
    await k.stop()


async def test_history_is_flushed_at_shutdown_and_by_the_timer(database):
    k = await start(database, sections=SLOW_FLUSH)
    await k.chat("alice", "!ping")
    assert await database.fetchval("SELECT count(*) FROM daz_eventfilter_history") == 0
    await k.stop()
    assert await database.fetchval("SELECT count(*) FROM daz_eventfilter_history") == 1

    k = await start(database, sections={"eventfilter": {"history_flush_seconds": 0.1}})
    await k.chat("alice", "!ping")
    from tests.e2e.harness import wait_until

    async def two():
        return await database.fetchval("SELECT count(*) FROM daz_eventfilter_history") == 2
    await wait_until(two, 5, "timer flush")
    await k.stop()


async def test_control_characters_are_stripped_from_history(database):
    k = await start(database, sections=SLOW_FLUSH)
    await k.chat("alice", "!tell bob a\x07b")
    await k.stop()
    args = await database.fetchval("SELECT args FROM daz_eventfilter_history")
    assert args == ["bob", "ab"]


async def test_rules_from_the_table_forward_events(database):
    await database.execute(
        "INSERT INTO daz_eventfilter_rules (event_type, target_plugin, conditions, priority)"
        " VALUES ($1, $2, $3::text::jsonb, 5), ($4, $2, NULL, 0)",
        "chatMsg", "toy", json.dumps({"text": "^hello"}), "cytube.event.userLeave")
    await database.execute(
        "INSERT INTO daz_eventfilter_rules (event_type, target_plugin, enabled)"
        " VALUES ('*', 'toy', false)")
    k = await start(database)
    await k.chat("alice", "hello there")
    await k.chat("alice", "well hello")
    from daz.cytube.events import parse_event
    await k.publish(parse_event("userLeave", {"name": "alice"}, room_id="testchan",
                                channel="testchan"))
    toy = k.plugin("toy")
    assert [d["event_type"] for d in toy.forwarded] == ["cytube.event.chatMsg",
                                                        "cytube.event.userLeave"]
    assert toy.forwarded[0]["rule"].startswith("db:")
    await k.stop()


async def test_a_history_batch_whose_commit_reply_was_lost_is_not_written_twice(database):
    k = await start(database, sections=SLOW_FLUSH)
    for _ in range(3):
        await k.chat("alice", "!ping")
    history = k.plugin("eventfilter").history
    real = history._write

    async def commit_then_fail(conn, batch_id, chunk):
        await real(conn, batch_id, chunk)
        raise ConnectionResetError("connection lost after COMMIT")

    history._write = commit_then_fail
    assert await history.flush() == 0  # failed, as far as it can tell
    history._write = real
    assert len(history) == 3  # still held, with its batch id
    await k.chat("alice", "!nonsense")
    assert await history.flush() == 1  # the retried batch was found written; the new one lands
    assert await database.fetchval("SELECT count(*) FROM daz_eventfilter_history") == 4
    assert len(history) == 0
    await k.stop()


async def test_lone_surrogates_in_a_command_are_stored_cleaned(database):
    k = await start(database, sections=SLOW_FLUSH)
    await k.chat("alice", "!tell bob broken \ud83d emoji")
    assert await k.plugin("eventfilter").history.flush() == 1
    await k.stop()
    args = await database.fetchval("SELECT args FROM daz_eventfilter_history")
    assert args == ["bob", "broken", "\ufffd", "emoji"]


async def test_a_batch_the_database_refuses_does_not_stall_later_history(database, caplog):
    k = await start(database, sections=SLOW_FLUSH)
    history = k.plugin("eventfilter").history
    history.batch = 4
    await k.chat("alice", "!ping")
    # Rows add() would never build (it cleans and cuts), as a future bug might: PostgreSQL
    # refuses an over-long command and UTF-8 cannot encode a lone surrogate.
    good = history.rows[0]
    history.rows.append(("x" * 500,) + good[1:])
    history.rows.append((good[0], "evil\udc00") + good[2:])
    await k.chat("alice", "!nonsense")  # same first batch of 4, after the bad rows
    for _ in range(5):
        await k.chat("alice", "!ping")  # later batches, all good
    with caplog.at_level("ERROR", logger="daz.plugins.eventfilter.history"):
        assert await history.flush() == 7
    assert len(history) == 0 and history.rejected == 2
    refused = [r for r in caplog.records if "refuses" in r.getMessage()]
    assert len(refused) == 2 and all(r.levelname == "ERROR" for r in refused)
    rows = await database.fetch("SELECT command, username FROM daz_eventfilter_history"
                                " ORDER BY id")
    assert [r["command"] for r in rows] == ["ping", "nonsense"] + ["ping"] * 5
    assert {r["username"] for r in rows} == {"alice"}
    # And the next flush is not stuck on anything.
    await k.chat("alice", "!ping")
    assert await history.flush() == 1
    await k.stop()


async def test_a_refused_batch_keeps_its_rows_while_the_database_is_away(database):
    k = await start(database, sections=SLOW_FLUSH)
    history = k.plugin("eventfilter").history
    await k.chat("alice", "!ping")
    history.rows.append(("x" * 500,) + history.rows[0][1:])
    await k.chat("alice", "!ping")
    real = history._write
    calls = 0

    async def refused_then_away(conn, batch_id, chunk):
        nonlocal calls
        calls += 1
        if calls == 1:
            return await real(conn, batch_id, chunk)  # the real refusal of the whole batch
        raise ConnectionResetError("database went away")

    history._write = refused_then_away
    assert await history.flush() == 0
    assert len(history) == 3  # nothing dropped while the database is away
    history._write = real
    assert await history.flush() == 2
    assert history.rejected == 1 and len(history) == 0
    assert await database.fetchval("SELECT count(*) FROM daz_eventfilter_history") == 2
    await k.stop()
