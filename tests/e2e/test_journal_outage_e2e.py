"""One journal for every writer (issue 12 item 7), with ``daz run`` as a real process that
crashes in the middle of an outage.

The database is cut; chat lines (the event log), joins and leaves (usertracker's held writes)
and an admin's ``!command disable`` (eventfilter's deferred save, through the retry queue) all
reach the bot at once. Then the process is SIGKILLed: no stop, nothing saved on the way out.
What each writer had acknowledged is in ``<data_dir>/journal/`` (0700, files 0600); the next
start, with the database back, drains every stream in order: each join and leave once, the
retried operation inserted once and run, every chat line the journal held stored once, and the
streams emptied.
"""
from __future__ import annotations

import asyncio
import json
import signal
import stat

import asyncpg

from daz.journal import read_records
from tests.e2e.harness import BOT_NAME, wait_until
from tests.e2e.support import CHANNEL, bot_lines
from tests.e2e.test_shutdown_e2e import DazProcess
from tests.fakes.tcp_proxy import TcpProxy

LINES = 2_000
WALKERS = 60  # each joins; every other one leaves again
FIRST_TIME = 1_850_000_000_000


def flood(server) -> None:
    sid = next(m.sid for m in server.channel(CHANNEL).members.values() if m.name == BOT_NAME)
    per_walker = LINES // WALKERS
    for i in range(LINES):
        server.send(sid, "chatMsg", {"username": f"user{i % 20}", "msg": f"journal line {i}",
                                     "meta": {}, "time": FIRST_TIME + i})
        if i % per_walker == 0 and i // per_walker < WALKERS:
            walker = f"jwalker{i // per_walker}"
            server.send(sid, "addUser", {"name": walker, "rank": 1, "meta": {}, "profile": {}})
            if (i // per_walker) % 2:
                server.send(sid, "userLeave", {"name": walker})


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def stored(dsn: str) -> dict:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        chat = await conn.fetch(
            "SELECT message FROM daz_core_events WHERE channel_name = $1"
            " AND event_type = 'cytube.event.chatMsg' AND message LIKE 'journal line %'", CHANNEL)
        history = await conn.fetch(
            "SELECT username, event_type FROM daz_user_tracker_history"
            " WHERE username LIKE 'jwalker%'")
        retried = await conn.fetch(
            "SELECT status FROM daz_retry_queue WHERE plugin_name = 'eventfilter'"
            " AND correlation_id LIKE 'eventfilter:save_enabled:ping:%'")
    finally:
        await conn.close()
    return {"chat": [r["message"] for r in chat],
            "joins": sorted(r["username"] for r in history if r["event_type"] == "join"),
            "leaves": sorted(r["username"] for r in history if r["event_type"] == "leave"),
            "retried": [r["status"] for r in retried]}


async def test_a_crash_during_an_outage_loses_nothing_a_writer_acknowledged(
        fake_server, migrated_dsn, tmp_path):
    server = fake_server
    proxy = await TcpProxy("127.0.0.1", 5432).start()
    data = tmp_path / "data"
    # A small event log memory (max_queue = 16 × 16): most of the flood goes to the journal.
    plugins = {"sql": {"core_event_batch_size": 16, "core_event_queue_size": 16},
               "retry": {"first_poll_seconds": 0.5, "poll_interval_seconds": 0.5}}
    core = {"admin_users": ["Kate"]}
    first = DazProcess(server, proxy.dsn_for(migrated_dsn), data, plugins, core=core)
    second = DazProcess(server, migrated_dsn, data, plugins, core=core)
    journal = data / "journal"
    try:
        await first.start()
        await proxy.block()  # the database goes away
        server.add_account("Kate", "katepw1")
        server.set_channel_rank(CHANNEL, "Kate", 2)
        kate = await server.user("Kate")
        await kate.chat("!command disable ping")
        await wait_until(lambda: any(line.startswith("!ping is off.")
                                     for line in bot_lines(server)), 30, "the switch answered")
        assert "saved when it is back" in next(line for line in bot_lines(server)
                                                if line.startswith("!ping is off."))
        flood(server)

        joins = [f"jwalker{n}" for n in range(WALKERS)]
        leaves = [f"jwalker{n}" for n in range(WALKERS) if n % 2]

        def journaled() -> bool:
            held = [json.loads(r)["op"] for r in read_records(journal / "usertracker-held.journal")]
            held_joins = {u for op in held if op.get("op") == "join" for u in _users(op)}
            retry = read_records(journal / "retry-pending.journal")
            spilled = read_records(journal / "eventlog.journal")
            return (set(joins) <= held_joins and len(retry) == 1
                    and len(spilled) >= LINES // 2)

        await wait_until(journaled, 60, "every writer's records in the journal")
        assert mode(journal) == 0o700
        assert all(mode(p) == 0o600 for p in journal.iterdir()), \
            {p.name: oct(mode(p)) for p in journal.iterdir()}
        await asyncio.sleep(0.5)  # a few more event log groups reach the disk, or not: both fine

        first.proc.send_signal(signal.SIGKILL)  # a crash: nothing is saved on the way out
        await first.proc.wait()
        in_journal = {json.loads(r)["message"] for r in read_records(journal / "eventlog.journal")
                      if json.loads(r).get("event_type") == "cytube.event.chatMsg"
                      and (json.loads(r).get("message") or "").startswith("journal line")}
        assert len(in_journal) >= LINES // 2

        await proxy.unblock()
        await second.start()

        async def drained() -> bool:
            got = await stored(migrated_dsn)
            return (got["retried"] == ["completed"] and sorted(got["joins"]) == sorted(joins)
                    and len(got["leaves"]) >= len(joins) and in_journal <= set(got["chat"])
                    and not (journal / "usertracker-held.journal").exists()
                    and not (journal / "retry-pending.journal").exists())

        try:
            await wait_until(drained, 60, "every stream drained after the restart")
        finally:
            got = await stored(migrated_dsn)
            print(f"\nafter the restart: {len(got['chat'])} chat rows"
                  f" ({len(set(got['chat']))} distinct), {len(got['joins'])} joins,"
                  f" {len(got['leaves'])} leaves, retried {got['retried']}")
        got = await stored(migrated_dsn)
        assert len(got["chat"]) == len(set(got["chat"]))  # nothing doubled
        assert got["joins"] == sorted(joins)  # each join once, in spite of the crash
        # Each leave once: half of them held during the outage, the others written when the
        # user list after the restart shows those walkers gone.
        assert got["leaves"] == sorted(joins)
        assert set(leaves) < set(got["leaves"])
        assert got["retried"] == ["completed"]  # inserted once, run once
        assert await second.signal(signal.SIGTERM) == 0, second.log()[-3000:]
        assert "Traceback" not in second.log(), second.log()[-4000:]
    finally:
        await first.kill_if_running()
        await second.kill_if_running()
        await proxy.stop()


def _users(op: dict) -> list[str]:
    """The names a held usertracker write is about."""
    found = [op[key] for key in ("username", "user", "name") if isinstance(op.get(key), str)]
    return found + [u for u in op.get("users", []) if isinstance(u, str)]
