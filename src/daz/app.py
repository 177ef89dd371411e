"""Wires config → database → migrations → bus → plugins → web → rooms, and back down again.

Start-up never depends on the network answering within a fixed window: the web server (and so
/health) comes up first, a database that is down is retried with backoff while /health says so,
and rooms connect in the background after the plugins are ready. Shutdown runs in reverse:
rooms leave (so no new events arrive), plugins flush, then the database closes.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp

from daz.bus import Bus
from daz.clock import Clock
from daz.commands import CommandRegistry
from daz.config import Config
from daz.cytube.rooms import Rooms
from daz.metrics import Metrics
from daz.plugins.base import Plugin
from daz.plugins.manager import PluginManager

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("daz", appauthor=False))


class App:
    def __init__(self, config: Config, *, data_dir: Path | None = None,
                 plugin_classes: dict[str, type[Plugin]] | None = None,
                 only_plugins: list[str] | None = None, clock: Clock | None = None,
                 web: bool | None = None, migrate: bool = True):
        self.config = config
        self.data_dir = Path(data_dir or config.core.data_dir or default_data_dir())
        self.clock = clock or Clock()
        self.metrics = Metrics()
        self.bus = Bus(metrics=self.metrics)
        self.commands = CommandRegistry()
        self.rooms = Rooms()
        self.db = None
        self.holder = None  # scaleout.holder.RoomHolder: joins the rooms leased to us
        self.join_pacer = None  # cytube.join_pacer.JoinPacer: connects under CyTube's limit
        self.bridge = None  # bridge.KrytenBridge, when core.nats.url is set
        self.embedded = None
        self.http: aiohttp.ClientSession | None = None
        self.plugins: PluginManager | None = None
        self.web = None
        self.started_at = time.time()
        self.state = "created"
        self._plugin_classes = plugin_classes
        self._only_plugins = only_plugins
        self._web_enabled = config.core.web.enabled if web is None else web
        self._migrate = migrate
        self._stopping = asyncio.Event()
        self._shutdown_requested = asyncio.Event()

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        self.state = "starting"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        self.plugins = PluginManager(
            config=self.config, bus=self.bus, rooms=self.rooms, db=None, http=self.http,
            clock=self.clock, metrics=self.metrics, data_dir=self.data_dir,
            commands=self.commands)
        chosen = self.plugins.select(self._plugin_classes, self._only_plugins)  # config errors now
        if self._web_enabled:
            await self._start_web()
        await self._start_database()
        self.plugins.db = self.db
        await self.plugins.start(chosen)
        if self.web is not None:
            self.web.add_plugin_routes(self.plugins.web_routes())
        if self.config.core.nats.url:
            from daz.bridge import KrytenBridge

            self.bridge = KrytenBridge(self)
            self.bridge.attach()  # before the rooms start: it mirrors their join burst
        await self._hold_rooms()
        if self.bridge is not None:
            await self.bridge.start()
        self.state = "running"
        log.info("daz running: %d room(s), %d plugin(s), %d command(s)", len(self.rooms),
                 len(self.plugins.loaded), len(self.commands))

    async def _hold_rooms(self) -> None:
        """Join the rooms this instance gets a lease for (all of them when it runs alone)."""
        from daz.cytube.join_pacer import JoinPacer
        from daz.cytube.room import Room
        from daz.scaleout.holder import RoomHolder
        from daz.scaleout.limits import raise_open_file_limit

        core = self.config.core
        raise_open_file_limit(min(len(self.config.enabled_rooms), core.max_rooms or 10**9))
        self.join_pacer = JoinPacer(core.join_pacing.burst, core.join_pacing.interval_seconds)
        self.holder = RoomHolder(
            dsn=self.db.dsn, room_configs=self.config.enabled_rooms, rooms=self.rooms,
            make_room=lambda cfg: Room(cfg, self.bus, metrics=self.metrics, http=self.http,
                                       clock=self.clock, pacer=self.join_pacer),
            max_rooms=core.max_rooms, renew_seconds=core.leases.renew_seconds,
            lease_seconds=core.leases.lease_seconds, metrics=self.metrics,
            web_url=lambda: self.web.base_url if self.web is not None else "")
        await self.holder.start()

    async def _start_database(self) -> None:
        from daz.db.pool import Database

        db_config = self.config.core.database
        dsn = db_config.url()
        if not dsn:
            from daz.db.embedded import EmbeddedPostgres

            self.embedded = EmbeddedPostgres(self.data_dir / "postgres")
            dsn = await self.embedded.start()
            log.info("no database configured: using an embedded PostgreSQL in %s",
                     self.data_dir / "postgres")
        self.db = Database(dsn, min_size=db_config.min_connections,
                           max_size=db_config.max_connections,
                           command_timeout=db_config.command_timeout,
                           connect_timeout=db_config.connect_timeout)
        await self.db.connect_with_retry(self._stopping)
        if self._migrate:
            from daz.db.migrate import migrate

            applied = await migrate(self.db.pool)
            if applied:
                log.info("applied %d migration(s): %s", len(applied), ", ".join(applied))

    async def _start_web(self) -> None:
        from daz.web.server import WebServer

        self.web = WebServer(self)
        await self.web.start(self.config.core.web.host, self.config.core.web.port)

    # ------------------------------------------------------------------ stop

    async def stop(self) -> None:
        if self.state in ("stopping", "stopped"):
            return
        self.state = "stopping"
        self._stopping.set()
        if self.holder is not None:
            await self.holder.stop()
        await asyncio.gather(*(room.stop() for room in self.rooms), return_exceptions=True)
        if self.bridge is not None:
            await self.bridge.stop()
        if self.plugins is not None:
            await self.plugins.stop()
        await self.bus.close()
        if self.web is not None:
            await self.web.stop()
        if self.db is not None:
            await self.db.close()
        if self.embedded is not None:
            await self.embedded.stop()
        if self.http is not None:
            await self.http.close()
        self.state = "stopped"

    async def run_forever(self) -> None:
        """Run until SIGINT/SIGTERM, then shut down cleanly (flushing what is queued)."""
        import signal

        loop = asyncio.get_running_loop()
        stop = self._shutdown_requested
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except NotImplementedError:  # pragma: no cover - non-Unix
                pass
        try:
            await self.start()
            await stop.wait()
            log.info("shutting down")
        finally:
            await self.stop()

    def request_shutdown(self, reason: str) -> None:
        """Stop as SIGTERM would (run_forever returns); used by the Kryten group restart."""
        log.warning("shutdown requested: %s", reason)
        self._shutdown_requested.set()

    # ------------------------------------------------------------------ health

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details): healthy only when the database answers and every room is joined."""
        problems: list[str] = []
        db_ok = False
        if self.db is None:
            problems.append("database: not connected yet")
        else:
            db_ok = await self.db.ping()
            if not db_ok:
                problems.append(f"database: not answering ({self.db.last_error or 'unknown'})")
        if self.metrics:
            self.metrics.db_up.set(1 if db_ok else 0)
            if self.db is not None and getattr(self.db, "pool", None) is not None:
                self.metrics.db_pool_size.set(self.db.size)
                self.metrics.db_pool_idle.set(self.db.idle)
        rooms = {}
        for room in self.rooms:
            status = room.status()
            rooms[room.id] = status
            if not status.get("joined"):
                why = status.get("gave_up") or status.get("last_error") or "not joined"
                problems.append(f"room {room.id}: {why}")
        plugins = self.plugins.status() if self.plugins else {}
        for name, st in plugins.items():
            if st.get("failed"):
                problems.append(f"plugin {name}: {st['failed']}")
        if self.holder is not None:
            details_leases = self.holder.status()
            if self.holder.last_error:
                problems.append(f"leases: {self.holder.last_error}")
        else:
            details_leases = None
        if self.bridge is not None and not self.bridge.connected:
            problems.append(f"nats: not connected to {self.bridge.url}"
                            f" ({self.bridge.last_error or 'connecting'})")
        slow = self.bus.slow_handlers()
        details = {
            "status": "ok" if not problems else "unhealthy",
            "state": self.state,
            "problems": problems,
            "database": {"ok": db_ok},
            "rooms": rooms,
            "leases": details_leases,
            "nats": self.bridge.status() if self.bridge is not None else None,
            "join_queue": self.join_pacer.status() if self.join_pacer is not None else {},
            "plugins": plugins,
            "slow_handlers": slow,
            "uptime_seconds": round(time.time() - self.started_at, 1),
        }
        sql = self.plugins.get("sql") if self.plugins else None
        if sql is not None and hasattr(sql, "status"):
            try:
                details["eventlog"] = sql.status()
            except Exception as exc:  # health must answer even if a plugin's status breaks
                details["eventlog"] = {"error": repr(exc)}
        return (not problems and self.state == "running"), details
