"""The database part of start-up: a mistake the operator must fix ends the wait at once with an
OperatorError (one line), what may heal is retried until start-up is told to stop."""
from __future__ import annotations

import asyncio
import socket

import pytest

from daz.db.pool import Database
from daz.preflight import OperatorError, check_database, connect_refusal
from tests.conftest import with_database


async def test_a_missing_database_ends_the_retry_loop_at_once(pg_server_dsn):
    db = Database(with_database(pg_server_dsn, "daz_missing_db_for_preflight"))
    with pytest.raises(OperatorError, match="daz_missing_db_for_preflight does not exist"):
        await asyncio.wait_for(db.connect_with_retry(asyncio.Event()), 10)


async def test_a_refused_connection_is_retried_until_stopped():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = Database(f"postgresql://root@127.0.0.1:{port}/daz", connect_timeout=1)
    stop = asyncio.Event()
    waiting = asyncio.create_task(db.connect_with_retry(stop, initial_delay=0.05))
    await asyncio.sleep(0.5)
    assert not waiting.done() and "Connect call failed" in (db.last_error or "")
    assert await check_database(db.dsn, 1) is not None  # may heal: a reason, no exception
    stop.set()
    assert await asyncio.wait_for(waiting, 5) is False


async def test_the_checks_pass_on_a_database_that_answers(migrated_dsn):
    assert await check_database(migrated_dsn, 5) is None


def test_only_permanent_failures_are_refusals():
    dsn = "postgresql://bob:pw@db.example:5433/chat"
    assert connect_refusal(ConnectionRefusedError(111, "refused"), dsn) is None
    assert connect_refusal(TimeoutError(), dsn) is None
    assert connect_refusal(OSError("Name or service not known"), dsn) is None
    refusal = connect_refusal(ValueError("invalid literal for int()"), dsn)
    assert refusal is not None and "pw" not in refusal
