"""The SQL functions of the core migrations (the Go scripts), called directly, against their
documented behaviour:
retry claims under concurrency, backoff and dead letter; gallery adds under concurrency, the
health-check schedule and dead-image recovery."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest


@pytest.fixture
async def conns(migrated_dsn):
    opened = [await asyncpg.connect(migrated_dsn) for _ in range(3)]
    yield opened
    for conn in opened:
        await conn.close()


async def queue(conn, n: int, **columns) -> list[int]:
    rows = await conn.fetch(
        "INSERT INTO daz_retry_queue (correlation_id, plugin_name, operation_type, event_type,"
        " event_data, retry_after, max_retries, priority)"
        " SELECT 'c-' || g || '-' || $2, 'writer', 'save', 'retry.run.writer', '{}',"
        "        now() - interval '1 second', $3, $4 FROM generate_series(1, $1) g RETURNING id",
        n, columns.get("tag", "x"), columns.get("max_retries", 3), columns.get("priority", 0))
    return [r["id"] for r in rows]


# ---------------------------------------------------------------------------- retry (025)

async def test_concurrent_claims_never_hand_out_a_row_twice(conns):
    ids = set(await queue(conns[0], 300))
    claimed: list[list[int]] = [[], [], []]

    async def claim(i: int) -> None:
        while True:
            rows = await conns[i].fetch("SELECT id FROM acquire_retry_batch(7)")
            if not rows:
                return
            claimed[i] += [r["id"] for r in rows]

    await asyncio.wait_for(asyncio.gather(*(claim(i) for i in range(3))), 60)
    everything = claimed[0] + claimed[1] + claimed[2]
    assert len(everything) == len(set(everything)) == 300 and set(everything) == ids
    assert await conns[0].fetchval("SELECT count(*) FROM daz_retry_queue"
                                   " WHERE status = 'processing'") == 300


async def test_a_claim_held_open_is_skipped_not_waited_for(conns):
    await queue(conns[0], 10)
    holder, other = conns[0], conns[1]
    async with holder.transaction():
        held = {r["id"] for r in await holder.fetch("SELECT id FROM acquire_retry_batch(4)")}
        # Inside the open transaction those rows are locked; another claimer must skip them
        # at once (it would block, then hit the timeout, if it waited).
        await other.execute("SET statement_timeout = '3s'")
        got = {r["id"] for r in await other.fetch("SELECT id FROM acquire_retry_batch(100)")}
    assert len(held) == 4 and len(got) == 6 and not held & got


async def test_higher_priority_is_claimed_first(conns):
    low = await queue(conns[0], 3, tag="low")
    high = await queue(conns[0], 2, tag="high", priority=5)
    rows = await conns[0].fetch("SELECT id FROM acquire_retry_batch(2)")
    assert {r["id"] for r in rows} == set(high) and not set(low) & {r["id"] for r in rows}


async def test_failures_back_off_exponentially_then_dead_letter(conns):
    conn = conns[0]
    [row_id] = await queue(conn, 1, max_retries=4)
    delays, statuses = [], []
    for _ in range(4):
        statuses.append(await conn.fetchval(
            "SELECT fail_retry($1, 'boom', 5, 300, 2, 0)", row_id))
        delays.append(await conn.fetchval(
            "SELECT extract(epoch FROM retry_after - updated_at)::float FROM daz_retry_queue"
            " WHERE id = $1", row_id))
    assert statuses == ["pending", "pending", "pending", "dead_letter"]
    assert [round(d) for d in delays[:3]] == [5, 10, 20]
    row = await conn.fetchrow("SELECT retry_count, last_error FROM daz_retry_queue WHERE id = $1",
                              row_id)
    assert tuple(row) == (4, "boom")
    # A dead row is never claimed again, and the trigger counted it.
    assert await conn.fetch("SELECT id FROM acquire_retry_batch(10)") == []
    assert await conn.fetchval("SELECT retries_failed FROM daz_plugin_stats"
                               " WHERE plugin_name = 'writer'") == 1


async def test_complete_and_cleanup(conns):
    conn = conns[0]
    ids = await queue(conn, 3)
    for row_id in ids[:2]:
        await conn.execute("SELECT complete_retry($1)", row_id)
    await conn.execute("UPDATE daz_retry_queue SET updated_at = now() - interval '10 days'"
                       " WHERE id = ANY($1::bigint[])", ids[:2])
    assert await conn.fetchval("SELECT cleanup_old_retries(7)") == 2
    assert [r["id"] for r in await conn.fetch("SELECT id FROM daz_retry_queue")] == ids[2:]


# ---------------------------------------------------------------------------- gallery (027-030)

async def add(conn, user: str, url: str, channel: str = "chan", limit: int = 5) -> int:
    return await conn.fetchval("SELECT add_gallery_image($1, $2, $3, NULL, $4)",
                               user, url, channel, limit)


async def active(conn, user: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM daz_gallery_images"
                               " WHERE username = $1 AND is_active", user)


async def test_concurrent_adds_never_exceed_the_limit(conns):
    seen: list[int] = []

    async def poster(i: int) -> None:
        for n in range(12):
            await add(conns[i], "alice", f"https://img.example/{i}-{n}.png",
                      channel=("chan", "other")[n % 2])
            seen.append(await active(conns[i], "alice"))

    await asyncio.wait_for(asyncio.gather(*(poster(i) for i in range(3))), 60)
    assert max(seen) <= 5
    assert await active(conns[0], "alice") == 5
    assert await conns[0].fetchval("SELECT count(*) FROM daz_gallery_images") == 36
    # The newest five stay; the rest were pruned with a reason naming the limit.
    reasons = {r["pruned_reason"] for r in await conns[0].fetch(
        "SELECT pruned_reason FROM daz_gallery_images WHERE NOT is_active")}
    assert len(reasons) == 1 and "5" in reasons.pop()


async def test_concurrent_adds_of_one_url_make_one_row(conns):
    async def poster(i: int) -> list[int]:
        return [await add(conns[i], "bob", "https://img.example/same.png", channel=f"chan{i}{n}")
                for n in range(3)]

    ids = await asyncio.gather(*(poster(i) for i in range(3)))
    assert len({i for per_conn in ids for i in per_conn}) == 1
    assert await conns[0].fetchval("SELECT count(*) FROM daz_gallery_images"
                                   " WHERE username = 'bob'") == 1


async def check_delay(conn, image_id: int) -> float:
    return await conn.fetchval(
        "SELECT extract(epoch FROM next_check_at - last_check_at)::float / 3600"
        " FROM daz_gallery_images WHERE id = $1", image_id)


async def test_failed_health_checks_back_off_and_kill_the_image_at_the_third(conns):
    conn = conns[0]
    image = await add(conn, "carol", "https://img.example/c.png")
    delays, alive = [], []
    for _ in range(3):
        await conn.execute("SELECT mark_image_for_health_check($1, true, 'HTTP 404')", image)
        delays.append(round(await check_delay(conn, image)))
        alive.append(await conn.fetchval("SELECT is_active FROM daz_gallery_images"
                                         " WHERE id = $1", image))
    assert delays == [3, 6, 12] and alive == [True, True, False]
    row = await conn.fetchrow("SELECT failure_count, pruned_reason, first_failure_at IS NOT NULL"
                              " AS since FROM daz_gallery_images WHERE id = $1", image)
    assert tuple(row) == (3, "HTTP 404", True)
    assert await conn.fetchval("SELECT count(*) FROM daz_gallery_health_log"
                               " WHERE image_id = $1", image) == 3
    # A healthy answer on a live image clears the failures and the schedule.
    other = await add(conn, "carol", "https://img.example/d.png")
    await conn.execute("SELECT mark_image_for_health_check($1, true, 'timeout')", other)
    await conn.execute("SELECT mark_image_for_health_check($1, false, NULL)", other)
    row = await conn.fetchrow("SELECT failure_count, next_check_at, is_active"
                              " FROM daz_gallery_images WHERE id = $1", other)
    assert tuple(row) == (0, None, True)


async def test_health_check_selection_takes_due_images_only(conns):
    conn = conns[0]
    fresh = await add(conn, "dave", "https://img.example/new.png")
    checked = await add(conn, "dave", "https://img.example/checked.png")
    stale = await add(conn, "dave", "https://img.example/stale.png")
    due_dead = await add(conn, "dave", "https://img.example/dead-due.png")
    later_dead = await add(conn, "dave", "https://img.example/dead-later.png")
    await conn.execute("UPDATE daz_gallery_images SET last_check_at = now() WHERE id = $1",
                       checked)
    await conn.execute("UPDATE daz_gallery_images SET last_check_at = now() - interval '2 hours'"
                       " WHERE id = $1", stale)
    for image in (due_dead, later_dead):
        for _ in range(3):
            await conn.execute("SELECT mark_image_for_health_check($1, true, 'HTTP 410')", image)
    await conn.execute("UPDATE daz_gallery_images SET next_check_at = now() - interval '1 minute'"
                       " WHERE id = $1", due_dead)
    picked = [r["id"] for r in await conn.fetch("SELECT id FROM get_images_for_health_check(50)")]
    assert set(picked) == {fresh, stale, due_dead}
    assert picked.index(fresh) < picked.index(due_dead)  # live images first
    assert [r["id"] for r in await conn.fetch("SELECT id FROM get_images_for_health_check(1)")] \
        == [fresh]


async def test_a_dead_image_comes_back_only_when_there_is_room(conns):
    conn = conns[0]
    dead = await add(conn, "erin", "https://img.example/dead.png", limit=2)
    for _ in range(3):
        await conn.execute("SELECT mark_image_for_health_check($1, true, 'HTTP 404')", dead)
    await add(conn, "erin", "https://img.example/1.png", limit=2)
    await add(conn, "erin", "https://img.example/2.png", limit=2)
    assert await conn.fetchval("SELECT restore_dead_image($1, 2)", dead) is False
    assert await conn.fetchval("SELECT is_active FROM daz_gallery_images WHERE id = $1",
                               dead) is False
    # Refused: the next look is scheduled by time since the first failure (3 h when recent).
    await conn.execute("SELECT update_dead_image_recovery($1)", dead)
    assert round(await check_delay(conn, dead)) == 3
    # With room (a higher limit) it is restored, failures forgotten.
    assert await conn.fetchval("SELECT restore_dead_image($1, 3)", dead) is True
    row = await conn.fetchrow("SELECT is_active, failure_count, pruned_reason"
                              " FROM daz_gallery_images WHERE id = $1", dead)
    assert tuple(row) == (True, 0, None)
    assert await active(conn, "erin") == 3


async def test_next_check_time_grows_with_time_since_the_first_failure(conns):
    hours = []
    for ago in ("0 hours", "4 hours", "10 hours", "20 hours", "3 days"):
        value = await conns[0].fetchval(
            "SELECT extract(epoch FROM"
            " calculate_next_check_time(now() - $1::text::interval))::float"
            " / 3600", ago)
        hours.append(round(value))
    assert hours == [3, 6, 12, 24, 48]
    assert round(await conns[0].fetchval(
        "SELECT extract(epoch FROM calculate_next_check_time(NULL::timestamptz))::float"
        " / 3600")) == 3


async def health_log(conn, image_id: int) -> list[tuple]:
    rows = await conn.fetch("SELECT status_code, response_time_ms, error_message, previous_status,"
                            " new_status FROM daz_gallery_health_log WHERE image_id = $1"
                            " ORDER BY id", image_id)
    return [tuple(r) for r in rows]


async def test_the_health_log_records_the_real_status_and_response_time(conns):
    conn = conns[0]
    image = await add(conn, "fay", "https://img.example/f.png")
    await conn.execute("SELECT mark_image_for_health_check($1, false, NULL, 206, 87)", image)
    await conn.execute("SELECT mark_image_for_health_check($1, true, 'HTTP 404', 404, 12)", image)
    # No HTTP answer (DNS failure, timeout): no status, but the wait may be known.
    await conn.execute("SELECT mark_image_for_health_check($1, true, 'network error', NULL,"
                       " 10000)", image)
    await conn.execute("SELECT mark_image_server_error($1, 403, 'blocked by the host', 33)",
                       image)
    assert await health_log(conn, image) == [
        (206, 87, None, True, True), (404, 12, "HTTP 404", True, True),
        (None, 10000, "network error", True, True),
        (403, 33, "blocked by the host", True, True)]
    assert await conn.fetchval("SELECT last_status_code FROM daz_gallery_images WHERE id = $1",
                               image) == 403


async def test_go_shaped_calls_still_work_and_invent_no_status(conns):
    conn = conns[0]
    image = await add(conn, "gus", "https://img.example/g.png")
    # The Go bot calls with 2 and 3 arguments and knows no status: Go logged 0 or 200.
    await conn.execute("SELECT mark_image_for_health_check($1, true, 'timeout')", image)
    await conn.execute("SELECT mark_image_for_health_check($1, false)", image)
    await conn.execute("SELECT mark_image_server_error($1, 502, 'bad gateway')", image)
    assert await health_log(conn, image) == [
        (None, None, "timeout", True, True), (None, None, None, True, True),
        (502, None, "bad gateway", True, True)]


async def function_signatures(conn, name: str) -> list[str]:
    rows = await conn.fetch("SELECT pg_get_function_identity_arguments(p.oid) AS args"
                            " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                            " WHERE n.nspname = 'public' AND p.proname = $1", name)
    return sorted(r["args"] for r in rows)


async def test_029_replaces_the_old_signatures_and_runs_again(conns):
    from daz.db.migrate import CORE_DIR, run_script

    conn = conns[0]
    script = (CORE_DIR / "029_graveyard_recovery_procedure.sql").read_text(encoding="utf-8")
    # A database the Go bot (or an older daz) left: the three-argument forms.
    await conn.execute("DROP FUNCTION mark_image_for_health_check(bigint, boolean, text,"
                       " integer, integer)")
    await conn.execute("DROP FUNCTION mark_image_server_error(bigint, integer, text, integer)")
    await conn.execute("CREATE FUNCTION mark_image_for_health_check(p_image_id bigint,"
                       " p_failed boolean, p_error_message text DEFAULT NULL) RETURNS void"
                       " LANGUAGE sql AS 'SELECT NULL'")
    await conn.execute("CREATE FUNCTION mark_image_server_error(p_image_id bigint,"
                       " p_status_code integer DEFAULT 503, p_error_message text DEFAULT NULL)"
                       " RETURNS timestamptz LANGUAGE sql AS 'SELECT now()'")
    for _ in range(2):  # re-runnable
        async with conn.transaction():
            await run_script(conn, "029", script)
    assert await function_signatures(conn, "mark_image_for_health_check") == [
        "p_image_id bigint, p_failed boolean, p_error_message text, p_status_code integer,"
        " p_response_time_ms integer"]
    assert await function_signatures(conn, "mark_image_server_error") == [
        "p_image_id bigint, p_status_code integer, p_error_message text,"
        " p_response_time_ms integer"]
    # One function each, so a three-argument call is not ambiguous, and it is the new body.
    image = await add(conn, "hal", "https://img.example/h.png")
    await conn.execute("SELECT mark_image_for_health_check($1, true, 'HTTP 410')", image)
    assert await health_log(conn, image) == [(None, None, "HTTP 410", True, True)]
