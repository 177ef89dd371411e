"""The sql plugin on the real bus and database: which event goes to which table, logger_rules,
status for /health, and plugin logs (daz_plugin_logs)."""
from __future__ import annotations

import json
import logging

from daz.cytube.events import parse_event
from daz.db.pool import Database
from daz.events import MessageSent
from daz.plugins.base import Plugin
from daz.plugins.sql import Sql
from tests.plugin_kit import Kit

FAST = {"core_event_flush_ms": 5}


async def start(db, tmp_path, **section):
    return await Kit.start({"sql": Sql}, db=db, data_dir=tmp_path,
                           sections={"sql": {**FAST, **section}})


async def frame(kit: Kit, name: str, payload, **flags) -> None:
    event = parse_event(name, payload, room_id=kit.room.id, channel=kit.room.channel)
    for key, value in flags.items():
        setattr(event, key, value)
    kit.room.state.apply(event)
    await kit.publish(event)


async def table(db, name: str, columns: str) -> list[tuple]:
    return [tuple(r) for r in await db.fetch(f"SELECT {columns} FROM {name} ORDER BY id")]


async def test_default_routing_fills_every_table_once(database, tmp_path):
    kit = await start(database, tmp_path)
    kit.user("alice", rank=2)
    await frame(kit, "chatMsg", {"username": "alice", "msg": "hi &amp; bye", "meta": {},
                                 "time": 1000})
    await frame(kit, "chatMsg", {"username": "alice", "msg": "hi &amp; bye", "meta": {},
                                 "time": 1000}, replayed=True)  # the join replay: same line
    await frame(kit, "chatMsg", {"username": "dazbot", "msg": "pong", "meta": {}, "time": 1001},
                own=True)  # our own echo is history too
    await frame(kit, "addUser", {"name": "carol", "rank": 1.5, "meta": {}})
    await frame(kit, "setAFK", {"name": "carol", "afk": True})
    await frame(kit, "setUserRank", {"name": "carol", "rank": 3})
    await frame(kit, "userLeave", {"name": "carol"})
    await frame(kit, "pm", {"username": "bob", "to": "dazbot", "msg": "psst", "meta": {},
                            "time": 2000})
    await frame(kit, "pm", {"username": "dazbot", "to": "bob", "msg": "hello bob", "meta": {},
                            "time": 2001}, own=True)
    await kit.publish(MessageSent(room_id=kit.room.id, channel=kit.room.channel,
                                  text="hello bob", to="bob", sent_at=1_800_000_000.5))
    await kit.publish(MessageSent(room_id=kit.room.id, channel=kit.room.channel, text="pong"))
    await frame(kit, "changeMedia", {"id": "abc", "title": "A \x00 title", "seconds": 212,
                                     "duration": "03:32", "type": "yt", "meta": {},
                                     "currentTime": 0, "paused": False})
    await frame(kit, "usercount", 4)
    await kit.stop()

    core = await table(database, "daz_core_events", "event_type, username, message, message_time")
    assert core == [
        ("cytube.event.chatMsg", "alice", "hi &amp; bye", 1000),
        ("cytube.event.chatMsg", "dazbot", "pong", 1001),
        ("cytube.event.addUser", "carol", None, None),
        ("cytube.event.setAFK", "carol", None, None),
        ("cytube.event.setUserRank", "carol", None, None),
        ("cytube.event.userLeave", "carol", None, None),
        ("cytube.event.pm", "bob", "psst", 2000),
        ("cytube.event.pm", "dazbot", "hello bob", 2001),
        ("cytube.event.pm.sent", "dazbot", "hello bob", 1_800_000_000_500),
        ("cytube.event.changeMedia", None, None, None),
        ("cytube.event.usercount", None, None, None),
    ]
    media = await database.fetchrow("SELECT video_id, video_type, title, duration, raw_data"
                                    " FROM daz_core_events WHERE video_id IS NOT NULL")
    assert tuple(media)[:4] == ("abc", "yt", "A \ufffd title", 212)
    assert (await database.fetchval("SELECT raw_data FROM daz_core_events"
                                    " WHERE event_type = 'cytube.event.usercount'")) in (4, "4")
    assert await table(database, "daz_chat_log", "username, message, user_rank") == [
        ("alice", "hi &amp; bye", 2), ("dazbot", "pong", None)]
    assert await table(database, "daz_user_activity", "event_type, username, user_rank") == [
        ("cytube.event.addUser", "carol", 1), ("cytube.event.setAFK", "carol", 1),
        ("cytube.event.setUserRank", "carol", 3), ("cytube.event.userLeave", "carol", None)]
    afk = await database.fetchval("SELECT raw_data FROM daz_user_activity"
                                  " WHERE event_type = 'cytube.event.setAFK'")
    assert (json.loads(afk) if isinstance(afk, str) else afk) == {"name": "carol", "afk": True}
    # Received PMs, and ours once (as pm.sent; its server echo is not a second row).
    assert await table(database, "daz_private_messages",
                       "event_type, from_user, to_user, message, message_time") == [
        ("cytube.event.pm", "bob", "dazbot", "psst", 2000),
        ("cytube.event.pm.sent", "dazbot", "bob", "hello bob", 1_800_000_000_500)]


