"""The retry queue against a real PostgreSQL: enqueue, run, backoff, dead letter, shared claims,
reclaiming stalled rows, and holding operations while the database is down."""
import asyncio
import contextlib
import json
from urllib.parse import urlsplit

from daz.bus import Bus
from daz.plugins.base import Plugin
from daz.plugins.retry import Retry
from tests.e2e.harness import wait_until
from tests.fakes.no_database import database_that_never_answers
from tests.plugin_kit import Kit

MANUAL = {"retry": {"first_poll_seconds": 3600, "initial_delay_seconds": 0, "jitter": 0}}


class Writer(Plugin):
    """Runs retried operations; fails the first ``fail_times`` attempts of each key."""

    name = "writer"
    fail_times = 0

    async def setup(self):
        self.runs: list[str] = []
        self.attempts: dict[str, int] = {}

    async def retry_operation(self, operation, payload):
        key = payload["key"]
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if self.attempts[key] <= self.fail_times:
            raise RuntimeError(f"still failing ({self.attempts[key]})")
        self.runs.append(f"{operation}:{key}")


async def start(database, sections=None, bus=None, writer=Writer, data_dir=None):
    return await Kit.start({"retry": Retry, "writer": writer}, db=database,
                           sections=sections or MANUAL, bus=bus, data_dir=data_dir)


async def test_enqueue_maps_onto_the_go_columns_and_keys_are_idempotent(database):
    k = await start(database)
    writer = k.plugin("writer")
    ok = await writer.defer_retry("save_note", {"key": "n1", "text": "it's <3"}, key="note-1",
                                  error="connection lost", priority=4)
    assert ok
    again = await k.bus.request("retry.enqueue", {"plugin": "writer", "operation": "save_note",
                                                  "payload": {"key": "other"}, "key": "note-1"})
    rows = await database.fetch("SELECT * FROM daz_retry_queue")
    assert len(rows) == 1 and rows[0]["id"] == again
    row = rows[0]
    assert (row["correlation_id"], row["plugin_name"], row["operation_type"], row["event_type"]) \
        == ("note-1", "writer", "save_note", "retry.run.writer")
    data = row["event_data"]
    assert (json.loads(data) if isinstance(data, str) else data) == {"key": "n1",
                                                                     "text": "it's <3"}
    assert (row["status"], row["priority"], row["last_error"], row["max_retries"]) == (
        "pending", 4, "connection lost", 3)
    await k.stop()


async def test_a_due_row_is_run_by_its_plugin_and_completed(database):
    k = await start(database)
    await k.plugin("writer").defer_retry("save", {"key": "a"}, key="a")
    assert await k.plugin("retry").poll() == 1
    assert k.plugin("writer").runs == ["save:a"]
    assert await database.fetchval("SELECT status FROM daz_retry_queue") == "completed"
    assert await k.plugin("retry").poll() == 0  # never run twice
    await k.stop()


async def test_failures_back_off_then_dead_letter(database):
    class Flaky(Writer):
        fail_times = 99

    sections = {"retry": {**MANUAL["retry"], "initial_delay_seconds": 30,
                          "retry_policies": {"save": {"max_retries": 3}}}}
    k = await start(database, sections, writer=Flaky)
    retry = k.plugin("retry")
    await k.plugin("writer").defer_retry("save", {"key": "x"}, key="x")
    await database.execute("UPDATE daz_retry_queue SET retry_after = now()")
    assert await retry.poll() == 1
    row = await database.fetchrow("SELECT status, retry_count, last_error,"
                                  " extract(epoch FROM retry_after - now()) AS wait"
                                  " FROM daz_retry_queue")
    assert row["status"] == "pending" and row["retry_count"] == 1
    assert "still failing (1)" in row["last_error"]
    assert 20 < row["wait"] <= 30  # initial delay 30 s, minus test time (jitter is 0)
    assert await retry.poll() == 0  # not due yet
    for _expected in (2, 3):
        await database.execute("UPDATE daz_retry_queue SET retry_after = now()")
        assert await retry.poll() == 1
    row = await database.fetchrow("SELECT status, retry_count FROM daz_retry_queue")
    assert (row["status"], row["retry_count"]) == ("dead_letter", 3)
    assert k.plugin("writer").attempts == {"x": 3}
    await k.stop()


def test_backoff_grows_is_capped_and_jittered():
    r = Retry.__new__(Retry)
    from daz.plugins.retry import RetryConfig
    r.config = RetryConfig(initial_delay_seconds=2, backoff_multiplier=2, max_delay_seconds=10,
                           jitter=0.2)
    waits = [r.backoff("x", n) for n in range(1, 6) for _ in range(50)]
    assert all(1.6 <= w <= 2.4 for w in waits[:50])
    assert all(3.2 <= w <= 4.8 for w in waits[50:100])
    assert all(8 <= w <= 12 for w in waits[150:])  # capped at 10 ± 20 %
    assert len({round(w, 6) for w in waits[:50]}) > 10  # not in lock step


