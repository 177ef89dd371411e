"""Fault test: the connection between the event log and PostgreSQL is cut while events keep
arriving on the bus, then restored. Every event must be in the database exactly once."""
from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from daz.cytube.events import parse_event
from daz.db.pool import Database
from daz.plugins.sql import Sql
from tests.e2e.harness import wait_until
from tests.fakes.tcp_proxy import TcpProxy
from tests.plugin_kit import Kit

SECTION = {"sql": {"core_event_batch_size": 20, "core_event_flush_ms": 10,
                   "core_event_queue_size": 300, "write_timeout_seconds": 2,
                   "shutdown_timeout_seconds": 20}}


async def feed(kit: Kit, start: int, count: int) -> None:
    """Chat lines, joins and leaves, as the room publishes them (some yielding in between)."""
    for i in range(start, start + count):
        if i % 5 == 0:
            event = parse_event("addUser", {"name": f"user{i}", "rank": 1, "meta": {}},
                                room_id=kit.room.id, channel=kit.room.channel, seq=i)
        else:
            event = parse_event("chatMsg", {"username": f"user{i % 7}", "msg": f"message {i}",
                                            "meta": {}, "time": 1_800_000_000_000 + i},
                                room_id=kit.room.id, channel=kit.room.channel, seq=i)
        await kit.bus.publish(event)
        if i % 50 == 0:
            await asyncio.sleep(0.002)


async def test_cutting_the_database_mid_stream_loses_nothing_and_duplicates_nothing(
        migrated_dsn, tmp_path):
    target = urlsplit(migrated_dsn)
    proxy = await TcpProxy(target.hostname, target.port or 5432).start()
    through_proxy = Database(proxy.dsn_for(migrated_dsn), min_size=1, max_size=2,
                             command_timeout=5, connect_timeout=2)
    await through_proxy.start()
    direct = Database(migrated_dsn)
    await direct.start()
    kit = await Kit.start({"sql": Sql}, db=through_proxy, sections=SECTION, data_dir=tmp_path)
    eventlog = kit.plugin("sql").eventlog
    try:
        await feed(kit, 0, 600)
        await wait_until(lambda: eventlog.counts["written"] >= 200, 20, "writes before the cut")
        await proxy.block()  # mid-stream: batches may be in flight, committed or not
        await feed(kit, 600, 1400)  # keeps coming while the database is unreachable
        await wait_until(lambda: eventlog.status()["spilling"], 20, "spilling to disk")
        assert not eventlog.db_ok
        await proxy.unblock()
        await feed(kit, 2000, 500)
        await kit.bus.drain(20)
        assert await eventlog.wait_idle(60), eventlog.status()
    finally:
        await kit.stop()
        await proxy.stop()
        await through_proxy.close()
    try:
        rows = await direct.fetch("SELECT event_type, message, username, event_uid"
                                  " FROM daz_core_events")
        uids = [r["event_uid"] for r in rows]
        assert len(uids) == len(set(uids)) == 2500
        messages = sorted(int(r["message"].split()[1]) for r in rows if r["message"])
        assert messages == [i for i in range(2500) if i % 5]
        joined = sorted(int(r["username"][4:]) for r in rows
                        if r["event_type"] == "cytube.event.addUser")
        assert joined == list(range(0, 2500, 5))
        assert await direct.fetchval("SELECT count(*) FROM daz_chat_log") == 2000
        assert await direct.fetchval("SELECT count(*) FROM daz_user_activity") == 500
        status = eventlog.status()
        assert status["spilled"] > 0 and status["replayed"] > 0 and status["failed"] == 0
        assert status["queued"] == status["written"] + status["replayed"] == 2500
    finally:
        await direct.close()
