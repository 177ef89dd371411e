"""daz's web server: health, metrics, and the pages plugins contribute.

It starts before the database so that /health can report a database that is still down. aiohttp
freezes routes once a server runs, so when plugins add their pages the server is rebuilt on the
same socket address (a sub-second gap, once, at start-up).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from daz.web.keys import AUTH, DAZ_APP

if TYPE_CHECKING:  # pragma: no cover
    from daz.app import App

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


class WebServer:
    def __init__(self, app: "App"):
        self.app = app
        self.runner: web.AppRunner | None = None
        self.site: web.TCPSite | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.extra_routes: list = []
        self.auth = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def build(self) -> web.Application:
        webapp = web.Application(middlewares=[security_headers])
        webapp[DAZ_APP] = self.app
        webapp.router.add_get("/health", self.health)
        webapp.router.add_get("/health/live", self.live)
        webapp.router.add_get("/health/ready", self.ready)
        webapp.router.add_get("/metrics", self.metrics)
        from daz.web.pages import make_auth, page_routes

        if self.auth is None:  # one Auth for the process: sessions survive the rebuild
            self.auth = make_auth(self.app)
        webapp[AUTH] = self.auth
        webapp.router.add_routes(page_routes())
        webapp.router.add_routes(self.extra_routes)
        return webapp

    async def start(self, host: str, port: int) -> None:
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
        log.info("web server on %s", self.base_url)

    def add_plugin_routes(self, routes: list) -> None:
        """Rebuild with the plugins' routes (scheduled; see the module docstring)."""
        if not routes:
            return
        self.extra_routes = list(routes)
        import asyncio

        self._rebuild = asyncio.ensure_future(self._restart())

    async def _restart(self) -> None:
        host, port = self.host, self.port
        if self.runner is not None:
            await self.runner.cleanup()
        await self.start(host, port)

    async def stop(self) -> None:
        rebuild = getattr(self, "_rebuild", None)
        if rebuild is not None:
            try:
                await rebuild
            except Exception:
                log.exception("web server rebuild failed")
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # ------------------------------------------------------------------ handlers

    async def health(self, request: web.Request) -> web.Response:
        healthy, details = await self.app.health()
        return web.json_response(details, status=200 if healthy else 503)

    async def live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive", "state": self.app.state})

    async def ready(self, request: web.Request) -> web.Response:
        db_ok = self.app.db is not None and await self.app.db.ping()
        ready = self.app.state == "running" and db_ok
        body = {"status": "ready" if ready else "not ready", "state": self.app.state,
                "database": db_ok}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        await self.app.health()  # refreshes the gauges that are sampled, not counted
        for room in self.app.rooms:
            status = room.status()
            self.app.metrics.room_connected.labels(room=room.id).set(1 if status.get("joined") else 0)
        # Rendering walks every series (rooms × event types: 0.7 s at 1,000 rooms); in a thread
        # it no longer stops the rooms' event loop. prometheus_client locks its own values.
        import asyncio

        body = await asyncio.get_running_loop().run_in_executor(None, self.app.metrics.render)
        return web.Response(body=body,
                            headers={"Content-Type": CONTENT_TYPE_LATEST})
