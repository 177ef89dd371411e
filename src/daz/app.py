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
from typing import TYPE_CHECKING, Any

import aiohttp

from daz.bus import Bus
from daz.clock import Clock
from daz.commands import CommandRegistry
from daz.config import Config
from daz.cytube.rooms import Rooms
from daz.metrics import Metrics
from daz.plugins.base import Plugin
from daz.plugins.manager import PluginManager
from daz.private_files import private_dir
from daz.stopping import StopBudget, stop_on_signals

if TYPE_CHECKING:  # pragma: no cover - imported where used, to keep start-up light
    from daz.bridge import KrytenBridge
    from daz.cytube.join_pacer import JoinPacer
    from daz.db.embedded import EmbeddedPostgres
    from daz.db.online import BackgroundBuilds
    from daz.db.pool import Database
    from daz.db.retention import RetentionTask
    from daz.scaleout.heap import HeapKeeper
    from daz.scaleout.holder import RoomHolder
    from daz.web.server import WebServer

log = logging.getLogger(__name__)

START_ABANDON_SECONDS = 1.5  # a stop request ends start-up within this (issue 11: 2 s)


def default_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir("daz", appauthor=False))


class App:
    def __init__(self, config: Config, *, data_dir: Path | None = None,
                 plugin_classes: dict[str, type[Plugin]] | None = None,
                 only_plugins: list[str] | None = None, clock: Clock | None = None,
                 web: bool | None = None, migrate: bool = True, keep_heap: bool = False):
        self.config = config
        self.data_dir = Path(data_dir or config.core.data_dir or default_data_dir())
        self.clock = clock or Clock()
        self.metrics = Metrics()
        self.bus = Bus(metrics=self.metrics, clock=self.clock)
        self.commands = CommandRegistry()
        self.rooms = Rooms()
        self.db: Database | None = None
        self.holder: RoomHolder | None = None  # joins the rooms leased to us
        self.join_pacer: JoinPacer | None = None  # connects under CyTube's limit
        self.bridge: KrytenBridge | None = None  # when core.nats.url is set
        self.embedded: EmbeddedPostgres | None = None
        self.index_builds: BackgroundBuilds | None = None
        self.retention: RetentionTask | None = None
        self.http: aiohttp.ClientSession | None = None
        self.plugins: PluginManager | None = None
        self.web: WebServer | None = None
        # The collector's pauses bounded; `daz run` only (keep_heap), see scaleout/heap.py
        self.heap: HeapKeeper | None = None
        self._keep_heap = keep_heap
        self.started_at = time.time()
        self.state = "created"
        self._plugin_classes = plugin_classes
        self._only_plugins = only_plugins
        self._web_enabled = config.core.web.enabled if web is None else web
        self._migrate = migrate
        self.stop_requested = asyncio.Event()
        self._budget: StopBudget | None = None

    # ------------------------------------------------------------------ start

    async def start(self) -> None:
        self.state = "starting"
        private_dir(self.data_dir)
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
        if self._keep_heap:
            from daz.scaleout.heap import HeapKeeper

            self.heap = HeapKeeper(rooms=self._rooms_joining)
            self.heap.start()  # before the rooms: its first complete collection is short
        if self.web is not None:
            self.web.add_plugin_routes(self.plugins.web_routes())
        if self.config.core.nats.url:
            from daz.bridge import KrytenBridge

            self.bridge = KrytenBridge(self)
            self.bridge.attach()  # before the rooms start: it mirrors their join burst
        await self._hold_rooms()
        if self.bridge is not None:
            await self.bridge.start()
        if self.index_builds is not None:
            self.index_builds.start()
        from daz.db.retention import RetentionTask

        self.retention = RetentionTask(self.db, self.config.core.retention, self.clock)
        self.retention.start()
        self.state = "running"
        log.info("%s", self._running_line())

    def _rooms_joining(self) -> tuple[int, int]:
        """(rooms held, of which not joined yet and still trying): the heap keeper's measure."""
        # Every few seconds over every room: read the two flags, not a status dict per room.
        joining = sum(1 for room in self.rooms if not room.joined and not room.lifecycle.gave_up)
        return len(self.rooms), joining

    def _running_line(self) -> str:
        """Start-up's one summary: what runs (each plugin named once, here, not one line each)."""
        assert self.plugins is not None
        running = [name for name, lp in self.plugins.loaded.items() if lp.started]
        failed = [name for name, lp in self.plugins.loaded.items() if lp.failed]
        rooms = ", ".join(room.id for room in self.rooms) or "none"
        line = (f"daz running: room(s) {rooms}; {len(running)} plugin(s): "
                f"{', '.join(running) or 'none'}; {len(self.commands)} command(s)")
        if failed:
            line += f"; failed to start: {', '.join(failed)}"
        return line

    async def _hold_rooms(self) -> None:
        """Join the rooms this instance gets a lease for (all of them when it runs alone)."""
        from daz.cytube.join_pacer import JoinPacer
        from daz.cytube.room import Room
        from daz.scaleout.holder import RoomHolder
        from daz.scaleout.limits import raise_open_file_limit

        core = self.config.core
        raise_open_file_limit(min(len(self.config.enabled_rooms), core.max_rooms or 10**9))
        self.join_pacer = JoinPacer(core.join_pacing.burst, core.join_pacing.interval_seconds)
        if self.db is None:
            raise RuntimeError("the rooms start after the database")
        self.holder = RoomHolder(
            dsn=self.db.dsn, room_configs=self.config.enabled_rooms, rooms=self.rooms,
            make_room=lambda cfg: Room(cfg, self.bus, metrics=self.metrics, http=self.http,
                                       clock=self.clock, pacer=self.join_pacer),
            max_rooms=core.max_rooms, renew_seconds=core.leases.renew_seconds,
            lease_seconds=core.leases.lease_seconds, metrics=self.metrics,
            web_url=lambda: self.web.base_url if self.web is not None else "",
            reporter=self._report)
        await self.holder.start()

    async def _report(self) -> dict[str, Any]:
        """What this instance writes into its ``daz_instances`` row for ``daz status``."""
        from daz.status_report import build_status

        return await build_status(self)

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
        await self.db.connect_with_retry(self.stop_requested)
        if self._migrate:
            from daz.db.migrate import migrate, online_steps
            from daz.db.online import BackgroundBuilds

            applied = await migrate(self.db.pool, build_indexes=False)
            if applied:
                log.info("applied %d migration(s): %s", len(applied), ", ".join(applied))
            self.index_builds = BackgroundBuilds(self.db.pool, online_steps())
            await self.index_builds.before_serving()

    async def _start_web(self) -> None:
        from daz.web.server import WebServer

        self.web = WebServer(self)
        host, port = self.config.core.web.host, self.config.core.web.port
        try:
            await self.web.start(host, port)
        except OSError as exc:
            from daz.preflight import web_port_error

            raise web_port_error(host, port, exc) from None

    # ------------------------------------------------------------------ stop

    def request_stop(self, why: str = "stop requested") -> None:
        """Ask the app to stop (a signal handler calls this). Start-up is abandoned within
        ``START_ABANDON_SECONDS``; a second request while stopping cuts the stop short."""
        if not self.stop_requested.is_set():
            log.info("%s: shutting down (within %.0fs)", why, self.config.core.stop_timeout_seconds)
            self.stop_requested.set()
        elif self._budget is not None and not self._budget.hurried:
            log.warning("%s again: stopping now; what is still in memory goes to disk", why)
            self._budget.hurry()

    async def stop(self) -> None:
        """Stop within ``core.stop_timeout_seconds`` however many plugins are stuck: rooms
        leave (no new events), plugins flush and tear down (``PluginManager.stop``: what the
        database does not take goes to disk), then the web server and the database close."""
        if self.state in ("stopping", "stopped"):
            return
        self.state = "stopping"
        self.stop_requested.set()
        budget = self._budget = StopBudget(self.config.core.stop_timeout_seconds)
        if self.holder is not None:
            # Leaves our rooms and hands their leases over (other instances take them at once).
            await budget.within(self.holder.stop(), "handing the rooms over",
                                at_most=budget.seconds * 0.3)
        if self.rooms:
            await budget.within(self._stop_rooms(budget), "leaving the rooms",
                                at_most=budget.seconds * 0.3)
        if self.bridge is not None:
            await budget.within(self.bridge.stop(), "stopping the NATS bridge", at_most=1.0)
        for background in (self.index_builds, self.retention):
            if background is not None:
                await budget.within(background.stop(), "stopping background database work",
                                    at_most=1.0)
        if self.plugins is not None:
            database_up = self.db is not None and await self.db.ping(
                timeout=min(1.0, max(0.1, budget.left())))
            await self.plugins.stop(budget, database_up=database_up)
        await budget.within(self.bus.close(), "closing the bus", keep_reserve=False)
        if self.web is not None:
            await budget.within(self.web.stop(), "stopping the web server", keep_reserve=False)
        if self.db is not None:
            await self.db.close(timeout=max(0.1, budget.left(keep_reserve=False)))
        if self.embedded is not None:
            await self.embedded.stop()  # its own bounded pg_ctl stop: never leave it running
        if self.http is not None:
            await self.http.close()
        if self.heap is not None:
            await self.heap.stop()
        self.state = "stopped"
        log.info("stopped in %.1fs%s", budget.elapsed,
                 f" (cut short: {', '.join(budget.overrun)})" if budget.overrun else "")

    async def _stop_rooms(self, budget: StopBudget) -> None:
        timeout = max(0.1, budget.seconds * 0.25)  # inside its 0.3 share: ends on its own
        await asyncio.gather(*(room.stop(timeout=timeout) for room in self.rooms),
                             return_exceptions=True)

    async def run_forever(self) -> None:
        """Run until SIGINT/SIGTERM, then shut down cleanly (flushing what is queued). A signal
        during start-up (a database that does not answer, a slow migration) stops it too."""
        with stop_on_signals(self.request_stop):
            try:
                if await self.start_unless_stopped():
                    await self.stop_requested.wait()
            finally:
                await self.stop()

    async def start_unless_stopped(self) -> bool:
        """``start()``, abandoned when a stop is requested first; False then."""
        starting = asyncio.ensure_future(self.start())
        stopping = asyncio.ensure_future(self.stop_requested.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if starting.done():
            starting.result()  # a start-up error (bad config, ...) is the caller's to report
            return True
        log.info("start-up abandoned (%s)", self.state)
        starting.cancel()
        await asyncio.wait({starting}, timeout=START_ABANDON_SECONDS)
        if not starting.done():
            log.warning("start-up did not end within %.0fs of the stop request",
                        START_ABANDON_SECONDS)
        elif not starting.cancelled() and starting.exception() is not None:
            log.info("start-up ended with %r", starting.exception())
        return False

    def request_shutdown(self, reason: str) -> None:
        """Stop as SIGTERM would (run_forever returns); used by the Kryten group restart."""
        log.warning("shutdown requested: %s", reason)
        self.request_stop(reason)

    # ------------------------------------------------------------------ health

    async def sample_gauges(self) -> bool:
        """Set the gauges that are sampled, not counted (the database's); True when it answers.
        /metrics calls only this: the rooms' figures it reads itself, once per room."""
        db_ok = self.db is not None and await self.db.ping()
        if self.metrics:
            self.metrics.db_up.set(1 if db_ok else 0)
            if self.db is not None and getattr(self.db, "pool", None) is not None:
                self.metrics.db_pool_size.set(self.db.size)
                self.metrics.db_pool_idle.set(self.db.idle)
        return db_ok

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details): healthy only when the database answers and every room is joined."""
        problems: list[str] = []
        db_ok = await self.sample_gauges()
        if self.db is None:
            problems.append("database: not connected yet")
        elif not db_ok:
            problems.append(f"database: not answering ({self.db.last_error or 'unknown'})")
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
        details: dict[str, Any] = {
            "status": "ok" if not problems else "unhealthy",
            "state": self.state,
            "problems": problems,
            "database": {"ok": db_ok},
            "rooms": rooms,
            "leases": details_leases,
            "nats": self.bridge.status() if self.bridge is not None else None,
            "join_queue": self.join_pacer.status() if self.join_pacer is not None else {},
            "heap": self.heap.status() if self.heap is not None else None,
            "plugins": plugins,
            "slow_handlers": slow,
            "uptime_seconds": round(time.time() - self.started_at, 1),
        }
        if self.index_builds is not None:
            details["indexes"] = self.index_builds.status()
        for plugin in self.plugins.running() if self.plugins else ():
            section = plugin.health_section
            if section is None:
                continue
            try:
                details[section], found = plugin.health_report()
            except Exception as exc:  # health must answer even if a plugin's report breaks
                details[section] = {"error": repr(exc)}
            else:
                problems.extend(found)
        details["status"] = "ok" if not problems else "unhealthy"
        return (not problems and self.state == "running"), details
