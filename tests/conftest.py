"""Database fixtures shared by every test.

PostgreSQL for tests: ``DAZ_TEST_DSN`` (URL form) if set; else the server on 127.0.0.1:5432 as
user root (trust auth) when it answers; else an embedded one started for the session.

- ``pg_server_dsn``: the server (session), DSN of its ``postgres`` database.
- ``fresh_dsn``: a brand-new empty database for one test, dropped afterwards.
- ``migrated_dsn``: a fresh database with every migration applied. A template database is
  migrated once per session and each test gets ``CREATE DATABASE … TEMPLATE`` of it.
- ``database``: a started ``daz.db.pool.Database`` on ``migrated_dsn``, closed afterwards.
- ``embedded_dsn``: an embedded PostgreSQL (session), skipped only when it cannot start here.

Session fixtures do their async work on a private thread so they never touch the event loop
that pytest-asyncio gives each test.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

LOCAL_DSN = "postgresql://root@127.0.0.1:5432/postgres"


def run_sync(coro_factory):
    """Run ``coro_factory()`` to completion on a fresh loop in a worker thread."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(coro_factory())).result()


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


async def _answers(dsn: str) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=3)
    except Exception:
        return False
    await conn.close()
    return True


async def _admin(dsn: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _unique(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def _embedded_server(tmp_path_factory):
    """Started lazily: only when some fixture needs the embedded server."""
    from daz.db.embedded import EmbeddedPostgres

    servers: list = []

    def get():
        if not servers:
            server = EmbeddedPostgres(tmp_path_factory.mktemp("embedded-pg") / "data",
                                      database="postgres")
            try:
                run_sync(server.start)
            except Exception as exc:  # pragma: no cover - depends on the machine
                servers.append(exc)
            else:
                servers.append(server)
        if isinstance(servers[0], Exception):
            pytest.skip(f"embedded PostgreSQL cannot start here: {servers[0]}")
        return servers[0]

    yield get
    for server in servers:
        if not isinstance(server, Exception):
            run_sync(server.stop)


@pytest.fixture(scope="session")
def pg_server_dsn(_embedded_server) -> str:
    dsn = os.environ.get("DAZ_TEST_DSN")
    if dsn:
        return dsn
    if run_sync(lambda: _answers(LOCAL_DSN)):
        return LOCAL_DSN
    return _embedded_server().dsn_for("postgres")


@pytest.fixture(scope="session")
def embedded_dsn(_embedded_server) -> str:
    return _embedded_server().dsn_for("postgres")


@pytest.fixture
def fresh_dsn(pg_server_dsn):
    name = _unique("daz_test")
    run_sync(lambda: _admin(pg_server_dsn, f'CREATE DATABASE "{name}"'))
    yield with_database(pg_server_dsn, name)
    run_sync(lambda: _admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def _migrated_template(pg_server_dsn):
    from daz.db.migrate import migrate

    name = _unique("daz_tpl")
    run_sync(lambda: _admin(pg_server_dsn, f'CREATE DATABASE "{name}"'))

    async def build():
        import asyncpg

        conn = await asyncpg.connect(with_database(pg_server_dsn, name))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    try:
        run_sync(build)
    except BaseException:
        run_sync(lambda: _admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        raise
    yield name
    run_sync(lambda: _admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def migrated_dsn(pg_server_dsn, _migrated_template):
    name = _unique("daz_test")
    run_sync(lambda: _admin(pg_server_dsn,
                            f'CREATE DATABASE "{name}" TEMPLATE "{_migrated_template}"'))
    yield with_database(pg_server_dsn, name)
    run_sync(lambda: _admin(pg_server_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def database(migrated_dsn):
    from daz.db.pool import Database
    from tests.plugin_kit import stop_running_kits

    db = Database(migrated_dsn, min_size=1, max_size=5, command_timeout=30, connect_timeout=10)
    await db.start()
    yield db
    await stop_running_kits()  # a test that failed before its kit.stop(): its plugins use db
    await db.close()