async def test_two_processes_share_the_queue_without_running_a_row_twice(database):
    # Two "daz processes": separate buses, plugins and workers, one database.
    sections = {"retry": {**MANUAL["retry"], "batch_size": 7, "worker_count": 4}}
    a = await start(database, sections, bus=Bus())
    b = await start(database, sections, bus=Bus())
    for i in range(60):
        await a.plugin("writer").defer_retry("save", {"key": f"k{i}"}, key=f"k{i}")
    ran = await asyncio.gather(a.plugin("retry").poll(), b.plugin("retry").poll(),
                               a.plugin("retry").poll(), b.plugin("retry").poll())
    assert sum(ran) == 60
    runs = a.plugin("writer").runs + b.plugin("writer").runs
    assert sorted(runs) == sorted(f"save:k{i}" for i in range(60))
    assert a.plugin("writer").runs and b.plugin("writer").runs  # both did some of the work
    assert await database.fetchval(
        "SELECT count(*) FROM daz_retry_queue WHERE status = 'completed'") == 60
    await a.stop()
    await b.stop()


async def test_stalled_processing_rows_are_reclaimed(database):
    k = await start(database, {"retry": {**MANUAL["retry"], "reclaim_grace_seconds": 5}})
    await k.plugin("writer").defer_retry("save", {"key": "s"}, key="s")
    await k.plugin("writer").defer_retry("save", {"key": "t"}, key="t")
    # A process claimed both and died; one claim is old, the other is recent.
    await database.execute("UPDATE daz_retry_queue SET status = 'processing', timeout_seconds = 10,"
                           " updated_at = now() - interval '1 minute' WHERE correlation_id = 's'")
    await database.execute("UPDATE daz_retry_queue SET status = 'processing',"
                           " updated_at = now() WHERE correlation_id = 't'")
    assert await k.plugin("retry").poll() == 1
    assert k.plugin("writer").runs == ["save:s"]
    assert await database.fetchval(
        "SELECT status FROM daz_retry_queue WHERE correlation_id = 't'") == "processing"
    await k.stop()


async def test_cleanup_removes_old_finished_rows(database):
    k = await start(database)
    await k.plugin("writer").defer_retry("save", {"key": "old"}, key="old")
    await k.plugin("retry").poll()
    await database.execute("UPDATE daz_retry_queue SET updated_at = now() - interval '8 days'")
    await k.plugin("writer").defer_retry("save", {"key": "new"}, key="new")
    assert await k.plugin("retry").cleanup() == 1
    assert await database.fetchval("SELECT correlation_id FROM daz_retry_queue") == "new"
    await k.stop()


async def test_enqueue_while_the_database_is_down_is_held_and_inserted_later(migrated_dsn,
                                                                            database):
    from daz.db.pool import Database
    from tests.fakes.tcp_proxy import TcpProxy

    target = urlsplit(migrated_dsn)
    proxy = await TcpProxy(target.hostname, target.port or 5432).start()
    db = Database(proxy.dsn_for(migrated_dsn), min_size=1, max_size=2, command_timeout=5,
                  connect_timeout=2)
    await db.connect_with_retry(asyncio.Event())
    k = await start(db, {"retry": {**MANUAL["retry"], "insert_timeout_seconds": 1}})
    writer = k.plugin("writer")
    await proxy.block()
    assert await writer.defer_retry("save", {"key": "down"}, key="down")
    assert len(k.plugin("retry").pending) == 1
    with contextlib.suppress(Exception):  # still down: a poll may fail, but loses nothing
        await k.plugin("retry").poll()
    assert len(k.plugin("retry").pending) == 1
    await proxy.unblock()
    await wait_until(lambda: _poll_until_run(k), 15, "held operation inserted and run")
    assert writer.runs == ["save:down"]
    assert await database.fetchval("SELECT count(*) FROM daz_retry_queue") == 1
    await k.stop()
    await db.close()
    await proxy.stop()


async def _poll_until_run(k):
    try:
        await k.plugin("retry").poll()
    except Exception:
        return False
    return bool(k.plugin("writer").runs)


