"""A loopback TCP proxy that tests can cut: the database "goes away" without stopping the
shared PostgreSQL server other tests use.

    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()            # proxy.port now forwards to PostgreSQL
    await proxy.block()            # drop every connection and refuse new ones
    await proxy.unblock()          # accept again
"""
from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.blocked = False
        self.connections = 0
        self._server: asyncio.base_events.Server | None = None
        self._pipes: set[asyncio.Task] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port or 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def dsn_for(self, dsn: str) -> str:
        """Rewrite host:port of a postgresql:// DSN to go through this proxy."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(dsn)
        auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{auth}{self.host}:{self.port}"))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blocked:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        for coro in self._pipes_for(reader, writer, up_reader, up_writer):
            task = asyncio.create_task(coro)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    def _pipes_for(self, reader, writer, up_reader, up_writer) -> tuple:
        """The two copying coroutines of one connection (a subclass may watch one direction)."""
        return self._pipe(reader, up_writer), self._pipe(up_reader, writer)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if self.blocked:
                    break
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError, OSError):
            pass
        finally:
            dst.transport.abort()
            self._writers.discard(dst)

    async def block(self) -> None:
        """Cut every open connection abruptly (like a crashed server) and refuse new ones."""
        self.blocked = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.sleep(0)

    async def unblock(self) -> None:
        self.blocked = False

    async def stop(self) -> None:
        await self.block()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
