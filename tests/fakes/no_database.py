"""A database for plugin tests that need none: the real ``Database`` class, never connected.

Plugins always get a database (``ctx.db`` is never None). A test without PostgreSQL gives them
this one: every call raises ``ConnectionError("database is not connected")``, exactly what a
plugin meets while PostgreSQL is away in production, so the plugin takes its real "database
down" path (hold, defer, warn) and a test that needed a database after all fails with that
error instead of passing on a branch production never runs.
"""
from __future__ import annotations

from daz.db.pool import Database

# .invalid never resolves (RFC 2606), so nothing can ever answer here, and the name in a log line
# says what it is.
NO_DATABASE_DSN = "postgresql://test-has-no-database.invalid/daz"


def database_that_never_answers() -> Database:
    return Database(NO_DATABASE_DSN)
