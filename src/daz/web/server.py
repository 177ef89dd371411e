"""daz's web server: health, metrics, and the pages plugins contribute.

It starts before the database so that /health can report a database that is still down. aiohttp
freezes routes once a server runs, so when plugins add their pages the server is rebuilt on the
same socket address (a sub-second gap, once, at start-up).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from daz.db.text import UNSTORABLE
from daz.web.host import WebHost
from daz.web.keys import AUTH, COMMAND_PREFIX, HOST, LIVE

if TYPE_CHECKING:  # pragma: no cover
    from daz.web.auth import Auth
    from daz.web.live import LiveFeed

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@web.middleware
async def security_headers(request: web.Request, handler: Callable) -> web.StreamResponse:
    response = await handler(request)
    for key, value in SECURITY_HEADERS.items():
        response.headers.setdefault(key, value)
    return response


@web.middleware
async def refuse_unstorable_input(request: web.Request, handler: Callable) -> web.StreamResponse:
    """A NUL or a lone surrogate in a path or query (``/gallery/%00``) names nothing that can
    exist: no channel, user or file holds one, and PostgreSQL refuses it in a query. Answered
    here, so no handler ever sees one (it would have been a 500 and a traceback)."""
    if any(UNSTORABLE.search(value) for value in request.match_info.values()):
        raise web.HTTPNotFound(text="No such page.")
    if any(UNSTORABLE.search(key) or UNSTORABLE.search(value)
           for key, value in request.query.items()):
        raise web.HTTPBadRequest(text="The query holds a NUL or an unpaired surrogate.")
    return await handler(request)


class WebServer:
    """Serves ``daz`` (web/host.py: what it reads of the running daz, usually the App)."""

    def __init__(self, daz: WebHost):
        self.daz = daz
        self.runner: web.AppRunner | None = None
        self.site: web.TCPSite | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.extra_routes: list = []
        self.auth: Auth | None = None
        self.live_feed: LiveFeed | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def build(self) -> web.Application:
        webapp = web.Application(middlewares=[security_headers, refuse_unstorable_input])
        webapp[HOST] = self.daz
        from daz.commands.dispatch import command_prefix

        webapp[COMMAND_PREFIX] = command_prefix(self.daz.config)
        webapp.router.add_get("/health", self.health)
        webapp.router.add_get("/health/live", self.live)
        webapp.router.add_get("/health/ready", self.ready)
        webapp.router.add_get("/metrics", self.metrics)
        from daz.web.status import status_page

        webapp.router.add_get("/status", status_page)
        from daz.web.pages import make_auth, page_routes

        if self.auth is None:  # one Auth for the process: sessions survive the rebuild
            self.auth = make_auth(self.daz)
        webapp[AUTH] = self.auth
        if self.live_feed is None:  # one feed for the process, like Auth
            from daz.web.live import LiveFeed

            self.live_feed = LiveFeed(self.daz.bus)
            self.live_feed.start()
        webapp[LIVE] = self.live_feed
        webapp.router.add_routes(page_routes())
        webapp.router.add_routes(self.extra_routes)
        return webapp

    async def start(self, host: str, port: int, *, announce: bool = True) -> None:
        self.host = host
        self.runner = web.AppRunner(self.build(), access_log=None)
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, host, port, reuse_address=True)
        await self.site.start()
        if port == 0:  # tests ask for any free port
            sockets = self.runner.addresses
            self.port = sockets[0][1] if sockets else 0
        else:
            self.port = port
        if announce:
            log.info("web server on %s", self.base_url)

    def add_plugin_routes(self, routes: list) -> None:
        """Rebuild with the plugins' routes (scheduled; see the module docstring)."""
        if not routes:
            return
        self.extra_routes = list(routes)
        self._rebuild = asyncio.ensure_future(self._restart())

    async def _restart(self) -> None:
        host, port = self.host, self.port
        if self.live_feed is not None:
            self.live_feed.close_streams()
        if self.runner is not None:
            await self.runner.cleanup()
        await self.start(host, port, announce=False)  # same address: said once already

    async def stop(self) -> None:
        rebuild = getattr(self, "_rebuild", None)
        if rebuild is not None:
            try:
                await rebuild
            except Exception:
                log.exception("web server rebuild failed")
        if self.live_feed is not None:
            self.live_feed.close_streams()
            self.live_feed.stop()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # ------------------------------------------------------------------ handlers

    async def health(self, request: web.Request) -> web.Response:
        healthy, details = await self.daz.health()
        return web.json_response(details, status=200 if healthy else 503)

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive", "state": self.daz.state})

    async def ready(self, request: web.Request) -> web.Response:
        db = self.daz.db
        db_ok = db is not None and await db.ping()
        ready = self.daz.state == "running" and db_ok
        body = {"status": "ready" if ready else "not ready", "state": self.daz.state,
                "database": db_ok}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        await self.daz.sample_gauges()
        metrics = self.daz.metrics
        # The rooms' figures are read here, on the loop where they change; the text is written
        # in a thread (prometheus_client locks its own values), so a scrape never holds the
        # rooms up for the whole render.
        rooms = metrics.room_snapshot(self.daz.rooms)
        body = await asyncio.get_running_loop().run_in_executor(None, metrics.render, rooms)
        return web.Response(body=body,
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
