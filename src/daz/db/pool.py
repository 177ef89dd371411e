"""The bot's one PostgreSQL pool (asyncpg), with UTC sessions and JSON-aware jsonb columns.

A database that is down when daz starts must not take the bot down: ``connect_with_retry`` keeps
trying with capped, jittered backoff until it gets a pool or is told to stop. ``healthy`` and
``last_error`` feed /health; ``size`` and ``idle`` feed /metrics.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from daz.db.errors import leaves_connection_unusable

log = logging.getLogger(__name__)

PING_TIMEOUT = 2.0
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def rows_affected(status: object) -> int:
    """The row count of a command status ("UPDATE 3", "INSERT 0 5", "DELETE 0"); 0 for a
    status without one (or none at all)."""
    try:
        return int(str(status).rsplit(" ", 1)[-1])
    except ValueError:
        return 0


async def table_exists(conn: Any, name: str) -> bool:
    """Whether ``name`` is a table (or view) the session can see: another plugin's table may
    not be there when that plugin is off."""
    return await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)


def redact(dsn: str) -> str:
    """The DSN without its password, for log lines."""
    try:
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(dsn)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparsable dsn>"
    return dsn


class JsonText(str):
    """JSON text that is already encoded (and storable): a json/jsonb parameter or COPY value
    of this type is sent as it is instead of being encoded again."""

    __slots__ = ()


def _json_text(value: Any) -> bytes:
    text = value if isinstance(value, JsonText) else json.dumps(value, ensure_ascii=False)
    return text.encode("utf-8")


def _jsonb_binary(value: Any) -> bytes:
    return b"\x01" + _json_text(value)  # jsonb's binary form: format version 1, then the text


def _from_jsonb_binary(data: bytes) -> Any:
    return json.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Python values in, Python values out, non-ASCII as is. Binary format, because the event
    # log's COPY into daz_core_events is binary, and a codec without a binary form refuses it.
    await conn.set_type_codec("jsonb", encoder=_jsonb_binary, decoder=_from_jsonb_binary,
                              schema="pg_catalog", format="binary")
    await conn.set_type_codec("json", encoder=_json_text, decoder=json.loads,
                              schema="pg_catalog", format="binary")


class Database:
    """An asyncpg pool plus the few helpers plugins use. Create, then ``start()`` or
    ``connect_with_retry()``; ``close()`` at shutdown."""

    def __init__(self, dsn: str, *, min_size: int = 1, max_size: int = 10,
                 command_timeout: float = 30.0, connect_timeout: float = 10.0) -> None:
        self.dsn = dsn
        self.min_size = min_size
        self.max_size = max(max_size, min_size, 1)
        self.command_timeout = command_timeout
        self.connect_timeout = connect_timeout
        self.pool: asyncpg.Pool | None = None
        self._healthy = False
        self.last_error: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the pool (raises if the database cannot be reached)."""
        if self.pool is not None:
            return
        try:
            self.pool = await asyncpg.create_pool(
                self.dsn, min_size=self.min_size, max_size=self.max_size,
                command_timeout=self.command_timeout, timeout=self.connect_timeout,
                server_settings={"TimeZone": "UTC", "application_name": "daz"},
                init=_init_connection)
        except Exception as exc:
            self._failed(exc)
            raise
        self._healthy = True
        self.last_error = None

    async def connect_with_retry(self, stop_event: asyncio.Event | None = None, *,
                                 initial_delay: float = 0.5, max_delay: float = 30.0) -> bool:
        """Try ``start()`` until it works; False if ``stop_event`` was set first."""
        attempt = 0
        while True:
            if stop_event is not None and stop_event.is_set():
                return False
            try:
                await self.start()
                if attempt:
                    log.info("database: connected after %d failed attempt(s)", attempt)
                return True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                from daz.preflight import OperatorError, connect_refusal

                refusal = connect_refusal(exc, self.dsn)
                if refusal:  # a wrong name or password never heals: no retry loop
                    raise OperatorError(refusal) from None
                attempt += 1
                delay = min(max_delay, initial_delay * 2 ** (attempt - 1))
                delay *= random.uniform(0.5, 1.0)  # processes restarted together spread out
                log.warning("database: cannot connect to %s (attempt %d: %s); retrying in %.1fs",
                            redact(self.dsn), attempt, self.last_error, delay)
            if stop_event is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(stop_event.wait(), delay)
                    return False
                except TimeoutError:
                    pass

    async def close(self, timeout: float = 10.0) -> None:
        """Close the pool gracefully within ``timeout`` seconds, else terminate it."""
        pool, self.pool = self.pool, None
        self._healthy = False
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), timeout)
        except (TimeoutError, Exception) as exc:
            log.warning("database: pool did not close cleanly (%s); terminating", exc)
            pool.terminate()

    # ------------------------------------------------------------------ health

    async def ping(self, timeout: float = PING_TIMEOUT) -> bool:
        if self.pool is None:
            self._healthy = False
            self.last_error = self.last_error or "not connected"
            return False
        try:
            async with asyncio.timeout(timeout):
                async with self.pool.acquire() as conn:
                    await conn.fetchval("SELECT 1")
        except Exception as exc:
            self._failed(exc)
            return False
        self._healthy = True
        self.last_error = None
        return True

    @property
    def healthy(self) -> bool:
        return self.pool is not None and self._healthy

    @property
    def size(self) -> int:
        return self.pool.get_size() if self.pool is not None else 0

    @property
    def idle(self) -> int:
        return self.pool.get_idle_size() if self.pool is not None else 0

    def _failed(self, exc: BaseException) -> None:
        self._healthy = False
        self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    # ------------------------------------------------------------------ helpers

    def _require_pool(self) -> asyncpg.Pool:
        if self.pool is None:
            raise ConnectionError("database is not connected")
        return self.pool

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        return await self._require_pool().execute(query, *args, timeout=timeout)

    async def executemany(self, query: str, args: Any, timeout: float | None = None) -> None:
        await self._require_pool().executemany(query, args, timeout=timeout)

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list:
        return await self._require_pool().fetch(query, *args, timeout=timeout)

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None):
        return await self._require_pool().fetchrow(query, *args, timeout=timeout)

    async def fetchval(self, query: str, *args: Any, column: int = 0,
                       timeout: float | None = None) -> Any:
        return await self._require_pool().fetchval(query, *args, column=column, timeout=timeout)

    @contextlib.asynccontextmanager
    async def acquire(self, timeout: float | None = None) -> AsyncIterator[Any]:
        """``async with db.acquire() as conn:`` for work that needs one connection. A
        connection an error or a cancellation may have left mid-operation is closed instead
        of going back to the pool (``errors.leaves_connection_unusable``)."""
        pool = self._require_pool()
        conn = await pool.acquire(timeout=timeout)
        try:
            yield conn
        except BaseException as exc:
            if leaves_connection_unusable(exc):
                with contextlib.suppress(asyncpg.InterfaceError):  # already detached: closed
                    conn.terminate()
            raise
        finally:
            await pool.release(conn)

    async def log(self, plugin_name: str, level: str, message: str,
                  data: dict | None = None) -> None:
        """One row in daz_plugin_logs: event_type is the level, log_data holds message + data."""
        from daz.db.text import clean_json, clean_text

        level = level.lower() if level and level.lower() in LOG_LEVELS else "info"
        payload: dict[str, Any] = {"message": message}
        if data:
            payload["data"] = data
        # Pre-serialised and cleaned: jsonb refuses \u0000 and NaN, text refuses NUL, and a
        # plugin may pass values json cannot encode (they are stored as their str()).
        await self.execute(
            "INSERT INTO daz_plugin_logs (plugin_name, event_type, log_data, timestamp)"
            " VALUES ($1, $2, $3::text::jsonb, (now() AT TIME ZONE 'UTC'))",
            clean_text(plugin_name, 100), level, clean_json(payload))