async def test_go_logger_rules_decide_alone(database, tmp_path, caplog):
    go_rules = [{"event_pattern": "cytube.event.*", "enabled": True, "table": "daz_core_events"},
                {"event_pattern": "cytube.event.chatMsg", "enabled": False,
                 "table": "daz_chat_log"},
                {"event_pattern": "cytube.event.pm*", "table": "daz_plugin_logs"},
                {"event_pattern": "cytube.event.userLeave", "table": "daz_chat_log"}]
    with caplog.at_level(logging.WARNING):
        kit = await start(database, tmp_path, logger_rules=go_rules,
                          max_connections=20, background_queue_wait_ms=1200,
                          database={"host": "localhost"})
    assert any("daz_plugin_logs" in r.getMessage() and "ignored" in r.getMessage()
               for r in caplog.records)
    assert not [r for r in caplog.records if "unknown key" in r.getMessage()]
    await frame(kit, "chatMsg", {"username": "alice", "msg": "hi", "meta": {}, "time": 5})
    await frame(kit, "pm", {"username": "bob", "to": "dazbot", "msg": "x", "meta": {}, "time": 6})
    await frame(kit, "userLeave", {"name": "alice"})  # has no message: not a chat_log row
    await kit.stop()
    assert await database.fetchval("SELECT count(*) FROM daz_core_events") == 3
    for side in ("daz_chat_log", "daz_private_messages", "daz_user_activity", "daz_plugin_logs"):
        assert await database.fetchval(f"SELECT count(*) FROM {side}") == 0, side


async def test_status_reports_the_event_log(database, tmp_path):
    kit = await start(database, tmp_path)
    await frame(kit, "chatMsg", {"username": "a", "msg": "b", "meta": {}, "time": 9})
    await kit.plugin("sql").eventlog.wait_idle(10)
    status = kit.plugin("sql").status()
    assert status["db_ok"] and status["queued"] == status["written"] == 1
    assert status["spill_file"] == str(tmp_path / "journal" / "eventlog.journal")
    assert kit.metrics.registry.get_sample_value("daz_eventlog_events_total",
                                                 {"stage": "written"}) == 1
    await kit.stop()


class Noter(Plugin):
    name = "noter"


async def test_plugin_logs_reach_daz_plugin_logs_and_never_raise(database, migrated_dsn):
    kit = await Kit.start({"noter": Noter}, db=database)
    ctx = kit.plugin("noter").ctx
    await ctx.log("warning", "disk \x00 nearly full", {"free": float("nan"), "obj": object(),
                                                        "who": "\ud800"})
    await ctx.log("shout", "unknown levels become info")
    rows = await database.fetch("SELECT plugin_name, event_type, log_data, timestamp"
                                " FROM daz_plugin_logs ORDER BY id")
    assert [(r["plugin_name"], r["event_type"]) for r in rows] == [("noter", "warning"),
                                                                    ("noter", "info")]
    data = rows[0]["log_data"]
    data = json.loads(data) if isinstance(data, str) else data
    assert data["message"] == "disk \ufffd nearly full"
    assert data["data"]["free"] is None and data["data"]["who"] == "\ufffd"
    await kit.stop()
    # The database gone: logging still returns.
    down = Database(migrated_dsn)
    kit = await Kit.start({"noter": Noter}, db=down)
    await kit.plugin("noter").ctx.log("error", "still fine")
    await kit.stop()
