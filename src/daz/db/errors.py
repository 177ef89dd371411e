"""One answer to "is this a temporary database error?" for every writer.

A temporary error (the database is down, restarting, overloaded, or lost a race) means the
same write will work later unchanged: keep it and retry. Anything else means the write itself
is bad (a value PostgreSQL refuses, a constraint, text that cannot be encoded): retrying it
forever would block everything queued behind it, so the caller sets it aside with a log line.
"""
from __future__ import annotations

import asyncio

import asyncpg

# SQLSTATE classes: connection (08), insufficient resources (53), operator intervention (57:
# admin shutdown, cannot connect now, statement cancelled), system error (58), internal (XX),
# transaction rollback (40: serialization failure, deadlock), object not in prerequisite state
# (55: lock not available), invalid transaction state (25).
TRANSIENT_CLASSES = frozenset({"08", "53", "57", "58", "XX", "40", "55", "25"})
# Missing tables/columns/functions/schemas or privileges: the schema is not there yet (a
# migration is running or failed); the rows are fine. Only writers that can wait say so.
SCHEMA_MISSING_CODES = frozenset({"42P01", "42703", "42883", "42501", "3D000", "3F000"})


def sqlstate(exc: BaseException) -> str:
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else ""


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` says the database cannot take the write now, not that it is bad."""
    if isinstance(exc, (UnicodeError, asyncpg.DataError)):
        return False  # a value that cannot be encoded or sent will never be accepted
    if is_connection_state_error(exc):
        return True
    state = sqlstate(exc)
    if state:
        return state[:2] in TRANSIENT_CLASSES
    if isinstance(exc, (OSError, ConnectionError, asyncio.TimeoutError, TimeoutError,
                        asyncpg.PostgresConnectionError)):
        return True  # refused/reset sockets, timeouts, "connection does not exist"
    if isinstance(exc, asyncpg.InterfaceError):
        # The pool is closing or the connection went away mid-call; other interface errors
        # (wrong argument count, ...) are bugs that a retry would only repeat.
        text = str(exc).lower()
        return any(w in text for w in ("closed", "closing", "connection", "not connected"))
    return False


def is_connection_state_error(exc: BaseException) -> bool:
    """The connection was left in the middle of an earlier operation (its server process was
    killed under a COPY, a call was cancelled): asyncpg's "cannot switch to state …" and
    "another operation is in progress". The connection is broken, the rows are fine."""
    if isinstance(exc, asyncpg.InternalClientError):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and \
        "another operation is in progress" in str(exc)


def leaves_connection_unusable(exc: BaseException) -> bool:
    """Whether a connection on which ``exc`` escaped must be closed rather than go back to the
    pool. Only an error the server reported cleanly (bad data, a constraint, a missing table)
    or a value refused before it was sent leaves the connection in a known state; anything
    else (cancellation, a timeout, a lost socket, a client-side protocol error) may have left
    an operation half done on it, and the next user would fail on that one."""
    if isinstance(exc, (UnicodeError, asyncpg.DataError)):
        return False
    if isinstance(exc, asyncpg.PostgresError) \
            and not isinstance(exc, asyncpg.PostgresConnectionError):
        return sqlstate(exc)[:2] in ("08", "57", "XX")
    return True


def schema_missing(exc: BaseException) -> bool:
    """The write failed because a table/column/function is not there (yet), not its data."""
    return sqlstate(exc) in SCHEMA_MISSING_CODES
