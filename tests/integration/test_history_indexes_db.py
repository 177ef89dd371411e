"""Every lookup by name or time the pages, commands and per-join handlers make is served by an
index: the very SQL the code sends is EXPLAINed (with its parameters) on a database holding a
scaled-down synthetic history (tests/history_data.py, analysed), where reading a whole table
loses to an index. Without the lower(name) indexes these plans are sequential scans."""
from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg
import pytest

from daz.plugins.gallery.store import GalleryStore
from daz.plugins.greeter import store as greeter
from daz.plugins.tell import store as tell
from daz.plugins.usertracker import sessions
from daz.web import queries
from tests.conftest import _admin, _unique, run_sync, with_database
from tests.history_data import CHANNEL, END, HEAVY_USER, LIGHT_USER, fill

SCALE = 0.01  # 30 k chat lines, 3 k sessions, 1 k images...: enough to make a scan lose
NOW = END.replace(tzinfo=UTC)
T = NOW.timestamp()
BIG_TABLES = {"daz_chat_log", "daz_core_events", "daz_user_tracker_sessions",
              "daz_mediatracker_plays", "daz_gallery_images", "daz_private_messages",
              "daz_greeter_history", "daz_tell_messages", "daz_analytics_user_stats",
              "daz_gallery_health_log", "daz_greeter_preferences", "daz_mediatracker_stats"}
# (daz_analytics_hourly_users is not one: analytics keeps only its last 35 days, and the
# dashboard's week is most of it.)


@pytest.fixture(scope="module")
def history_dsn(pg_server_dsn, _migrated_template):
    name = _unique("daz_history")
    run_sync(lambda: _admin(pg_server_dsn,
                            f'CREATE DATABASE "{name}" TEMPLATE "{_migrated_template}"'))
    dsn = with_database(pg_server_dsn, name)

    async def load() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await fill(conn, SCALE)
        finally:
            await conn.close()

    run_sync(load)
    yield dsn
    run_sync(lambda: _admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


class Explainer:
    """Stands in for a connection or Database: plans each statement instead of running it."""

    def __init__(self, conn: asyncpg.Connection):
        self.conn = conn
        self.plans: list[tuple[str, dict]] = []

    async def _explain(self, sql: str, args: tuple) -> None:
        text = await self.conn.fetchval("EXPLAIN (FORMAT JSON) " + sql, *args)
        self.plans.append((sql, json.loads(text)[0]["Plan"]))

    async def fetch(self, sql: str, *args, **_):
        await self._explain(sql, args)
        return []

    async def fetchrow(self, sql: str, *args, **_):
        await self._explain(sql, args)
        return None

    async def fetchval(self, sql: str, *args, **_):
        if sql.startswith("SELECT to_regclass("):
            return True  # "is that table there": yes, and not worth a plan
        await self._explain(sql, args)
        return None

    async def execute(self, sql: str, *args, **_):
        await self._explain(sql, args)
        return "UPDATE 0"


def nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def indexes_used(plan: dict) -> set[str]:
    return {n["Index Name"] for n in nodes(plan) if "Index Name" in n}


def scanned_whole(plan: dict) -> set[str]:
    return {n.get("Relation Name") for n in nodes(plan) if n["Node Type"] == "Seq Scan"}


@pytest.fixture
async def explainer(history_dsn):
    conn = await asyncpg.connect(history_dsn)
    yield Explainer(conn)
    await conn.close()


def assert_indexed(explainer: Explainer, expected: list) -> None:
    """Statement i uses index expected[i] (a set: one of them; None: any index); no statement
    reads a big table from end to end."""
    assert len(explainer.plans) == len(expected), [sql for sql, _ in explainer.plans]
    for (sql, plan), index in zip(explainer.plans, expected, strict=True):
        assert not scanned_whole(plan) & BIG_TABLES, (sql, scanned_whole(plan))
        if index is not None:
            allowed = index if isinstance(index, set) else {index}
            assert allowed & indexes_used(plan), (sql, indexes_used(plan))


@pytest.mark.parametrize("user", [LIGHT_USER, HEAVY_USER, "NoSuchPerson"])
async def test_user_page_lookups_use_the_lower_name_indexes(explainer, user):
    await queries.user_history(explainer, CHANNEL, user.upper())
    assert_indexed(explainer, ["idx_analytics_user_stats_lower",
                               "idx_usertracker_sessions_user_time",
                               "idx_chat_channel_user_time",
                               "idx_mediatracker_plays_queued_by"])


async def test_chat_pm_and_dashboard_pages_read_by_channel_and_time(explainer):
    await queries.chat_lines(explainer, CHANNEL)
    await queries.private_messages(explainer, CHANNEL)
    assert_indexed(explainer, ["idx_chat_channel_time", "idx_pm_channel_time"])
    explainer.plans.clear()
    await queries.dashboard_figures(explainer, CHANNEL, NOW)
    await queries.chart_series(explainer, CHANNEL, NOW)
    assert_indexed(explainer, [None] * len(explainer.plans))


async def test_seen_and_the_greeters_per_join_lookups_use_indexes(explainer):
    await sessions.lookup(explainer, CHANNEL, LIGHT_USER.upper())
    await greeter.opted_out(explainer, CHANNEL, LIGHT_USER)
    await greeter.greeted_since(explainer, CHANNEL, LIGHT_USER, T - 3600)
    await greeter.last_greeting_text(explainer, CHANNEL, LIGHT_USER)
    await greeter.first_visit(explainer, CHANNEL, LIGHT_USER, T, use_sessions=True)
    await greeter.left_recently(explainer, CHANNEL, LIGHT_USER, T - 600, T)
    assert_indexed(explainer, ["idx_usertracker_sessions_user_time",
                               "idx_greeter_preferences_lower",
                               "idx_greeter_history_user_lower",
                               "idx_greeter_history_user_lower",
                               "idx_greeter_history_user_lower",
                               "idx_usertracker_sessions_user_time",
                               "idx_usertracker_sessions_user_time"])


async def test_tells_per_join_and_per_command_lookups_use_indexes(explainer):
    await tell.claim(explainer, CHANNEL, LIGHT_USER, T, "me")
    await tell.pending_from(explainer, CHANNEL, LIGHT_USER, T)
    await tell.known_here(explainer, CHANNEL, LIGHT_USER)
    assert_indexed(explainer, ["idx_tell_pending_recipient", "idx_tell_pending_sender",
                               "idx_usertracker_sessions_user_time"])


async def test_gallery_pages_use_the_channel_and_person_indexes(explainer):
    store = GalleryStore(explainer)
    await store.channel_images(CHANNEL, limit=100, offset=0)
    await store.user_images(CHANNEL, LIGHT_USER.upper(), limit=100, offset=0)
    await store.count_user_images(CHANNEL, LIGHT_USER.upper())
    await store.graveyard(CHANNEL, LIGHT_USER)
    # (Counting a channel's images reads nine rows in ten: a scan is right for that one.)
    assert_indexed(explainer, [None, "idx_gallery_channel_state_posted",
                               "idx_gallery_channel_user_posted",
                               "idx_gallery_channel_user_posted",
                               "idx_gallery_channel_user_posted"])
    page = explainer.plans[1][1]
    assert any(n["Node Type"] == "Index Only Scan" for n in nodes(page))  # never the table


def test_the_history_is_the_same_at_every_run():
    """The generator is deterministic: its SQL takes no random() and no clock."""
    from tests import history_data

    text = " ".join(history_data.STATEMENTS.values()) + " ".join(history_data.AGGREGATES)
    assert "random()" not in text and "now()" not in text
    assert isinstance(history_data.END, datetime)