async def test_held_operations_are_saved_at_shutdown_and_queued_at_the_next_start(database,
                                                                                 tmp_path):
    k = await start(database, data_dir=tmp_path)
    retry = k.plugin("retry")
    retry.pending.append({"key": "spilled", "plugin": "writer", "operation": "save",
                          "payload": json.dumps({"key": "spilled"}), "error": "",
                          "max_retries": 3, "priority": 0, "timeout": 30, "delay": 0})
    retry.ctx.db = database_that_never_answers()  # the database is still down at shutdown
    await k.stop()
    assert (tmp_path / "journal" / "retry-pending.journal").exists()
    assert await database.fetchval("SELECT count(*) FROM daz_retry_queue") == 0

    k = await start(database, data_dir=tmp_path)
    assert len(k.plugin("retry").pending) == 1
    assert await k.plugin("retry").poll() == 1
    assert k.plugin("writer").runs == ["save:spilled"]
    assert not (tmp_path / "journal" / "retry-pending.journal").exists()
    await k.stop()


async def test_failed_attempts_back_off_in_the_database_with_jitter(database):
    class Flaky(Writer):
        fail_times = 99

    sections = {"retry": {**MANUAL["retry"], "initial_delay_seconds": 100, "jitter": 0.2,
                          "batch_size": 50, "worker_count": 50}}
    k = await start(database, sections, writer=Flaky)
    for i in range(40):
        await k.plugin("writer").defer_retry("save", {"key": f"j{i}"}, key=f"j{i}")
    await database.execute("UPDATE daz_retry_queue SET retry_after = now()")
    assert await k.plugin("retry").poll() == 40
    waits = [r["wait"] for r in await database.fetch(
        "SELECT extract(epoch FROM retry_after - updated_at)::float8 AS wait"
        " FROM daz_retry_queue")]
    assert all(80 - 1 <= w <= 120 + 1 for w in waits)  # 100 s ± 20 %
    assert len({round(w) for w in waits}) > 5  # spread out, not in lock step
    await k.stop()


async def test_rows_that_can_never_run_are_failed_at_once(database):
    class Limited(Writer):
        async def retry_operation(self, operation, payload):
            if operation != "save":
                raise NotImplementedError(f"no operation {operation!r}")
            await super().retry_operation(operation, payload)

    k = await start(database, writer=Limited)
    await k.plugin("writer").defer_retry("frobnicate", {"key": "f"}, key="f")
    # A row as the Go bot wrote them: a failure event's data, not our payload object.
    await database.execute(
        "INSERT INTO daz_retry_queue (correlation_id, plugin_name, operation_type, event_type,"
        " event_data, retry_after) VALUES ('go-1', 'writer', 'sql_operation',"
        " 'retry.run.writer', '[1, 2]', now())")
    assert await k.plugin("retry").poll() == 2
    rows = {r["correlation_id"]: r for r in await database.fetch(
        "SELECT correlation_id, status, retry_count, last_error FROM daz_retry_queue")}
    assert rows["f"]["status"] == "failed" and "no operation" in rows["f"]["last_error"]
    assert rows["go-1"]["status"] == "failed" and "event_data" in rows["go-1"]["last_error"]
    assert k.plugin("writer").runs == []
    await k.stop()


async def test_no_more_rows_are_claimed_than_there_are_workers(database):
    claimed_while_running = []

    class Watcher(Writer):
        async def retry_operation(self, operation, payload):
            claimed_while_running.append(await database.fetchval(
                "SELECT count(*) FROM daz_retry_queue WHERE status = 'processing'"))
            await super().retry_operation(operation, payload)

    sections = {"retry": {**MANUAL["retry"], "batch_size": 10, "worker_count": 2}}
    k = await start(database, sections, writer=Watcher)
    for i in range(7):
        await k.plugin("writer").defer_retry("save", {"key": f"w{i}"}, key=f"w{i}")
    assert await k.plugin("retry").poll() == 7
    assert max(claimed_while_running) <= 2  # a claimed row never waits for a worker
    assert await database.fetchval(
        "SELECT count(*) FROM daz_retry_queue WHERE status = 'completed'") == 7
    await k.stop()


async def test_the_first_poll_cleans_up_then_once_a_day(database):
    k = await start(database)
    writer, retry = k.plugin("writer"), k.plugin("retry")
    for key in ("old1", "old2"):
        await writer.defer_retry("save", {"key": key}, key=key)
    await database.execute("UPDATE daz_retry_queue SET status = 'completed',"
                           " updated_at = now() - interval '8 days' WHERE correlation_id = 'old1'")
    await retry.poll()  # runs old2, and removes old1 right away (not a day after start)
    assert [r["correlation_id"] for r in await database.fetch(
        "SELECT correlation_id FROM daz_retry_queue")] == ["old2"]
    await database.execute("UPDATE daz_retry_queue SET updated_at = now() - interval '8 days'")
    await retry.poll()
    assert await database.fetchval("SELECT count(*) FROM daz_retry_queue") == 1  # next day
    await k.stop()
