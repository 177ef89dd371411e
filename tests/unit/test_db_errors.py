"""The one classification of database errors: temporary (keep and retry) or not (set aside)."""
import asyncio

import asyncpg
import pytest

from daz.db.errors import is_transient, leaves_connection_unusable, schema_missing


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(), ConnectionResetError(), ConnectionError("not connected"),
    OSError("network unreachable"), TimeoutError(), TimeoutError(),
    asyncpg.ConnectionDoesNotExistError("gone"), asyncpg.CannotConnectNowError("starting up"),
    asyncpg.AdminShutdownError("shutdown"), asyncpg.TooManyConnectionsError("full"),
    asyncpg.DiskFullError("disk"), asyncpg.SerializationError("race"),
    asyncpg.DeadlockDetectedError("deadlock"), asyncpg.LockNotAvailableError("locked"),
    asyncpg.QueryCanceledError("cancelled"), asyncpg.InternalServerError("internal"),
    asyncpg.exceptions.PostgresIOError("io"), asyncpg.ReadOnlySQLTransactionError("standby"),
    asyncpg.InterfaceError("pool is closing"),
    asyncpg.InterfaceError("cannot call fetch(): connection has been released"),
    # A connection left mid-operation (its backend killed under a COPY): the rows are fine.
    asyncpg.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
])
def test_temporary(exc):
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    asyncpg.StringDataRightTruncationError("too long"), asyncpg.UniqueViolationError("dup"),
    asyncpg.NotNullViolationError("null"), asyncpg.CharacterNotInRepertoireError("bad utf8"),
    asyncpg.UntranslatableCharacterError("\\u0000"), asyncpg.DataError("invalid input"),
    asyncpg.PostgresSyntaxError("syntax"), asyncpg.UndefinedTableError("no table"),
    UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ValueError("bad"), TypeError("bad"), KeyError("x"),
    asyncpg.InterfaceError("the server expects 2 arguments for this query, 1 was passed"),
])
def test_not_temporary(exc):
    assert not is_transient(exc)


def test_unknown_sqlstate_class_is_not_temporary():
    exc = asyncpg.PostgresError("odd")
    exc.sqlstate = "P0001"  # raise_exception from a function
    assert not is_transient(exc)
    exc.sqlstate = "58030"
    assert is_transient(exc)


def test_schema_missing_is_separate():
    assert schema_missing(asyncpg.UndefinedTableError("no table"))
    assert schema_missing(asyncpg.UndefinedColumnError("no column"))
    assert not schema_missing(asyncpg.UniqueViolationError("dup"))
    assert not schema_missing(ConnectionResetError())


@pytest.mark.parametrize("exc", [
    asyncio.CancelledError(), TimeoutError(), ConnectionResetError(), OSError("io"),
    asyncpg.InternalClientError("cannot switch to state 15"),
    asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
    asyncpg.ConnectionDoesNotExistError("gone"), asyncpg.AdminShutdownError("terminated"),
    asyncpg.InternalServerError("internal"),
])
def test_a_connection_is_discarded_after_anything_that_may_leave_it_mid_operation(exc):
    assert leaves_connection_unusable(exc)


@pytest.mark.parametrize("exc", [
    asyncpg.UniqueViolationError("dup"), asyncpg.UndefinedTableError("no table"),
    asyncpg.DataError("invalid input"), UnicodeEncodeError("utf-8", "\ud800", 0, 1, "x"),
    asyncpg.SerializationError("race"),
])
def test_a_connection_is_kept_after_an_error_the_server_reported_cleanly(exc):
    assert not leaves_connection_unusable(exc)
