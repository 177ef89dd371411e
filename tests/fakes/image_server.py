"""Local HTTP servers for the gallery tests: one that serves images (and misbehaves on request)
and a "protected" one standing for internal services, which records every request it gets.

    async with ImageServer() as images, ImageServer() as protected:
        images.redirect("/hop", f"http://127.0.0.1:{protected.port}/secret")
        ...
        assert protected.requests == []
"""
from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

from aiohttp import web

# The smallest valid PNG (1x1), so a browser really draws something.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5f1e3b10000000049454e44ae426082")


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict = field(default_factory=dict)


class ImageServer:
    """Paths: ``/<name>.png`` an image; behaviour per path set with the helpers below."""

    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = 0
        self.requests: list[Recorded] = []
        self.routes: dict[str, tuple] = {}  # path -> (kind, arg)
        self.delays: dict[str, float] = {}  # path -> seconds to wait before answering
        self.streamed_bytes = 0
        self._runner: web.AppRunner | None = None

    # behaviours ---------------------------------------------------------------------
    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.routes[path] = ("redirect", (status, location))

    def status(self, path: str, status: int, content_type: str = "text/plain") -> None:
        self.routes[path] = ("status", (status, content_type))

    def no_head(self, path: str, head_status: int = 405) -> None:
        self.routes[path] = ("no_head", head_status)

    def by_method(self, path: str, head: int, get: int) -> None:
        """HEAD answers ``head`` and GET answers ``get`` (an image when 2xx, text otherwise)."""
        self.routes[path] = ("by_method", (head, get))

    def delay(self, path: str, seconds: float) -> None:
        """Every request to ``path`` waits ``seconds`` before its answer."""
        self.delays[path] = seconds

    def content_type(self, path: str, content_type: str) -> None:
        self.routes[path] = ("type", content_type)

    def endless(self, path: str) -> None:
        """HEAD refused; GET streams 64 MB whatever the Range says."""
        self.routes[path] = ("endless", None)

    def url(self, path: str = "/a.png", host: str | None = None) -> str:
        host = host or self.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}{path}"

    # server -------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(Recorded(request.method, request.path_qs, dict(request.headers)))
        if request.path in self.delays:
            await asyncio.sleep(self.delays[request.path])
        kind, arg = self.routes.get(request.path, ("image", None))
        if kind == "by_method":
            status = arg[0] if request.method == "HEAD" else arg[1]
            if 200 <= status < 300:
                return web.Response(status=status, body=PNG, content_type="image/png")
            return web.Response(status=status, text="nope", content_type="text/plain")
        if kind == "redirect":
            status, location = arg
            return web.Response(status=status, headers={"Location": location})
        if kind == "status":
            status, content_type = arg
            return web.Response(status=status, text="nope", content_type=content_type)
        if kind == "no_head" and request.method == "HEAD":
            return web.Response(status=arg)
        if kind == "type":
            return web.Response(body=b"<html>not an image</html>", headers={"Content-Type": arg})
        if kind == "endless" and request.method == "HEAD":
            return web.Response(status=405)
        if kind == "endless":
            response = web.StreamResponse(headers={"Content-Type": "image/png"})
            await response.prepare(request)
            chunk = b"\0" * 65536
            try:
                for _ in range(1024):  # 64 MB unless the client hangs up
                    await response.write(chunk)
                    self.streamed_bytes += len(chunk)
            except (ConnectionError, OSError):
                pass
            return response
        if request.headers.get("Range"):
            return web.Response(status=206, body=PNG[:1024], content_type="image/png",
                                headers={"Content-Range": f"bytes 0-{len(PNG) - 1}/{len(PNG)}"})
        return web.Response(body=PNG, content_type="image/png")

    async def __aenter__(self) -> ImageServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def also_listen(self, host: str) -> bool:
        """Listen on another address with the same port (e.g. ::1); False if impossible."""
        try:
            site = web.TCPSite(self._runner, host, self.port)
            await site.start()
            return True
        except OSError:
            return False


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False
